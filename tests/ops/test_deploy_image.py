"""`python -m ops.deploy_image`: a new image reaches the service with nothing else changed, and an
image that is missing, unscanned or has findings at the alert threshold never does."""

from __future__ import annotations

import json
from typing import Any

import pytest
from moto.ecr.models import ecr_backends

from ops import deploy_image
from tests.functions.helpers import ACCOUNT, CLUSTER, REGION, REPOSITORY, SERVICE, Platform

NAMES = ["--cluster", CLUSTER, "--service", SERVICE, "--repository", REPOSITORY, "--no-wait"]
MODEL_URI = "s3://ezspeech-test-models/models/asr.pt?versionId=v7"
SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:ezspeech-test-client-tokens-AbCdEf:::ver-3"


def push(platform: Platform, tag: str) -> str:
    """An image pushed under ``tag``; returns its digest."""
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"digest": f"sha256:{tag:0>64}"},
            # moto derives the digest from the layers: one per tag keeps each tag its own image.
            "layers": [{"digest": f"sha256:{tag:0>64}", "size": 1}],
        }
    )
    image = platform.clients.ecr.put_image(repositoryName=REPOSITORY, imageManifest=manifest, imageTag=tag)
    return str(image["image"]["imageId"]["imageDigest"])


def scan(platform: Platform, tag: str, digest: str, counts: dict[str, int] | None) -> None:
    """Scan ``tag``; ``counts`` None keeps moto's default result (one HIGH finding)."""
    if counts is not None:
        ecr_backends[ACCOUNT][REGION].scan_finding_results.append(
            {
                "repositoryName": REPOSITORY,
                "imageId": {"imageDigest": digest},
                "imageScanStatus": {"status": "COMPLETE"},
                "imageScanFindings": {"findingSeverityCounts": counts, "findings": []},
            }
        )
    platform.clients.ecr.start_image_scan(repositoryName=REPOSITORY, imageId={"imageTag": tag})


@pytest.fixture
def running(platform: Platform) -> dict[str, Any]:
    """The service on a revision that pins a model, a golden set and a tokens secret version."""
    ecs: Any = platform.clients.ecs  # the revision is built from plain dicts
    platform.clients.ecr.create_repository(repositoryName=REPOSITORY)
    first = ecs.describe_task_definition(taskDefinition=platform.first_task_definition)["taskDefinition"]
    containers = [dict(c) for c in first["containerDefinitions"]]
    containers[0]["environment"] = [
        {"name": "LOG_LEVEL", "value": "INFO"},
        {"name": "MODEL_URI", "value": MODEL_URI},
        {"name": "MODEL_SHA256", "value": "ab" * 32},
        {"name": "GOLDEN_SET", "value": "s3://ezspeech-test-models/models/golden/?versionId=g1"},
    ]
    containers[0]["secrets"] = [{"name": "AUTH_TOKENS", "valueFrom": SECRET}]
    keep = (
        "family",
        "taskRoleArn",
        "executionRoleArn",
        "networkMode",
        "requiresCompatibilities",
        "cpu",
        "memory",
    )
    arn = ecs.register_task_definition(
        **{k: first[k] for k in keep},
        containerDefinitions=containers,
        tags=[{"key": "ezspeech:model-key", "value": "models/asr.pt"}],
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.update_service(cluster=CLUSTER, service=SERVICE, taskDefinition=arn)
    return dict(ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"]))


def service_definition(platform: Platform) -> dict[str, Any]:
    ecs = platform.clients.ecs
    arn = ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]["taskDefinition"]
    return dict(ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"]))


def test_deploy_image_changes_only_the_image_and_announces_it(
    platform: Platform, running: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    digest = push(platform, "v2")
    scan(platform, "v2", digest, {"MEDIUM": 3, "LOW": 1})
    code = deploy_image.main([*NAMES, "--tag", "v2", "--notify-topic-arn", platform.topic_arn])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["status"] == "started" and report["deployment"] == "started"

    after = service_definition(platform)
    before_def, after_def = running["taskDefinition"], after["taskDefinition"]
    assert after_def["revision"] == before_def["revision"] + 1
    new_image = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{REPOSITORY}:v2"
    assert after_def["containerDefinitions"][0]["image"] == new_image
    # Everything but the image is the running revision's: model pin, golden set, secrets, sidecar.
    for field in ("environment", "secrets", "portMappings", "essential"):
        assert after_def["containerDefinitions"][0].get(field) == before_def["containerDefinitions"][0].get(
            field
        )
    assert after_def["containerDefinitions"][1] == before_def["containerDefinitions"][1]
    assert (after_def["cpu"], after_def["memory"]) == (before_def["cpu"], before_def["memory"])
    tags = {t["key"]: t["value"] for t in after["tags"]}
    assert tags["ezspeech:model-key"] == "models/asr.pt"  # the rollout's tags carried on
    assert (tags["ezspeech:image-tag"], tags["ezspeech:image-digest"]) == ("v2", digest)
    assert tags["ezspeech:rollout-source"] == "deploy-image"
    assert report["model_uri"] == MODEL_URI

    (notice,) = platform.notifications()
    assert notice["subject"].startswith("[ezspeech] rollout deploy-image: v2 ->")
    assert f"model:      {MODEL_URI} (unchanged)" in notice["message"]
    assert notice["attributes"]["source"] == "deploy-image"

    # The same tag again changes nothing.
    assert deploy_image.main([*NAMES, "--tag", "v2"]) == 0
    assert json.loads(capsys.readouterr().out)["reason"] == "already_deployed"
    assert service_definition(platform)["taskDefinition"]["revision"] == after_def["revision"]


def test_deploy_image_refuses_a_tag_not_in_ecr(
    platform: Platform, running: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy_image.main([*NAMES, "--tag", "v404"]) == 1
    assert f"{REPOSITORY}:v404 is not in ECR" in capsys.readouterr().err
    assert service_definition(platform)["taskDefinition"] == running["taskDefinition"]


def test_deploy_image_refuses_an_unscanned_image(
    platform: Platform, running: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    push(platform, "v3")
    assert deploy_image.main([*NAMES, "--tag", "v3"]) == 1
    assert "has no scan result" in capsys.readouterr().err
    assert service_definition(platform)["taskDefinition"] == running["taskDefinition"]


def test_deploy_image_refuses_findings_at_the_alert_threshold(
    platform: Platform,
    running: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clean = push(platform, "v4-clean")
    scan(platform, "v4-clean", clean, {"LOW": 1})
    vulnerable = push(platform, "v4")
    assert vulnerable != clean
    scan(platform, "v4", vulnerable, None)  # moto's default: one HIGH finding
    assert deploy_image.main([*NAMES, "--tag", "v4"]) == 1
    assert "1 findings at or above HIGH" in capsys.readouterr().err
    assert service_definition(platform)["taskDefinition"] == running["taskDefinition"]
    # The threshold is the scan_alert's setting: at CRITICAL the same image may ship.
    monkeypatch.setenv("SEVERITY_THRESHOLD", "CRITICAL")
    assert deploy_image.main([*NAMES, "--tag", "v4"]) == 0
    assert service_definition(platform)["taskDefinition"]["containerDefinitions"][0]["image"].endswith(":v4")


def test_deploy_image_refuses_an_unknown_threshold(
    platform: Platform, running: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    scan(platform, "v5", push(platform, "v5"), {})
    assert deploy_image.main([*NAMES, "--tag", "v5", "--threshold", "SEVERE"]) == 1
    assert "SEVERITY_THRESHOLD must be one of" in capsys.readouterr().err
