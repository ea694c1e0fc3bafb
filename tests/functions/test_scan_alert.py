"""scan_alert against the documented ECR / Inspector shapes and moto's real ECR scan findings."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.functions.helpers import (
    ACCOUNT,
    CLUSTER,
    CONTAINER,
    REGION,
    REPOSITORY,
    SERVICE,
    TABLE,
    FakeContext,
    Platform,
    documented_event,
)


@pytest.fixture
def app(platform: Platform, load_handler: Any) -> Any:
    env = {
        "ALERT_TOPIC_ARN": platform.topic_arn,
        "SEVERITY_THRESHOLD": "HIGH",
        "IDEMPOTENCY_TABLE": TABLE,
        "CLUSTER_NAME": CLUSTER,
        "SERVICE_NAME": SERVICE,
    }
    return load_handler("scan_alert", env, platform.clients)


def pushed_and_scanned(platform: Platform, tag: str = "v1") -> dict[str, Any]:
    """Push an image to moto's ECR and scan it; returns DescribeImageScanFindings."""
    ecr = platform.clients.ecr
    ecr.create_repository(repositoryName=REPOSITORY)
    config = {
        "digest": "sha256:" + "c" * 64,
        "size": 2,
        "mediaType": "application/vnd.docker.container.image.v1+json",
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": config,
        "layers": [],
    }
    ecr.put_image(repositoryName=REPOSITORY, imageManifest=json.dumps(manifest), imageTag=tag)
    digest = ecr.describe_images(repositoryName=REPOSITORY)["imageDetails"][0]["imageDigest"]
    ecr.start_image_scan(repositoryName=REPOSITORY, imageId={"imageDigest": digest})
    return dict(ecr.describe_image_scan_findings(repositoryName=REPOSITORY, imageId={"imageDigest": digest}))


def ecr_scan_event(findings: dict[str, Any]) -> dict[str, Any]:
    event = documented_event("ecr_image_scan")
    event["detail"].update(
        {
            "repository-name": REPOSITORY,
            "image-digest": findings["imageId"]["imageDigest"],
            "image-tags": ["v1"],
            "finding-severity-counts": findings["imageScanFindings"]["findingSeverityCounts"],
        }
    )
    return event


def finding_event(
    digest: str, finding_id: str, severity: str = "HIGH", repository: str = REPOSITORY
) -> dict[str, Any]:
    event = documented_event("inspector2_finding")
    detail = event["detail"]
    detail["findingArn"] = f"arn:aws:inspector2:{REGION}:{ACCOUNT}:finding/{finding_id}"
    detail["severity"] = severity
    detail["title"] = f"CVE-2026-{finding_id} - libexample"
    image = detail["resources"][0]["details"]["awsEcrContainerImage"]
    image.update({"imageHash": digest, "repositoryName": repository})
    return event


def test_documented_ecr_scan_event_alerts_with_counts(platform: Platform, app: Any) -> None:
    result = app.lambda_handler(documented_event("ecr_image_scan"), FakeContext())
    assert result["status"] == "alerted"
    [alert] = platform.notifications()
    assert "10 HIGH+ findings in my-repository-name@7f5b2640fe6f" in alert["subject"]
    details = json.loads(alert["message"].split("\n\n", 1)[1])
    assert details["counts"] == {"CRITICAL": 10, "MEDIUM": 9}
    assert details["digest"] == "sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd1234"
    assert details["running_in_service"] is False
    assert alert["attributes"]["escalated"] == "false"


def test_moto_scan_findings_give_top_findings_with_links(platform: Platform, app: Any) -> None:
    findings = pushed_and_scanned(platform)
    result = app.lambda_handler(ecr_scan_event(findings), FakeContext())

    assert result["scan_result_id"] == findings["imageScanFindings"]["imageScanCompletedAt"].isoformat()
    [alert] = platform.notifications()
    details = json.loads(alert["message"].split("\n\n", 1)[1])
    [top] = details["top_findings"]
    assert top["name"] == findings["imageScanFindings"]["findings"][0]["name"]
    assert top["link"].startswith("https://")
    assert details["tags"] == ["v1"]
    assert "/_/image/sha256:" in details["console_url"]
    assert "top findings:" in alert["message"]


def test_repeated_delivery_alerts_once(platform: Platform, app: Any) -> None:
    event = ecr_scan_event(pushed_and_scanned(platform))
    first = app.lambda_handler(event, FakeContext())
    second = app.lambda_handler(event, FakeContext())
    assert first["status"] == "alerted" and second["duplicate"] is True
    assert len(platform.notifications()) == 1


