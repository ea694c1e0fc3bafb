"""night_scaler: the down/up round trip, idempotence, safe defaults, and rollouts left alone."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from ezspeech_common.errors import EventShapeError, ScalableTargetNotFoundError
from ezspeech_common.night import NightSettings, scale_down

from tests.functions.helpers import (
    CAPACITY_PARAMETER,
    CLUSTER,
    DESIRED,
    SCALABLE_RESOURCE,
    SERVICE,
    FakeContext,
    Platform,
    documented_event,
)

ENV = {
    "CLUSTER_NAME": CLUSTER,
    "SERVICE_NAME": SERVICE,
    "CAPACITY_PARAMETER": CAPACITY_PARAMETER,
    "NIGHT_MIN_CAPACITY": "0",
    "NIGHT_MAX_CAPACITY": "0",
}


@pytest.fixture
def app(platform: Platform, load_handler: Any) -> Any:
    return load_handler("night_scaler", ENV, platform.clients)


def capacity(platform: Platform) -> tuple[int, int, int]:
    target = platform.clients.autoscaling.describe_scalable_targets(
        ServiceNamespace="ecs", ResourceIds=[SCALABLE_RESOURCE], ScalableDimension=DESIRED
    )["ScalableTargets"][0]
    service = platform.clients.ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]
    return target["MinCapacity"], target["MaxCapacity"], service["desiredCount"]


def saved(platform: Platform) -> dict[str, Any]:
    return json.loads(platform.clients.ssm.get_parameter(Name=CAPACITY_PARAMETER)["Parameter"]["Value"])


def test_night_round_trip_restores_exactly(platform: Platform, app: Any) -> None:
    platform.clients.ecs.update_service(cluster=CLUSTER, service=SERVICE, desiredCount=3)
    assert capacity(platform) == (2, 6, 3)

    down = app.lambda_handler(documented_event("scheduler_scale_down"), FakeContext())
    assert down["status"] == "scaled_down"
    assert capacity(platform) == (0, 0, 0)
    assert saved(platform)["state"] == "night"
    assert saved(platform)["saved"] == {"min": 2, "max": 6, "desired": 3}

    up = app.lambda_handler(documented_event("scheduler_scale_up"), FakeContext())
    assert up["status"] == "scaled_up"
    assert capacity(platform) == (2, 6, 3)
    assert saved(platform)["state"] == "day"


def test_running_either_action_twice_is_harmless(platform: Platform, app: Any) -> None:
    app.lambda_handler({"action": "scale_down"}, FakeContext())
    second_down = app.lambda_handler({"action": "scale_down"}, FakeContext())
    assert second_down["status"] == "already_down"
    assert saved(platform)["saved"] == {"min": 2, "max": 6, "desired": 2}  # not overwritten by 0/0/0

    app.lambda_handler({"action": "scale_up"}, FakeContext())
    second_up = app.lambda_handler({"action": "scale_up"}, FakeContext())
    assert second_up["status"] == "already_up"
    assert capacity(platform) == (2, 6, 2)


def test_scale_up_with_nothing_saved_applies_safe_defaults_and_says_so(
    platform: Platform, app: Any, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    platform.clients.autoscaling.register_scalable_target(
        ServiceNamespace="ecs",
        ResourceId=SCALABLE_RESOURCE,
        ScalableDimension=DESIRED,
        MinCapacity=0,
        MaxCapacity=0,
    )
    platform.clients.ecs.update_service(cluster=CLUSTER, service=SERVICE, desiredCount=0)
    platform.clients.ssm.put_parameter(Name=CAPACITY_PARAMETER, Value='{"state": "unset"}', Type="String")

    result = app.lambda_handler({"action": "scale_up"}, FakeContext())
    assert result["status"] == "restored_defaults"
    assert "safe defaults" in result["note"]
    assert capacity(platform) == (1, 2, 1)
    assert "NightDefaultsRestored" in capsys.readouterr().out
    assert [r.levelname for r in caplog.records if r.getMessage() == "night_restored_defaults"] == ["WARNING"]


def test_defaults_never_shrink_a_running_service(platform: Platform, app: Any) -> None:
    result = app.lambda_handler({"action": "scale_up"}, FakeContext())  # parameter never written
    assert result["status"] == "restored_defaults"
    assert capacity(platform) == (2, 6, 2)


def test_scale_down_at_night_capacity_saves_nothing(platform: Platform, app: Any) -> None:
    platform.clients.autoscaling.register_scalable_target(
        ServiceNamespace="ecs",
        ResourceId=SCALABLE_RESOURCE,
        ScalableDimension=DESIRED,
        MinCapacity=0,
        MaxCapacity=0,
    )
    result = app.lambda_handler({"action": "scale_down"}, FakeContext())
    assert result["status"] == "already_at_night_capacity"
    assert capacity(platform) == (0, 0, 0)
    with pytest.raises(platform.clients.ssm.exceptions.ParameterNotFound):
        saved(platform)


def test_scale_down_during_a_rollout_is_deferred(platform: Platform) -> None:
    """moto keeps one deployment per service, so ECS is a botocore Stubber here."""
    ecs = boto3.client("ecs", region_name="us-east-1")
    rolling = {
        "services": [
            {
                "serviceName": SERVICE,
                "status": "ACTIVE",
                "desiredCount": 2,
                "taskDefinition": "arn:aws:ecs:us-east-1:123456789012:task-definition/f:2",
                "deployments": [
                    {"id": "ecs-svc/2", "status": "PRIMARY", "rolloutState": "IN_PROGRESS"},
                    {"id": "ecs-svc/1", "status": "ACTIVE", "rolloutState": "COMPLETED"},
                ],
            }
        ]
    }
    settings = NightSettings(cluster=CLUSTER, service=SERVICE, parameter=CAPACITY_PARAMETER)
    with Stubber(ecs) as stub:
        stub.add_response("describe_services", rolling)
        stub.add_response("describe_services", rolling)
        result = scale_down(platform.clients.ssm, platform.clients.autoscaling, ecs, settings)
        stub.assert_no_pending_responses()  # and no UpdateService was attempted
    assert result.status == "deferred"
    assert capacity(platform)[:2] == (2, 6)
    with pytest.raises(platform.clients.ssm.exceptions.ParameterNotFound):
        saved(platform)


def test_missing_scalable_target_is_a_clear_error(platform: Platform, app: Any) -> None:
    platform.clients.autoscaling.deregister_scalable_target(
        ServiceNamespace="ecs", ResourceId=SCALABLE_RESOURCE, ScalableDimension=DESIRED
    )
    with pytest.raises(ScalableTargetNotFoundError, match=SCALABLE_RESOURCE):
        app.lambda_handler({"action": "scale_down"}, FakeContext())


def test_unknown_action_is_rejected_and_logged(
    platform: Platform, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    logged: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(app.logger, "error", lambda message, extra: logged.append((message, extra)))
    why = "action: expected one of 'scale_down', 'scale_up', got 'scale_sideways'"
    with pytest.raises(EventShapeError, match=why):
        app.lambda_handler({"action": "scale_sideways"}, FakeContext())
    assert logged == [("event_rejected", {"error": why})]
    assert capacity(platform) == (2, 6, 2)  # nothing touched
