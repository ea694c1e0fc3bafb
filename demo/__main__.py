"""``python -m demo`` (``make demo``): the whole event-driven rollout loop on this machine, narrated."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from demo.flow import DemoError
from demo.models import prepare_inputs
from demo.narration import Narrator
from demo.steps import run_demo
from demo.task import TaskStartError

INTRO = """\
EzSpeech on AWS — the rollout loop, rehearsed on this machine
  moto (server mode) stands in for AWS; the ASR server, its client, `make upload-model` and the
  four Lambda handlers are the project's real code. No AWS account is used or needed."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="where logs and downloaded models go (default: a temporary folder, removed on success)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder after a successful run")
    parser.add_argument(
        "--model", type=Path, help="checkpoint to roll out as v1 (default: the shipped demo model)"
    )
    args = parser.parse_args(argv)
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="ezspeech-demo-"))
    work_dir.mkdir(parents=True, exist_ok=True)

    say = Narrator(sys.stdout)
    say.block(INTRO.splitlines(), prefix="")
    started = time.monotonic()
    try:
        inputs = prepare_inputs(work_dir, args.model)
        run_demo(work_dir, inputs, say)
    except KeyboardInterrupt:
        print(f"\nInterrupted; every process the demo started was stopped. Logs: {work_dir}", file=sys.stderr)
        return 130
    except (DemoError, TaskStartError) as failure:
        print(f"\nDEMO FAILED: {failure}\n  logs (moto, each task): {work_dir}", file=sys.stderr)
        return 1
    except Exception as failure:  # anything unexpected: say where the logs are, keep them
        print(f"\nDEMO FAILED: {type(failure).__name__}: {failure}\n  logs: {work_dir}", file=sys.stderr)
        raise
    elapsed = time.monotonic() - started
    print(f"\nDone in {elapsed:.0f} s. Every step above ran against moto; nothing is left running.")
    if args.keep or args.work_dir:
        print(f"Logs (moto, each task) are in {work_dir}")
    else:
        shutil.rmtree(work_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