def test_inspector_finding_stream_and_scan_event_make_one_alert(platform: Platform, app: Any) -> None:
    digest = pushed_and_scanned(platform)["imageId"]["imageDigest"]
    for finding_id in ("f1", "f2", "f3"):
        app.lambda_handler(finding_event(digest, finding_id), FakeContext())
    scan = documented_event("inspector2_scan")
    scan["detail"].update(
        {"repository-name": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{REPOSITORY}", "image-digest": digest}
    )
    result = app.lambda_handler(scan, FakeContext())

    assert result["duplicate"] is True
    [alert] = platform.notifications()
    assert REPOSITORY in alert["subject"]


def test_inspector_stream_without_ecr_data_dedupes_per_observation(platform: Platform, app: Any) -> None:
    digest = "sha256:" + "d" * 64  # not in ECR: the events are all there is
    for finding_id in ("a1", "a2"):
        app.lambda_handler(finding_event(digest, finding_id, repository="elsewhere/repo"), FakeContext())
    [alert] = platform.notifications()
    details = json.loads(alert["message"].split("\n\n", 1)[1])
    assert details["scan_result_id"] == "Dec 3, 2021, 6:02:30 PM"
    assert details["top_findings"][0]["link"] == "https://access.redhat.com/security/cve/CVE-2019-17498"


def test_documented_inspector_scan_reads_repository_from_arn(platform: Platform, app: Any) -> None:
    result = app.lambda_handler(documented_event("inspector2_scan"), FakeContext())
    assert result["repository"] == "amazon/amazon-ecs-sample"
    [alert] = platform.notifications()
    assert "68 HIGH+ findings" in alert["subject"]  # CRITICAL 7 + HIGH 61; TOTAL is not a severity


def test_below_threshold_publishes_nothing_and_counts_a_metric(
    platform: Platform, app: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    result = app.lambda_handler(documented_event("inspector2_finding"), FakeContext())  # a MEDIUM finding
    assert result == {"status": "below_threshold"}
    assert platform.notifications() == []
    assert "ScansBelowThreshold" in capsys.readouterr().out  # the EMF line Powertools prints


def test_non_image_and_incomplete_scans_are_ignored(platform: Platform, app: Any) -> None:
    ec2 = documented_event("inspector2_scan")
    ec2["detail"] = {
        "scan-status": "INITIAL_SCAN_COMPLETE",
        "finding-severity-counts": {"CRITICAL": 1},
        "instance-id": "i-0",
    }
    assert app.lambda_handler(ec2, FakeContext()) == {"status": "not_an_image"}
    failed = documented_event("ecr_image_scan")
    failed["detail"]["scan-status"] = "FAILED"
    assert app.lambda_handler(failed, FakeContext()) == {"status": "not_complete"}
    assert platform.notifications() == []


def test_digest_the_service_runs_is_escalated(platform: Platform, app: Any) -> None:
    findings = pushed_and_scanned(platform)
    digest = findings["imageId"]["imageDigest"]
    ecs = platform.clients.ecs
    pinned = ecs.register_task_definition(
        family="ezspeech-test-asr",
        containerDefinitions=[
            {
                "name": CONTAINER,
                "memory": 512,
                "image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{REPOSITORY}@{digest}",
            }
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.update_service(cluster=CLUSTER, service=SERVICE, taskDefinition=pinned)

    result = app.lambda_handler(ecr_scan_event(findings), FakeContext())
    assert result["escalated"] is True
    [alert] = platform.notifications()
    assert alert["subject"].startswith("[ezspeech][ESCALATED]")
    assert alert["attributes"]["escalated"] == "true"
    assert "YES - the service runs this image now" in alert["message"]


def test_unknown_threshold_fails_at_cold_start(platform: Platform, load_handler: Any) -> None:
    env = {"ALERT_TOPIC_ARN": platform.topic_arn, "SEVERITY_THRESHOLD": "SEVERE", "IDEMPOTENCY_TABLE": TABLE}
    with pytest.raises(ValueError, match="SEVERITY_THRESHOLD"):
        load_handler("scan_alert", env, platform.clients)


def test_running_digests_come_from_the_service_tasks() -> None:
    """moto's tasks carry no image digests, so ECS is a botocore Stubber here."""
    import boto3
    from botocore.stub import Stubber
    from ezspeech_common.scanning import running_digests

    ecs = boto3.client("ecs", region_name=REGION)
    task = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{CLUSTER}/0123456789abcdef"
    running = "sha256:" + "e" * 64
    with Stubber(ecs) as stub:
        stub.add_response(
            "list_tasks",
            {"taskArns": [task]},
            {"cluster": CLUSTER, "serviceName": SERVICE, "desiredStatus": "RUNNING"},
        )
        stub.add_response(
            "describe_tasks",
            {"tasks": [{"containers": [{"name": CONTAINER, "imageDigest": running}, {"name": "sidecar"}]}]},
        )
        stub.add_response("describe_services", {"services": [{"taskDefinition": "td:1"}]})
        stub.add_response(
            "describe_task_definition",
            {"taskDefinition": {"containerDefinitions": [{"name": CONTAINER, "image": "repo:v1"}]}},
        )
        assert running_digests(ecs, CLUSTER, SERVICE) == {running}
    assert running_digests(ecs, "", "") is None  # not configured: "unknown", not "no"
