"""deploy_watch: documented ECS deployment events → SNS reports that name the model versions."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from ezspeech_common.deployments import cluster_and_service
from ezspeech_common.errors import ServiceNotFoundError
from ezspeech_common.events.ecs import DeploymentStateChangeEvent

from tests.functions.helpers import (
    CLUSTER,
    CONTAINER,
    SERVICE,
    TABLE,
    FakeContext,
    Platform,
    documented_event,
)


@pytest.fixture
def app(platform: Platform, load_handler: Any) -> Any:
    env = {"NOTIFY_TOPIC_ARN": platform.topic_arn, "IDEMPOTENCY_TABLE": TABLE}
    return load_handler("deploy_watch", env, platform.clients)


def event_for(platform: Platform, name: str, deployment_id: str) -> dict[str, Any]:
    event = documented_event(f"ecs_deployment_{name}")
    event["resources"] = [platform.service_arn]
    event["detail"]["deploymentId"] = deployment_id
    return event


def pin_model(platform: Platform, version: str) -> str:
    ecs = platform.clients.ecs
    arn = ecs.register_task_definition(
        family="ezspeech-test-asr",
        containerDefinitions=[
            {
                "name": CONTAINER,
                "image": "asr:v1",
                "memory": 512,
                "environment": [
                    {"name": "MODEL_URI", "value": f"s3://models-bucket/models/asr.pt?versionId={version}"},
                    {"name": "MODEL_SHA256", "value": "ab" * 32},
                ],
            }
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.update_service(cluster=CLUSTER, service=SERVICE, taskDefinition=arn)
    return arn


def test_completed_deployment_reports_the_running_model(platform: Platform, app: Any) -> None:
    pin_model(platform, "v2version")
    deployment = platform.clients.ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0][
        "deployments"
    ][0]
    result = app.lambda_handler(event_for(platform, "completed", deployment["id"]), FakeContext())

    assert result["outcome"] == "completed"
    [note] = platform.notifications()
    assert "deployment completed" in note["subject"]
    assert "models/asr.pt version v2version" in note["message"]
    assert note["attributes"] == {"kind": "deployment", "outcome": "completed"}


def test_failed_deployment_alert_names_what_the_service_runs_now(platform: Platform, app: Any) -> None:
    pin_model(platform, "goodversion")
    result = app.lambda_handler(event_for(platform, "failed", "ecs-svc/9999"), FakeContext())

    assert result["outcome"] == "failed"
    [alert] = platform.notifications()
    assert alert["subject"].startswith("[ezspeech][FAILED] deployment ecs-svc/9999")
    assert "circuit breaker: task failed to start" in alert["message"]
    assert "version goodversion" in alert["message"]
    assert "make rollback-model" in alert["message"]


def test_circuit_breaker_rollback_names_both_models(platform: Platform) -> None:
    """A deployment that failed while ECS rolls back: two deployments, which moto cannot show."""
    from ezspeech_common.deployments import report_deployment, report_text

    td = "arn:aws:ecs:us-east-1:123456789012:task-definition/ezspeech-test-asr:"
    ecs = boto3.client("ecs", region_name="us-east-1")

    def definition(revision: int, version: str) -> dict[str, Any]:
        env = [{"name": "MODEL_URI", "value": f"s3://b/models/asr.pt?versionId={version}"}]
        return {
            "taskDefinition": {
                "taskDefinitionArn": f"{td}{revision}",
                "containerDefinitions": [{"name": CONTAINER, "environment": env}],
            }
        }

    service = {
        "services": [
            {
                "status": "ACTIVE",
                "taskDefinition": f"{td}2",
                "deploymentConfiguration": {"deploymentCircuitBreaker": {"enable": True, "rollback": True}},
                "deployments": [
                    {
                        "id": "ecs-svc/3",
                        "status": "PRIMARY",
                        "taskDefinition": f"{td}2",
                        "rolloutState": "IN_PROGRESS",
                    },
                    {
                        "id": "ecs-svc/2",
                        "status": "ACTIVE",
                        "taskDefinition": f"{td}3",
                        "rolloutState": "FAILED",
                    },
                ],
            }
        ]
    }
    event = DeploymentStateChangeEvent.parse(event_for(platform, "failed", "ecs-svc/2"))
    with Stubber(ecs) as stub:
        stub.add_response("describe_services", service)
        stub.add_response("describe_task_definition", definition(3, "badversion"))
        stub.add_response("describe_task_definition", definition(2, "goodversion"))
        report = report_deployment(ecs, event, CONTAINER)
    assert report.outcome == "rolled_back"
    subject, lines = report_text(report)
    assert "[FAILED, rolled back]" in subject
    assert any("failed:" in line and "badversion" in line for line in lines)
    assert any("service now:" in line and "goodversion" in line for line in lines)


def test_in_progress_events_are_ignored(platform: Platform, app: Any) -> None:
    result = app.lambda_handler(event_for(platform, "in_progress", "ecs-svc/1"), FakeContext())
    assert result["outcome"] == "ignored"
    assert platform.notifications() == []


def idempotency_records(platform: Platform) -> list[dict[str, Any]]:
    return list(platform.clients.dynamodb.scan(TableName=TABLE)["Items"])


def test_redelivered_failure_alerts_once(
    platform: Platform, app: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    pin_model(platform, "goodversion")
    event = event_for(platform, "failed", "ecs-svc/9999")
    first = app.lambda_handler(event, FakeContext())
    redelivered = app.lambda_handler(event, FakeContext())

    assert first["outcome"] == "failed" and first["duplicate"] is False
    assert redelivered["duplicate"] is True
    assert redelivered["deployment_id"] == "ecs-svc/9999"
    assert len(platform.notifications()) == 1
    assert len(idempotency_records(platform)) == 1
    assert "DeploymentsDeduplicated" in capsys.readouterr().out  # the EMF line Powertools prints


def test_duplicate_under_a_new_event_id_is_caught_too(platform: Platform, app: Any) -> None:
    """ECS may emit the same state change twice: the key is the change, not EventBridge's id."""
    event = event_for(platform, "failed", "ecs-svc/9999")
    app.lambda_handler(event, FakeContext())
    again = {**event, "id": "00000000-0000-0000-0000-000000000001"}
    assert app.lambda_handler(again, FakeContext())["duplicate"] is True
    assert len(platform.notifications()) == 1


