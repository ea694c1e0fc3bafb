"""Invoke one real Lambda handler the way the Lambda runtime would, in a fresh process.

``python -m demo.lambda_runner <function> <result.json>`` reads the event (JSON) on stdin,
imports ``functions/<function>/app.py`` with that folder and the shared layer on ``sys.path``
(the runtime's layout: the function's folder is the code root, the layer is on the path), calls
``lambda_handler(event, context)`` and writes ``{"ok": ..., "result"|"error": ...}`` to the
result file. Every invocation is a cold start, so env vars are read at import as in Lambda.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from demo.moto_server import environment_without_aws

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class LocalLambdaContext:
    """The attributes Powertools reads from the runtime's context object."""

    function_name: str
    memory_limit_in_mb: int = 256
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@dataclass
class Invocation:
    """The outcome of one handler invocation."""

    function: str
    ok: bool
    result: Any
    error: str
    logs: str
    seconds: float


def invoke(function: str, event: dict[str, Any], env: dict[str, str], timeout_s: float = 120) -> Invocation:
    """Run ``functions/<function>/app.py:lambda_handler`` on ``event`` in a fresh process with ``env``."""
    if not (REPO_ROOT / "functions" / function / "app.py").is_file():
        raise FileNotFoundError(f"functions/{function}/app.py does not exist")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="demo-lambda-") as scratch:
        result_path = Path(scratch) / "result.json"
        completed = subprocess.run(  # noqa: S603 (our own interpreter and module)
            [sys.executable, "-m", "demo.lambda_runner", function, str(result_path)],
            input=json.dumps(event).encode(),
            capture_output=True,
            env={**environment_without_aws(), "PYTHONPATH": str(REPO_ROOT), **env},
            cwd=REPO_ROOT,
            timeout=timeout_s,
            check=False,
        )
        logs = (completed.stdout + completed.stderr).decode(errors="replace")
        if not result_path.exists():
            return Invocation(function, False, None, f"runner exited {completed.returncode}", logs, 0.0)
        outcome = json.loads(result_path.read_text())
    return Invocation(
        function=function,
        ok=bool(outcome["ok"]),
        result=outcome.get("result"),
        error=str(outcome.get("error", "")),
        logs=logs,
        seconds=time.monotonic() - started,
    )


def main(argv: list[str]) -> int:
    function, result_path = argv[1], Path(argv[2])
    sys.path[:0] = [str(REPO_ROOT / "functions" / function), str(REPO_ROOT / "functions" / "common")]
    event = json.load(sys.stdin)
    try:
        handler = importlib.import_module("app").lambda_handler
        result = handler(event, LocalLambdaContext(function_name=f"ezspeech-demo-{function}"))
    except Exception as error:  # reported to the caller like the runtime reports a failed invocation
        traceback.print_exc()
        result_path.write_text(json.dumps({"ok": False, "error": f"{type(error).__name__}: {error}"}))
        return 1
    result_path.write_text(json.dumps({"ok": True, "result": result}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
