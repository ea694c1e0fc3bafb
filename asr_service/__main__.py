"""``python -m asr_service``: settings → logging → serve until SIGTERM → exit status."""

from __future__ import annotations

import os
import subprocess
import sys

import uvloop

from asr_service.logging_setup import configure_logging, get_logger
from asr_service.settings import SettingsError, load_settings, resolve_workers


def main(argv: list[str] | None = None) -> int:
    try:
        settings = load_settings(sys.argv[1:] if argv is None else argv)
    except SettingsError as error:
        print(f"asr_service: invalid configuration: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    workers = resolve_workers(settings, _cuda_available)
    get_logger(component="main").info("starting", settings=_public(settings), workers=workers)
    if workers > 1:  # a supervisor and N worker processes (asr_service/workers)
        from asr_service.workers.supervisor import supervise

        return uvloop.run(supervise(settings, workers, sys.argv[1:] if argv is None else argv))
    # Imported after logging is configured: torch is slow to import and logs nothing useful.
    from asr_service.server import serve_forever

    return uvloop.run(serve_forever(settings))


def _cuda_available() -> bool:
    """Asked in a short-lived child, so that a supervisor of workers never holds torch itself
    (some 450 MB of resident memory it would never use)."""
    check = "import torch; print(torch.cuda.is_available())"
    result = subprocess.run(  # noqa: S603 - this interpreter, a fixed one-liner
        [sys.executable, "-c", check], capture_output=True, text=True, check=False, timeout=120
    )
    return result.stdout.strip() == "True"


def _public(settings: object) -> dict[str, object]:
    """Settings for the start-up log line, with secrets left out."""
    values = dict(vars(settings))
    values["auth_tokens"] = f"{len(values.get('auth_tokens', ()))} configured"
    return values


if __name__ == "__main__":
    status = main()
    # Everything is drained, stopped and logged: skip the interpreter's teardown of torch and its
    # thread pools, which adds up to a second or two to a SIGTERM on a busy host.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