def test_each_event_name_of_a_deployment_is_reported_once(platform: Platform, app: Any) -> None:
    pin_model(platform, "v2version")
    failed = event_for(platform, "failed", "ecs-svc/4242")
    completed = event_for(platform, "completed", "ecs-svc/4242")
    other_deployment = event_for(platform, "failed", "ecs-svc/4343")
    for event in (failed, completed, other_deployment, failed, completed):
        app.lambda_handler(event, FakeContext())

    subjects = sorted(note["subject"] for note in platform.notifications())
    assert len(subjects) == 3
    assert sum("deployment completed" in subject for subject in subjects) == 1
    assert sum("ecs-svc/4242" in subject for subject in subjects) == 1  # the FAILED alert
    assert sum("ecs-svc/4343" in subject for subject in subjects) == 1
    assert len(idempotency_records(platform)) == 3


def test_ignored_events_create_no_idempotency_record(platform: Platform, app: Any) -> None:
    event = event_for(platform, "in_progress", "ecs-svc/1")
    app.lambda_handler(event, FakeContext())
    app.lambda_handler(event, FakeContext())
    assert idempotency_records(platform) == []
    assert platform.notifications() == []


def test_ignored_events_make_no_dynamodb_call(platform: Platform, load_handler: Any) -> None:
    from ezspeech_common.aws import AwsClients

    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    clients = AwsClients(ecs=platform.clients.ecs, sns=platform.clients.sns, dynamodb=dynamodb)
    app = load_handler(
        "deploy_watch", {"NOTIFY_TOPIC_ARN": platform.topic_arn, "IDEMPOTENCY_TABLE": TABLE}, clients
    )
    with Stubber(dynamodb):  # no responses queued: any DynamoDB call would raise
        result = app.lambda_handler(event_for(platform, "in_progress", "ecs-svc/1"), FakeContext())
    assert result["outcome"] == "ignored"


