"""model_rollout against the documented S3 "Object Created" shape and moto's own variant."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.stub import ANY, Stubber
from ezspeech_common.errors import (
    ModelChecksumError,
    ModelObjectNotFoundError,
    ModelSizeError,
    VersioningRequiredError,
)
from ezspeech_common.rollout import ModelRef, RolloutSettings, roll_out_model, sequencer_newer

from tests.functions.helpers import (
    BUCKET,
    CLUSTER,
    CONTAINER,
    PREFIX,
    SERVICE,
    TABLE,
    FakeContext,
    Platform,
    container_env,
    documented_event,
    object_created,
    put_model,
    revision_count,
    rollout_env,
    service_revision,
)

TD_ARN = "arn:aws:ecs:us-east-1:123456789012:task-definition/ezspeech-test-asr:"
SETTINGS = RolloutSettings(
    cluster=CLUSTER, service=SERVICE, container_name=CONTAINER, model_key_prefix=PREFIX
)


@pytest.fixture
def app(platform: Platform, load_handler: Any) -> Any:
    return load_handler("model_rollout", rollout_env(platform), platform.clients)


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


def test_same_event_delivered_twice_deploys_once(platform: Platform, app: Any) -> None:
    uploaded = put_model(platform, "models/asr.pt")
    event = object_created("models/asr.pt", uploaded["version_id"])
    first = app.lambda_handler(event, FakeContext())
    second = app.lambda_handler(event, FakeContext())

    assert second["duplicate"] is True
    assert second["task_definition_arn"] == first["task_definition_arn"]
    assert revision_count(platform) == 2
    assert len(platform.notifications()) == 1


def test_redelivery_after_idempotency_expiry_is_skipped_as_already_deployed(
    platform: Platform, app: Any
) -> None:
    uploaded = put_model(platform, "models/asr.pt")
    event = object_created("models/asr.pt", uploaded["version_id"])
    app.lambda_handler(event, FakeContext())
    platform.clients.dynamodb.delete_table(TableName=TABLE)  # the record is gone, as after its TTL
    platform.clients.dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    again = app.lambda_handler(event, FakeContext())
    assert (again["status"], again["reason"]) == ("skipped", "already_deployed")
    assert revision_count(platform) == 2


def test_older_event_arriving_late_never_overrides_newer(platform: Platform, app: Any) -> None:
    old = put_model(platform, "models/asr.pt", b"old" * 1000)
    new = put_model(platform, "models/asr.pt", b"new" * 1000)
    newer = app.lambda_handler(
        object_created("models/asr.pt", new["version_id"], "0062A1B2C3D4E5F601"), FakeContext()
    )
    late = app.lambda_handler(
        object_created("models/asr.pt", old["version_id"], "0062A1B2C3D4E5F600"), FakeContext()
    )

    assert newer["status"] == "started"
    assert (late["status"], late["reason"]) == ("skipped", "older_than_deployed")
    assert container_env(service_revision(platform))["MODEL_SHA256"] == new["sha256"]
    assert revision_count(platform) == 2


def test_sequencers_compare_after_left_padding() -> None:
    assert sequencer_newer("0A", "9") is True  # 0A > 09 once padded
    assert sequencer_newer("617f08299329d189", "617F08299329D18A") is False
    assert sequencer_newer("617f08299329d189", "617f08299329d189") is None  # moto sends one constant


def test_moto_constant_sequencer_falls_back_to_last_modified(platform: Platform, app: Any) -> None:
    first = put_model(platform, "models/asr.pt", b"one" * 1000)
    app.lambda_handler(object_created("models/asr.pt", first["version_id"]), FakeContext())
    second = put_model(platform, "models/asr.pt", b"two" * 1000)
    result = app.lambda_handler(object_created("models/asr.pt", second["version_id"]), FakeContext())
    assert result["status"] == "started"
    assert container_env(service_revision(platform))["MODEL_SHA256"] == second["sha256"]


@pytest.mark.parametrize("key", ["other/asr.pt", "models/notes.txt", "models/", "modelsx/asr.pt", "asr.pt"])
def test_keys_outside_prefix_or_without_checkpoint_suffix_are_ignored(
    platform: Platform, app: Any, key: str
) -> None:
    result = app.lambda_handler(object_created(key, "v1"), FakeContext())
    assert result["status"] == "ignored"
    assert revision_count(platform) == 1
    assert platform.notifications() == []


def test_documented_event_verbatim_is_ignored_for_its_foreign_key(platform: Platform, app: Any) -> None:
    # "example-key" in "amzn-s3-demo-bucket1" straight from the S3 docs: parsed, then ignored.
    result = app.lambda_handler(documented_event("s3_object_created"), FakeContext())
    assert result == {
        "status": "ignored",
        "reason": "not_a_model_key",
        "bucket": "amzn-s3-demo-bucket1",
        "key": "example-key",
    }


def test_unversioned_bucket_is_a_clear_error(platform: Platform, app: Any) -> None:
    platform.clients.s3.put_object(
        Bucket=BUCKET, Key="models/asr.pt", Body=b"x" * 4000, Metadata={"sha256": "0" * 64}
    )
    with pytest.raises(VersioningRequiredError, match="Enable versioning"):
        app.lambda_handler(object_created("models/asr.pt", None), FakeContext())
    with pytest.raises(VersioningRequiredError):
        app.lambda_handler(object_created("models/asr.pt", "null"), FakeContext())
    assert revision_count(platform) == 1


def test_missing_sha256_metadata_is_a_clear_error(platform: Platform, app: Any) -> None:
    uploaded = put_model(platform, "models/asr.pt", sha256=None)
    with pytest.raises(ModelChecksumError, match="sha256"):
        app.lambda_handler(object_created("models/asr.pt", uploaded["version_id"]), FakeContext())
    malformed = put_model(platform, "models/asr.pt", sha256="not-a-digest")
    with pytest.raises(ModelChecksumError):
        app.lambda_handler(object_created("models/asr.pt", malformed["version_id"]), FakeContext())
    assert revision_count(platform) == 1


def test_missing_version_and_tiny_object_are_refused(platform: Platform, app: Any) -> None:
    with pytest.raises(ModelObjectNotFoundError):
        app.lambda_handler(object_created("models/asr.pt", "3HL4kqtJvjVBH40Nrjfkd"), FakeContext())
    tiny = put_model(platform, "models/tiny.pt", b"x" * 10)
    with pytest.raises(ModelSizeError):
        app.lambda_handler(object_created("models/tiny.pt", tiny["version_id"]), FakeContext())


def test_failed_attempt_is_retried_not_remembered(platform: Platform, app: Any) -> None:
    # The first delivery fails (metadata missing); once fixed upstream the retry must run, which
    # Powertools allows because a failed attempt deletes its in-progress record.
    uploaded = put_model(platform, "models/asr.pt")
    event = object_created("models/asr.pt", uploaded["version_id"])
    platform.clients.ecs.delete_service(cluster=CLUSTER, service=SERVICE, force=True)
    with pytest.raises(Exception, match="not found"):
        app.lambda_handler(event, FakeContext())
    platform.clients.ecs.create_service(
        cluster=CLUSTER, serviceName=SERVICE, taskDefinition=platform.first_task_definition, desiredCount=1
    )
    assert app.lambda_handler(event, FakeContext())["status"] == "started"


def test_moto_s3_eventbridge_delivery_rolls_out(platform: Platform, app: Any) -> None:
    """moto's own S3 → EventBridge event (eTag, reason, constant sequencer), delivered through SQS."""
    import boto3

    events, sqs = boto3.client("events", region_name="us-east-1"), platform.sqs
    queue = sqs.create_queue(QueueName="model-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="model-uploaded",
        EventPattern=json.dumps(
            {
                "source": ["aws.s3"],
                "detail-type": ["Object Created"],
                "detail": {"bucket": {"name": [BUCKET]}},
            }
        ),
    )
    events.put_targets(Rule="model-uploaded", Targets=[{"Id": "q", "Arn": queue_arn}])
    platform.clients.s3.put_bucket_notification_configuration(
        Bucket=BUCKET, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    uploaded = put_model(platform, "models/asr.pt")
    [message] = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    delivered = json.loads(message["Body"])
    assert "eTag" in delivered["detail"]["object"]  # moto's variant: eTag, not the documented etag
    assert delivered["detail"]["reason"] == "ObjectCreated"

    result = app.lambda_handler(delivered, FakeContext())
    assert result["status"] == "started"
    assert container_env(service_revision(platform))["MODEL_URI"].endswith(uploaded["version_id"])


def _stub_service(deployments: list[dict[str, Any]], task_definition: dict[str, Any]) -> dict[str, Any]:
    return {
        "services": [
            {
                "serviceName": SERVICE,
                "status": "ACTIVE",
                "taskDefinition": task_definition["taskDefinitionArn"],
                "deployments": deployments,
            }
        ]
    }


def test_rollout_in_progress_is_superseded_and_reported(platform: Platform) -> None:
    """moto cannot show two deployments at once, so ECS is a botocore Stubber here."""
    import boto3

    uploaded = put_model(platform, "models/asr.pt")
    current: dict[str, Any] = {
        "taskDefinitionArn": TD_ARN + "7",
        "family": "ezspeech-test-asr",
        "revision": 7,
        "status": "ACTIVE",
        "registeredAt": "2026-11-26T07:00:00Z",
        "requiresAttributes": [{"name": "com.amazonaws.ecs.capability.task-iam-role"}],
        "compatibilities": ["EC2", "FARGATE"],
        "containerDefinitions": [{"name": CONTAINER, "image": "asr:v1", "environment": []}],
    }
    deployments = [
        {
            "id": "ecs-svc/2",
            "status": "PRIMARY",
            "taskDefinition": current["taskDefinitionArn"],
            "rolloutState": "IN_PROGRESS",
        },
        {
            "id": "ecs-svc/1",
            "status": "ACTIVE",
            "taskDefinition": TD_ARN + "6",
            "rolloutState": "COMPLETED",
        },
    ]
    new_arn = TD_ARN + "8"
    ecs = boto3.client("ecs", region_name="us-east-1")
    with Stubber(ecs) as stub:
        stub.add_response(
            "describe_services",
            _stub_service(deployments, current),
            {"cluster": CLUSTER, "services": [SERVICE]},
        )
        stub.add_response(
            "describe_task_definition", {"taskDefinition": current, "tags": [{"key": "team", "value": "asr"}]}
        )
        expected_uri = f"s3://{BUCKET}/models/asr.pt?versionId={uploaded['version_id']}"
        stub.add_response(
            "register_task_definition",
            {"taskDefinition": {"taskDefinitionArn": new_arn}},
            {
                "family": "ezspeech-test-asr",
                "containerDefinitions": [
                    {
                        "name": CONTAINER,
                        "image": "asr:v1",
                        "environment": [
                            {"name": "MODEL_SHA256", "value": uploaded["sha256"]},
                            {"name": "MODEL_URI", "value": expected_uri},
                        ],
                    }
                ],
                "tags": ANY,
            },
        )
        stub.add_response(
            "update_service",
            {
                "service": {
                    "deployments": [{"id": "ecs-svc/3", "status": "PRIMARY", "taskDefinition": new_arn}]
                }
            },
            {"cluster": CLUSTER, "service": SERVICE, "taskDefinition": new_arn},
        )
        result = roll_out_model(
            platform.clients.s3,
            ecs,
            SETTINGS,
            ModelRef(BUCKET, "models/asr.pt", uploaded["version_id"], "01"),
        )
        stub.assert_no_pending_responses()
    assert result.status == "started"
    assert result.reason == "superseded_in_progress_rollout"
    assert result.superseded_deployment_ids == ["ecs-svc/1"]
    assert result.deployment_id == "ecs-svc/3"


def test_throttled_ecs_calls_are_retried_until_they_succeed(
    platform: Platform, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.awsrequest import AWSResponse, HTTPHeaders

    sleeps: list[float] = []
    monkeypatch.setattr("botocore.endpoint.time.sleep", sleeps.append)
    throttled: dict[str, int] = {"left": 2, "calls": 0}

    def throttle(request: Any, **_: Any) -> AWSResponse | None:
        throttled["calls"] += 1
        if throttled["left"] == 0:
            return None  # let moto answer
        throttled["left"] -= 1
        body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
        return AWSResponse(request.url, 400, HTTPHeaders.from_dict({"x-amzn-requestid": "t"}), _Raw(body))

    import boto3
    from ezspeech_common.aws import RETRY_CONFIG

    ecs = boto3.client("ecs", region_name="us-east-1", config=RETRY_CONFIG)
    ecs.meta.events.register_first("before-send.ecs.RegisterTaskDefinition", throttle)  # type: ignore[arg-type]
    platform.clients.__dict__["ecs"] = ecs
    uploaded = put_model(platform, "models/asr.pt")

    result = app.lambda_handler(object_created("models/asr.pt", uploaded["version_id"]), FakeContext())
    assert result["status"] == "started"
    assert throttled["calls"] == 3  # two throttles, then the real call
    assert len([s for s in sleeps if s > 0]) >= 2  # backed off between attempts


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body

    def read(self, *_: Any) -> bytes:
        return self._body
