"""Cold-start import time of each Lambda handler vs a bare ``import boto3``, in fresh processes.

    python scripts/import_times.py [--runs 9]

Each measurement is a new interpreter (nothing cached in memory; the OS file cache is warm, as
on a warm Lambda host) with a Lambda-like environment: ``LAMBDA_TASK_ROOT`` and
``AWS_LAMBDA_FUNCTION_NAME`` set, so the Powertools Tracer really loads and patches the X-Ray
SDK as it does in Lambda. "import" is ``import app`` (module-level Logger/Tracer/Metrics,
settings, event models); "+ clients" also builds the boto3 clients the handler's main path
uses, which the handlers create lazily on first use. Prints a Markdown table of medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCTION_ENV = {
    "CLUSTER_NAME": "ezspeech-dev",
    "SERVICE_NAME": "asr",
    "CONTAINER_NAME": "asr-server",
    "MODEL_KEY_PREFIX": "models/",
    "NOTIFY_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:notify",
    "ALERT_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:alerts",
    "IDEMPOTENCY_TABLE": "idempotency",
    "SEVERITY_THRESHOLD": "HIGH",
    "CAPACITY_PARAMETER": "/ezspeech/dev/night-scaler/saved-capacity",
    "NIGHT_MIN_CAPACITY": "0",
    "NIGHT_MAX_CAPACITY": "0",
}
CLIENTS = {
    "model_rollout": ["s3", "ecs", "sns", "dynamodb"],
    "scan_alert": ["ecr", "ecs", "sns", "dynamodb"],
    "night_scaler": ["ssm", "autoscaling", "ecs"],
    "deploy_watch": ["ecs", "sns", "dynamodb"],
}
_PROBE = """
import json, sys, time
sys.path[:0] = {paths!r}
start, cpu = time.perf_counter(), time.process_time()
{statement}
imported, imported_cpu = time.perf_counter(), time.process_time()
{clients}
done, done_cpu = time.perf_counter(), time.process_time()
print(json.dumps({{"import": imported - start, "clients": done - start,
                  "import_cpu": imported_cpu - cpu, "clients_cpu": done_cpu - cpu}}))
"""


def lambda_env(function: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    env.pop("PYTHONPATH", None)
    env.pop("CONTAINER_NAME", None)
    env.update(FUNCTION_ENV)
    env.update(
        {
            "LAMBDA_TASK_ROOT": str(ROOT / "functions" / function),
            "AWS_LAMBDA_FUNCTION_NAME": f"ezspeech-{function}",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "POWERTOOLS_SERVICE_NAME": function,
            "POWERTOOLS_METRICS_NAMESPACE": "EzSpeech/ImportTimes",
        }
    )
    return env


def probe(function: str | None) -> dict[str, float]:
    if function is None:
        paths: list[str] = []
        statement, clients = "import boto3", "pass"
    else:
        paths = [str(ROOT / "functions" / function), str(ROOT / "functions" / "common")]
        statement = "import app"
        clients = "; ".join(f"app.CLIENTS.{name}" for name in CLIENTS[function])
    code = _PROBE.format(paths=paths, statement=statement, clients=clients)
    completed = subprocess.run(  # noqa: S603 (our own interpreter)
        [sys.executable, "-c", code],
        env=lambda_env(function or "model_rollout"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(completed.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args(argv)
    subjects: list[str | None] = [None, *CLIENTS]
    samples: dict[str | None, list[dict[str, float]]] = {s: [] for s in subjects}
    for _ in range(args.runs):  # interleaved, so background load hits every subject alike
        for subject in subjects:
            samples[subject].append(probe(subject))

    def median_ms(subject: str | None, field: str) -> float:
        return statistics.median(sample[field] for sample in samples[subject]) * 1000

    print(f"Python {sys.version.split()[0]}, {args.runs} fresh processes each, medians in ms.")
    print("CPU = process CPU time (robust to other load on the machine); wall = elapsed.\n")
    print(
        "| handler | import, CPU | vs `import boto3` | import, wall | vs `import boto3` "
        "| + its clients, CPU |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    base_cpu, base_wall = median_ms(None, "import_cpu"), median_ms(None, "import")
    print(f"| bare `import boto3` | {base_cpu:.0f} | 1.00x | {base_wall:.0f} | 1.00x | - |")
    for function in CLIENTS:
        cpu, wall = median_ms(function, "import_cpu"), median_ms(function, "import")
        print(
            f"| {function} | {cpu:.0f} | {cpu / base_cpu:.2f}x | {wall:.0f} | {wall / base_wall:.2f}x "
            f"| {median_ms(function, 'clients_cpu'):.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