def test_a_failed_report_leaves_no_record_so_the_retry_runs(platform: Platform, app: Any) -> None:
    event = documented_event("ecs_deployment_failed")  # a service this account does not have
    for _ in range(2):  # the retry fails the same way, not with "already in progress"
        with pytest.raises(ServiceNotFoundError):
            app.lambda_handler(event, FakeContext())
    assert idempotency_records(platform) == []


def test_documented_event_for_an_unknown_service_fails_loudly(platform: Platform, app: Any) -> None:
    with pytest.raises(ServiceNotFoundError, match="servicetest"):
        app.lambda_handler(documented_event("ecs_deployment_failed"), FakeContext())


def test_service_arn_forms() -> None:
    assert cluster_and_service("arn:aws:ecs:us-west-2:111122223333:service/default/servicetest") == (
        "default",
        "servicetest",
    )
    assert cluster_and_service("arn:aws:ecs:us-west-2:111122223333:service/legacy") == ("default", "legacy")
    assert json.loads(json.dumps(cluster_and_service("arn:aws:ecs:r:1:service/c/s"))) == ["c", "s"]


# ------------------------------------------------------------------ the golden-set gate
GATE_RECORD: dict[str, Any] = {
    "component": "golden",
    "event": "golden_set_failed",
    "level": "error",
    "wer": 1.0,
    "max_wer": 0.2,
    "model_sha256": "cd" * 32,
    "worst": [{"clip": "clip1.wav", "wer": 1.0, "reference": "the blue street", "hypothesis": "uif cmvf"}],
    "exit_code": 3,
}
LOG_GROUP = "/ecs/ezspeech-test/asr-server"


def gated_revision(platform: Platform, version: str) -> str:
    """A revision like Terraform's: awslogs with a stream prefix, a golden set pinned."""
    return platform.clients.ecs.register_task_definition(
        family="ezspeech-test-asr",
        containerDefinitions=[
            {
                "name": CONTAINER,
                "image": "asr:v1",
                "memory": 512,
                "environment": [
                    {"name": "MODEL_URI", "value": f"s3://models-bucket/models/asr.pt?versionId={version}"},
                    {"name": "GOLDEN_SET", "value": "s3://models-bucket/models/golden/clips/?versionId=g1"},
                ],
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {"awslogs-group": LOG_GROUP, "awslogs-stream-prefix": "asr"},
                },
            }
        ],
    )["taskDefinition"]["taskDefinitionArn"]


def test_a_deployment_failed_by_the_golden_gate_is_named_with_its_wer(platform: Platform, app: Any) -> None:
    """Through the handler on moto: the failed deployment's stopped task and its awslogs stream."""
    good = pin_model(platform, "goodversion")
    bad = gated_revision(platform, "wrongtokens")
    ecs, deployment_id = platform.clients.ecs, "ecs-svc/5151"
    task = ecs.run_task(cluster=CLUSTER, taskDefinition=bad, startedBy=deployment_id, launchType="FARGATE")[
        "tasks"
    ][0]
    ecs.stop_task(cluster=CLUSTER, task=task["taskArn"], reason="Essential container in task exited")
    logs = boto3.client("logs", region_name="us-east-1")
    stream = f"asr/{CONTAINER}/{task['taskArn'].rsplit('/', 1)[-1]}"
    logs.create_log_group(logGroupName=LOG_GROUP)
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
    lines = [
        {"event": "golden_set_passed", "golden_wer": 0.0},
        GATE_RECORD,
    ]  # an earlier task's line, then ours
    logs.put_log_events(
        logGroupName=LOG_GROUP,
        logStreamName=stream,
        logEvents=[
            {"timestamp": int(time.time() * 1000) + i, "message": json.dumps(line)}
            for i, line in enumerate(lines)
        ],
    )
    ecs.update_service(cluster=CLUSTER, service=SERVICE, taskDefinition=good)  # the breaker's rollback

    result = app.lambda_handler(event_for(platform, "failed", deployment_id), FakeContext())

    assert result["stopped_task"]["gate_failed"] is True and result["stopped_task"]["golden_wer"] == 1.0
    [alert] = platform.notifications()
    assert alert["subject"].startswith(
        "[ezspeech][FAILED] golden-set gate, WER 1.00 > 0.2: deployment ecs-svc/5151"
    )
    assert "golden gate:   FAILED, WER 1.000 above GOLDEN_MAX_WER 0.2" in alert["message"]
    assert 'heard "uif cmvf" for "the blue street"' in alert["message"]
    assert "Essential container in task exited" in alert["message"]


