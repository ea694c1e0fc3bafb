"""model_rollout against the documented S3 "Object Created" shape and moto's own variant."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.stub import Stubber
from ezspeech_common.errors import (
    ModelChecksumError,
    ModelObjectNotFoundError,
    ModelSizeError,
    VersioningRequiredError,
)
from ezspeech_common.rollout import ModelRef, RolloutSettings, roll_out_model, sequencer_newer

from tests.functions.conftest import (
    BUCKET,
    CLUSTER,
    CONTAINER,
    PREFIX,
    SERVICE,
    TABLE,
    FakeContext,
    Platform,
    documented_event,
    object_created,
    put_model,
)

SETTINGS = RolloutSettings(cluster=CLUSTER, service=SERVICE, container_name=CONTAINER, model_key_prefix=PREFIX)


def env(platform: Platform) -> dict[str, str]:
    return {
        "CLUSTER_NAME": CLUSTER,
        "SERVICE_NAME": SERVICE,
        "CONTAINER_NAME": CONTAINER,
        "MODEL_KEY_PREFIX": PREFIX,
        "NOTIFY_TOPIC_ARN": platform.topic_arn,
        "IDEMPOTENCY_TABLE": TABLE,
    }


@pytest.fixture
def app(platform: Platform, load_handler: Any) -> Any:
    return load_handler("model_rollout", env(platform), platform.clients)


def service_revision(platform: Platform) -> dict[str, Any]:
    ecs = platform.clients.ecs
    arn = ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]["taskDefinition"]
    described = ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])
    return {**described["taskDefinition"], "tags": {t["key"]: t["value"] for t in described.get("tags", [])}}


def container_env(revision: dict[str, Any]) -> dict[str, str]:
    container = next(c for c in revision["containerDefinitions"] if c["name"] == CONTAINER)
    return {e["name"]: e["value"] for e in container.get("environment", [])}


def revision_count(platform: Platform) -> int:
    return len(platform.clients.ecs.list_task_definitions(familyPrefix="ezspeech-test-asr")["taskDefinitionArns"])


def test_documented_event_rolls_out_pinned_version_and_sha(platform: Platform, app: Any) -> None:
    uploaded = put_model(platform, "models/asr.pt")
    result = app.lambda_handler(object_created("models/asr.pt", uploaded["version_id"]), FakeContext())

    assert result["status"] == "started"
    revision = service_revision(platform)
    assert revision["taskDefinitionArn"] == result["task_definition_arn"] != platform.first_task_definition
    assert revision["revision"] == 2
    environment = container_env(revision)
    assert environment["MODEL_URI"] == f"s3://{BUCKET}/models/asr.pt?versionId={uploaded['version_id']}"
    assert environment["MODEL_SHA256"] == uploaded["sha256"]
    assert environment["LOG_LEVEL"] == "INFO"  # the rest of the container is copied
    # the copy keeps everything RegisterTaskDefinition accepts, tags included
    assert revision["taskRoleArn"].endswith("role/ezspeech-test-task")
    assert revision["cpu"] == "1024" and revision["networkMode"] == "awsvpc"
    assert [c["name"] for c in revision["containerDefinitions"]] == [CONTAINER, "log-router"]
    assert revision["tags"]["project"] == "ezspeech"
    assert revision["tags"]["ezspeech:model-version"] == uploaded["version_id"]
    assert revision["tags"]["ezspeech:newest-sequencer"] == "617f08299329d189"

    [note] = platform.notifications()
    assert "models/asr.pt" in note["subject"]
    details = json.loads(note["message"].split("\n\n", 1)[1])
    assert details["version_id"] == uploaded["version_id"]
    assert details["task_definition_arn"] == result["task_definition_arn"]
    assert "deployment_id" in details
    assert note["attributes"]["kind"] == "rollout"
