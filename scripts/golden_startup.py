"""Start-up time of ``python -m asr_service`` with and without the golden-set gate
(what the gate adds to a task's time to ready).

    python scripts/golden_startup.py [--runs 5] [--golden-set tests/data/clips] [-- server flags]

Each run starts a fresh server process (shipped demo model unless flags say otherwise) on free
loopback ports and measures process start → ``/ready`` 200; runs alternate gate off / gate on so
machine noise hits both alike. Prints one line per run and the medians, plus the gate's own
``golden_gate_s`` from its ``server_ready`` log line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def one_run(golden_set: str | None, extra: list[str]) -> tuple[float, float | None]:
    """(seconds from spawn to /ready 200, the gate's own seconds or None)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOLDEN_", "MODEL_"))}
    env.update({"PYTHONPATH": str(REPO), "SERVER_HOST": "127.0.0.1", "SERVER_PORT": "0", "HEALTH_PORT": "0"})
    if golden_set:
        env["GOLDEN_SET"] = golden_set
    started = time.monotonic()
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "asr_service", *extra], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        health_port = 0
        while not health_port:
            line = process.stdout.readline()
            if not line:
                raise RuntimeError("server exited before listening")
            record = json.loads(line) if line.startswith("{") else {}
            health_port = (
                int(record.get("health_port", 0)) if record.get("event") == "health_listening" else 0
            )
        while not _ready(health_port):
            if process.poll() is not None:
                raise RuntimeError(f"server exited {process.returncode}")
            time.sleep(0.01)
        elapsed = time.monotonic() - started
        gate_s = None
        for line in process.stdout:
            record = json.loads(line) if line.startswith("{") else {}
            if record.get("event") == "server_ready":
                gate_s = record.get("golden_gate_s")
                break
        return elapsed, gate_s
    finally:
        process.kill()
        process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--golden-set", default=str(REPO / "tests" / "data" / "clips"))
    parser.add_argument("server_flags", nargs="*", help="after --: passed to the server")
    args = parser.parse_args(argv)
    off: list[float] = []
    on: list[float] = []
    gate: list[float] = []
    for run in range(args.runs):
        seconds, _ = one_run(None, args.server_flags)
        off.append(seconds)
        seconds, gate_s = one_run(args.golden_set, args.server_flags)
        on.append(seconds)
        gate.append(float(gate_s or 0.0))
        print(
            f"run {run + 1}: gate off {off[-1]:.2f} s, gate on {on[-1]:.2f} s (gate itself {gate[-1]:.3f} s)"
        )
    print(
        f"median start → /ready: gate off {statistics.median(off):.2f} s, "
        f"gate on {statistics.median(on):.2f} s, "
        f"gate itself {statistics.median(gate):.3f} s ({args.runs} runs each)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