def _stopped_task_stubs(exit_code: int, log_configuration: dict[str, Any] | None) -> tuple[Any, Any]:
    ecs = boto3.client("ecs", region_name="us-east-1")
    task_arn = f"arn:aws:ecs:us-east-1:123456789012:task/{CLUSTER}/0123456789abcdef"
    td_arn = "arn:aws:ecs:us-east-1:123456789012:task-definition/ezspeech-test-asr:7"
    stub = Stubber(ecs)
    stub.add_response("list_tasks", {"taskArns": [task_arn]})
    stub.add_response(
        "describe_tasks",
        {
            "tasks": [
                {
                    "taskArn": task_arn,
                    "taskDefinitionArn": td_arn,
                    "stoppedReason": "Essential container in task exited",
                    "containers": [{"name": CONTAINER, "exitCode": exit_code}],
                }
            ]
        },
    )
    container: dict[str, Any] = {"name": CONTAINER}
    if log_configuration is not None:
        container["logConfiguration"] = log_configuration
    stub.add_response(
        "describe_task_definition",
        {"taskDefinition": {"taskDefinitionArn": td_arn, "containerDefinitions": [container]}},
    )
    return ecs, stub


@pytest.mark.parametrize(
    ("exit_code", "expected"),
    [
        (3, "golden-set gate failed: the model's WER on its golden set is above GOLDEN_MAX_WER"),
        (4, "golden-set gate failed closed: the golden set could not be read"),
        (1, "the server did not start"),
    ],
)
def test_the_exit_status_names_the_gate_when_the_log_cannot_be_read(exit_code: int, expected: str) -> None:
    """ECS's own exit status (which moto cannot record) says which check stopped the task."""
    from ezspeech_common.deployments import inspect_stopped_tasks

    ecs, stub = _stopped_task_stubs(exit_code, log_configuration=None)
    with stub:
        found = inspect_stopped_tasks(ecs, None, CLUSTER, "ecs-svc/1", CONTAINER)
    assert found is not None and found.exit_code == exit_code
    assert found.gate_failed is (exit_code in (3, 4))
    assert any(expected in line for line in found.lines())


def test_the_gate_log_line_adds_the_wer_to_the_exit_status(platform: Platform) -> None:
    from ezspeech_common.deployments import inspect_stopped_tasks

    logs = boto3.client("logs", region_name="us-east-1")
    logs.create_log_group(logGroupName=LOG_GROUP)
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=f"asr/{CONTAINER}/0123456789abcdef")
    logs.put_log_events(
        logGroupName=LOG_GROUP,
        logStreamName=f"asr/{CONTAINER}/0123456789abcdef",
        logEvents=[{"timestamp": int(time.time() * 1000), "message": json.dumps(GATE_RECORD)}],
    )
    awslogs = {
        "logDriver": "awslogs",
        "options": {"awslogs-group": LOG_GROUP, "awslogs-stream-prefix": "asr"},
    }
    ecs, stub = _stopped_task_stubs(3, awslogs)
    with stub:
        found = inspect_stopped_tasks(ecs, logs, CLUSTER, "ecs-svc/1", CONTAINER)
    assert found is not None and (found.golden_wer, found.golden_max_wer) == (1.0, 0.2)
    assert found.worst_clip == GATE_RECORD["worst"][0]


def test_no_stopped_tasks_means_no_task_lines(platform: Platform, app: Any) -> None:
    pin_model(platform, "goodversion")
    result = app.lambda_handler(event_for(platform, "failed", "ecs-svc/7777"), FakeContext())
    assert result["stopped_task"] is None
    [alert] = platform.notifications()
    assert "golden" not in alert["subject"] and "stopped task" not in alert["message"]
