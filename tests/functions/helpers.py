"""A small AWS account in moto for the Lambda and ops tests (the names Terraform and SAM would
create), and what those tests read back from it."""

from __future__ import annotations

import copy
import importlib
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import boto3
import pytest
from ezspeech_common.aws import AwsClients
from moto import mock_aws

EVENTS = Path(__file__).resolve().parent.parent / "events"
REGION = "us-east-1"
ACCOUNT = "123456789012"
CLUSTER, SERVICE, CONTAINER = "ezspeech-test", "asr", "asr-server"
BUCKET, PREFIX = "ezspeech-test-models", "models/"
TABLE, REPOSITORY = "ezspeech-test-idempotency", "ezspeech-asr"
CAPACITY_PARAMETER = "/ezspeech/test/night-scaler/saved-capacity"
SCALABLE_RESOURCE = f"service/{CLUSTER}/{SERVICE}"
DESIRED: Final = "ecs:service:DesiredCount"


def documented_event(name: str) -> dict[str, Any]:
    """A copy of an AWS-documented example event from tests/events/."""
    return copy.deepcopy(json.loads((EVENTS / f"{name}.json").read_text()))


@dataclass
class Platform:
    """What the tests read back: handles to the moto resources."""

    clients: AwsClients
    topic_arn: str
    inbox_url: str
    first_task_definition: str
    service_arn: str
    sqs: Any
    extra: dict[str, Any] = field(default_factory=dict)

    def notifications(self) -> list[dict[str, Any]]:
        """Every SNS message published so far (drained from the subscribed queue)."""
        messages: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.inbox_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not batch:
                return messages
            for message in batch:
                body = json.loads(message["Body"])
                messages.append(
                    {
                        "subject": body.get("Subject", ""),
                        "message": body["Message"],
                        "attributes": {k: v["Value"] for k, v in body.get("MessageAttributes", {}).items()},
                    }
                )
                self.sqs.delete_message(QueueUrl=self.inbox_url, ReceiptHandle=message["ReceiptHandle"])


def _client(name: str) -> Any:
    return boto3.client(name, region_name=REGION)  # type: ignore[call-overload]


@contextmanager
def moto_platform() -> Iterator[Platform]:
    """The account the Lambda and ops tests share, in moto (in-process: no socket is opened)."""
    with mock_aws():
        s3, ecs, sns, sqs, ddb = (_client(n) for n in ("s3", "ecs", "sns", "sqs", "dynamodb"))
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        ddb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        topic_arn = sns.create_topic(Name="ezspeech-test-notify")["TopicArn"]
        inbox_url = sqs.create_queue(QueueName="inbox")["QueueUrl"]
        inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=inbox_arn)
        ecs.create_cluster(clusterName=CLUSTER)
        first = ecs.register_task_definition(
            family="ezspeech-test-asr",
            taskRoleArn=f"arn:aws:iam::{ACCOUNT}:role/ezspeech-test-task",
            executionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/ezspeech-test-execution",
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="1024",
            memory="4096",
            containerDefinitions=[
                {
                    "name": CONTAINER,
                    "image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{REPOSITORY}:v1",
                    "essential": True,
                    "portMappings": [{"containerPort": 8765}, {"containerPort": 8080}],
                    "environment": [{"name": "LOG_LEVEL", "value": "INFO"}],
                },
                {"name": "log-router", "image": "fluent-bit:latest", "essential": False},
            ],
            tags=[{"key": "project", "value": "ezspeech"}, {"key": "environment", "value": "test"}],
        )["taskDefinition"]["taskDefinitionArn"]
        service = ecs.create_service(
            cluster=CLUSTER, serviceName=SERVICE, taskDefinition=first, desiredCount=2
        )["service"]
        aas = _client("application-autoscaling")
        aas.register_scalable_target(
            ServiceNamespace="ecs",
            ResourceId=SCALABLE_RESOURCE,
            ScalableDimension=DESIRED,
            MinCapacity=2,
            MaxCapacity=6,
        )
        clients = AwsClients(
            s3=s3, ecs=ecs, sns=sns, dynamodb=ddb, ssm=_client("ssm"), ecr=_client("ecr"), autoscaling=aas
        )
        yield Platform(clients, topic_arn, inbox_url, first, service["serviceArn"], sqs)


