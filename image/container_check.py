"""Runs INSIDE the built image, as its runtime user, before the server is started.

It proves what the server needs at start is usable by the user the image runs as: the packages
import, every file on ``sys.path`` is readable, and the shipped model(s) load. The runner passes
this file's text to ``python -c``, so it may import only what the image itself provides.
Prints one JSON object and exits 1 when anything is wrong.
"""

import importlib
import importlib.util
import json
import os
import sys
from pathlib import Path

# flashlight's decoder is the native word search on finals (WORD_DECODER=auto picks it when it
# imports): a wheel whose shared libraries are missing in the image would silently fall back.
MODULES = [
    "torch", "torchaudio", "numpy", "soundfile", "websockets", "uvloop", "structlog", "boto3",
    "flashlight.lib.text.decoder", "asr_service", "asr_service.server",
]  # fmt: skip
# Development tools that live beside the serving package in the repository but are no part of
# what the container serves; finding one in the image means the build context leaked.
NOT_SHIPPED = ["asr_client", "ezspeech_convert", "training", "tests"]
MAX_LISTED = 10


def unreadable_files() -> tuple[int, list[str]]:
    """Files (and directories) on sys.path that this user may not read (or enter)."""
    count, listed = 0, list[str]()  # listed: the first few, for the message
    for entry in sys.path:
        root = Path(entry or ".").resolve()  # "" on sys.path is the working directory
        if not root.is_dir():
            continue
        for directory, dirnames, filenames in os.walk(root):
            for name in dirnames:
                path = Path(directory, name)
                if not os.access(path, os.R_OK | os.X_OK):
                    count += 1
                    listed += [f"{path}/"] if len(listed) < MAX_LISTED else []
            for name in filenames:
                path = Path(directory, name)
                if not path.is_symlink() and not os.access(path, os.R_OK):
                    count += 1
                    listed += [str(path)] if len(listed) < MAX_LISTED else []
    return count, listed


def main() -> int:
    failures = []
    for module in MODULES:
        try:
            importlib.import_module(module)
        except Exception as error:  # the report names whatever went wrong
            failures.append(f"import {module}: {type(error).__name__}: {error}")
    for module in NOT_SHIPPED:
        if importlib.util.find_spec(module) is not None:
            failures.append(f"{module} is in the image; only asr_service is shipped")
    models = []
    if not failures:
        # The model the server will load (MODEL_PATH, else the shipped demo), the way it loads it.
        from asr_service.model.checkpoint import DEFAULT_MODEL_PATH, load_checkpoint

        model = os.environ.get("MODEL_PATH") or str(DEFAULT_MODEL_PATH)
        try:
            load_checkpoint(model, word_decoder="native")
            models.append(model)
        except Exception as error:  # the report names whatever went wrong
            failures.append(f"load {model}: {type(error).__name__}: {error}")
    count, listed = unreadable_files()
    if count:
        failures.append(f"{count} files/directories on sys.path are unreadable by uid {os.getuid()}")
    print(
        json.dumps(
            {
                "uid": os.getuid(),
                "gid": os.getgid(),
                "python": sys.executable,
                "models": models,
                "unreadable": listed,
                "failures": failures,
            }
        )
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
