"""The real way round: moto in server mode, `python -m ops.upload_model`, S3 → EventBridge → SQS,
and the model_rollout handler imported cold in a fresh process with the Lambda layout
(function folder + layer on sys.path), talking to moto only through ``AWS_ENDPOINT_URL``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]
REGION, CLUSTER, SERVICE, BUCKET, TABLE = "us-east-1", "e2e", "asr", "e2e-models", "e2e-idempotency"
pytestmark = pytest.mark.slow

_INVOKE = """
import json, sys
sys.path[:0] = [{function_dir!r}, {layer_dir!r}]
import app

class Context:
    function_name = "model_rollout"; memory_limit_in_mb = 256; function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:model_rollout"
    aws_request_id = "e2e"
    def get_remaining_time_in_millis(self): return 60000

result = app.lambda_handler(json.load(sys.stdin), Context())
print("RESULT " + json.dumps(result))
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def moto_server(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    with (tmp_path / "moto.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1)  # noqa: S310 (loopback)
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError((tmp_path / "moto.log").read_text()[-2000:]) from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _env(endpoint: str, **extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT")}
    return {
        **keep,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "PYTHONPATH": str(ROOT),  # the layer path is ops' own business
        **extra,
    }


def _provision(endpoint: str) -> dict[str, Any]:
    def client(name: str) -> Any:
        return boto3.client(name, endpoint_url=endpoint, region_name=REGION)  # type: ignore[call-overload]

    s3, events, sqs, ecs, ddb, sns = (client(n) for n in ("s3", "events", "sqs", "ecs", "dynamodb", "sns"))
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    queue = sqs.create_queue(QueueName="model-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    pattern = {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [BUCKET]}, "object": {"key": [{"wildcard": "models/*.pt"}]}},
    }
    events.put_rule(Name="model-uploaded", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="model-uploaded", Targets=[{"Id": "q", "Arn": queue_arn}])
    ddb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ecs.create_cluster(clusterName=CLUSTER)
    first = ecs.register_task_definition(
        family="e2e-asr", containerDefinitions=[{"name": "asr-server", "image": "asr:v1", "memory": 2048}]
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(cluster=CLUSTER, serviceName=SERVICE, taskDefinition=first, desiredCount=1)
    topic = sns.create_topic(Name="notify")["TopicArn"]
    return {"sqs": sqs, "queue": queue, "ecs": ecs, "topic": topic}


def _invoke(endpoint: str, topic: str, event: dict[str, Any]) -> dict[str, Any]:
    code = _INVOKE.format(
        function_dir=str(ROOT / "functions" / "model_rollout"), layer_dir=str(ROOT / "functions" / "common")
    )
    env = _env(
        endpoint,
        CLUSTER_NAME=CLUSTER,
        SERVICE_NAME=SERVICE,
        CONTAINER_NAME="asr-server",
        MODEL_KEY_PREFIX="models/",
        NOTIFY_TOPIC_ARN=topic,
        IDEMPOTENCY_TABLE=TABLE,
        POWERTOOLS_TRACE_DISABLED="true",
    )
    env.pop("PYTHONPATH")  # Lambda's layout only: the function folder and the layer
    completed = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(event),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    line = next(line for line in completed.stdout.splitlines() if line.startswith("RESULT "))
    return dict(json.loads(line.removeprefix("RESULT ")))


def test_upload_then_cold_handler_pins_the_version_once(moto_server: str, tmp_path: Path) -> None:
    aws = _provision(moto_server)
    model = tmp_path / "asr.pt"
    model.write_bytes(os.urandom(4096))
    uploaded = subprocess.run(
        [sys.executable, "-m", "ops.upload_model", str(model), "--bucket", BUCKET],
        env=_env(moto_server),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    upload = json.loads(uploaded.stdout)

    messages = aws["sqs"].receive_message(QueueUrl=aws["queue"], MaxNumberOfMessages=10)["Messages"]
    [event] = [json.loads(m["Body"]) for m in messages]
    assert event["detail"]["object"]["version-id"] == upload["version_id"]

    first = _invoke(moto_server, aws["topic"], event)
    again = _invoke(moto_server, aws["topic"], event)
    assert first["status"] == "started"
    assert again.get("duplicate") is True

    service = aws["ecs"].describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]
    definition = aws["ecs"].describe_task_definition(taskDefinition=service["taskDefinition"])[
        "taskDefinition"
    ]
    env = {e["name"]: e["value"] for e in definition["containerDefinitions"][0]["environment"]}
    assert env["MODEL_URI"] == f"s3://{BUCKET}/models/asr.pt?versionId={upload['version_id']}"
    assert env["MODEL_SHA256"] == upload["sha256"]
    assert definition["revision"] == 2