def put_model(
    platform: Platform, key: str, body: bytes | None = None, sha256: str | None = "auto"
) -> dict[str, Any]:
    """Upload like `make upload-model` does; returns {version_id, sha256, size}."""
    import hashlib

    data = body if body is not None else b"checkpoint" * 400
    digest = hashlib.sha256(data).hexdigest()
    metadata = {} if sha256 is None else {"sha256": digest if sha256 == "auto" else sha256}
    response = platform.clients.s3.put_object(Bucket=BUCKET, Key=key, Body=data, Metadata=metadata)
    return {"version_id": response["VersionId"], "sha256": digest, "size": len(data)}


def object_created(
    key: str, version_id: str | None, sequencer: str = "617f08299329d189", size: int = 4000
) -> dict[str, Any]:
    """The documented S3 "Object Created" event, for our bucket and an uploaded version."""
    event = documented_event("s3_object_created")
    event["resources"] = [f"arn:aws:s3:::{BUCKET}"]
    event["detail"]["bucket"]["name"] = BUCKET
    event["detail"]["object"].update({"key": key, "size": size, "sequencer": sequencer})
    if version_id is None:
        event["detail"]["object"].pop("version-id")
    else:
        event["detail"]["object"]["version-id"] = version_id
    return event


#: Every env var a handler reads (tests/infra checks the template sets them all).
HANDLER_ENV = (
    "CLUSTER_NAME",
    "SERVICE_NAME",
    "CONTAINER_NAME",
    "MODEL_KEY_PREFIX",
    "NOTIFY_TOPIC_ARN",
    "IDEMPOTENCY_TABLE",
    "MIN_MODEL_BYTES",
    "MAX_MODEL_BYTES",
    "ALERT_TOPIC_ARN",
    "SEVERITY_THRESHOLD",
    "CAPACITY_PARAMETER",
    "NIGHT_MIN_CAPACITY",
    "NIGHT_MAX_CAPACITY",
    "DEFAULT_MIN_CAPACITY",
    "DEFAULT_MAX_CAPACITY",
)


@dataclass
class FakeContext:
    function_name: str = "ezspeech-test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ezspeech-test"
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    log_group_name: str = "/aws/lambda/ezspeech-test"
    log_stream_name: str = "2026/11/26/[$LATEST]abc"
    function_version: str = "$LATEST"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def rollout_env(platform: Platform) -> dict[str, str]:
    return {
        "CLUSTER_NAME": CLUSTER,
        "SERVICE_NAME": SERVICE,
        "CONTAINER_NAME": CONTAINER,
        "MODEL_KEY_PREFIX": PREFIX,
        "NOTIFY_TOPIC_ARN": platform.topic_arn,
        "IDEMPOTENCY_TABLE": TABLE,
    }


def service_revision(platform: Platform) -> dict[str, Any]:
    ecs = platform.clients.ecs
    arn = ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]["taskDefinition"]
    described = ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])
    return {**described["taskDefinition"], "tags": {t["key"]: t["value"] for t in described.get("tags", [])}}


def container_env(revision: dict[str, Any]) -> dict[str, str]:
    container = next(c for c in revision["containerDefinitions"] if c["name"] == CONTAINER)
    return {e["name"]: e["value"] for e in container.get("environment", [])}


def revision_count(platform: Platform) -> int:
    return len(
        platform.clients.ecs.list_task_definitions(familyPrefix="ezspeech-test-asr")["taskDefinitionArns"]
    )


@contextmanager
def handler_loader(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[[str, dict[str, str], AwsClients], ModuleType]]:
    """Import ``functions/<name>/app.py`` fresh (cold start) with ``env`` and the test's clients."""
    loaded: list[str] = []

    def load(name: str, env: dict[str, str], clients: AwsClients) -> ModuleType:
        for key in HANDLER_ENV:  # the machine's own environment must not leak into a handler
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        module_name = f"functions.{name}.app"
        sys.modules.pop(module_name, None)
        module = importlib.import_module(module_name)
        module.CLIENTS = clients  # type: ignore[attr-defined]
        loaded.append(module_name)
        return module

    yield load
    for module_name in loaded:
        sys.modules.pop(module_name, None)
