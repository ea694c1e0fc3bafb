"""The event models and their strict reader: documented shapes in, named refusals out, and no
pydantic on any handler's import path (the cold-start regression guard)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from ezspeech_common.errors import AutomationError, EventShapeError
from ezspeech_common.events.ecs import DeploymentStateChangeEvent
from ezspeech_common.events.s3 import ObjectCreatedEvent
from ezspeech_common.events.scans import (
    EcrImageScanEvent,
    InspectorFindingEvent,
    InspectorScanEvent,
    parse_scan_event,
)
from ezspeech_common.events.scheduler import NightAction

from scripts.import_times import CLIENTS, lambda_env
from tests.functions.helpers import documented_event

ROOT = Path(__file__).resolve().parents[2]


def refusal(parse: Any, event: Any) -> str:
    with pytest.raises(EventShapeError) as caught:
        parse(event)
    return str(caught.value)


def test_documented_s3_event_reads_every_field_we_use() -> None:
    upload = ObjectCreatedEvent.parse(documented_event("s3_object_created"))
    assert (upload.source, upload.detail_type, upload.region) == ("aws.s3", "Object Created", "ca-central-1")
    assert upload.time == datetime(2021, 11, 12, tzinfo=UTC)
    assert upload.detail.bucket.name == "amzn-s3-demo-bucket1"
    obj = upload.detail.object
    assert (obj.key, obj.size, obj.version_id, obj.sequencer) == (
        "example-key",
        5,
        "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
        "617f08299329d189",
    )
    assert upload.detail.reason == "PutObject"
    with pytest.raises(dataclasses.FrozenInstanceError):
        upload.detail.object.key = "other"  # type: ignore[misc]


def test_absent_optional_keys_take_the_defaults_and_unknown_keys_are_ignored() -> None:
    event = documented_event("s3_object_created")
    for key in ("version-id", "sequencer", "size", "etag"):
        event["detail"]["object"].pop(key, None)
    for key in ("account", "region", "resources"):
        event.pop(key)
    event["detail"]["object"]["eTag"] = "moto's spelling"
    event["something-new"] = {"nested": [1, 2]}
    upload = ObjectCreatedEvent.parse(event)
    assert (upload.account, upload.region, upload.resources) == ("", "", ())
    obj = upload.detail.object
    assert (obj.size, obj.version_id, obj.sequencer) == (None, None, None)


def test_documented_scan_events_dispatch_on_detail_type() -> None:
    ecr = parse_scan_event(documented_event("ecr_image_scan"))
    assert isinstance(ecr, EcrImageScanEvent)
    assert ecr.detail.finding_severity_counts == {"CRITICAL": 10, "MEDIUM": 9}
    assert ecr.detail.image_tags == ()

    scan = parse_scan_event(documented_event("inspector2_scan"))
    assert isinstance(scan, InspectorScanEvent)
    assert scan.detail.repository_name.startswith("arn:aws:ecr:")

    finding = parse_scan_event(documented_event("inspector2_finding"))
    assert isinstance(finding, InspectorFindingEvent)
    assert (finding.detail.severity, finding.detail.inspector_score) == ("MEDIUM", 6.5)
    assert finding.detail.last_observed_at == "Dec 3, 2021, 6:02:30 PM"
    image = finding.detail.ecr_image
    assert image is not None
    assert (image.repository_name, image.image_tags) == ("amazon/amazon-ecs-sample", ("latest",))
    details = finding.detail.package_vulnerability_details
    assert details is not None and details.vulnerability_id == "CVE-2019-17498"


def test_finding_without_an_ecr_resource_has_no_image() -> None:
    event = documented_event("inspector2_finding")
    event["detail"]["resources"] = [{"type": "AWS_EC2_INSTANCE", "id": "i-0", "details": {}}]
    finding = parse_scan_event(event)
    assert isinstance(finding, InspectorFindingEvent) and finding.detail.ecr_image is None


def test_documented_ecs_and_scheduler_events() -> None:
    change = DeploymentStateChangeEvent.parse(documented_event("ecs_deployment_failed"))
    assert change.service_arn == "arn:aws:ecs:us-west-2:111122223333:service/default/servicetest"
    assert (change.detail.event_name, change.detail.deployment_id) == (
        "SERVICE_DEPLOYMENT_FAILED",
        "ecs-svc/123",
    )
    night = NightAction.parse(documented_event("scheduler_scale_up"))
    assert night.action == "scale_up" and night.execution_id
    assert NightAction.parse({"action": "scale_down"}) == NightAction("scale_down", "", "")


def test_time_reads_iso_with_z_offsets_naive_and_epoch_seconds_as_the_same_instant() -> None:
    instant = datetime(2021, 11, 12, tzinfo=UTC)
    event = documented_event("s3_object_created")
    for value in (
        "2021-11-12T00:00:00Z",
        "2021-11-12T01:00:00+01:00",
        "2021-11-12T00:00:00",
        1636675200,
        1636675200.0,
    ):
        event["time"] = value
        parsed = ObjectCreatedEvent.parse(event).time
        assert parsed == instant and parsed.tzinfo is not None, value
    for bad, shown in (("yesterday", "'yesterday'"), (True, "true"), (None, "null"), ([], "a list")):
        event["time"] = bad
        assert refusal(ObjectCreatedEvent.parse, event) == (
            f"time: expected an ISO-8601 time or epoch seconds, got {shown}"
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: e["detail"]["object"].pop("key"), "detail.object.key: missing"),
        (lambda e: e["detail"].pop("bucket"), "detail.bucket: missing"),
        (lambda e: e.pop("detail"), "detail: missing"),
        (lambda e: e.pop("id"), "id: missing"),
        (lambda e: e["detail"]["object"].update(key=12), "detail.object.key: expected a string, got 12"),
        (
            lambda e: e["detail"]["object"].update(size="5"),
            "detail.object.size: expected an integer, got '5'",
        ),
        (
            lambda e: e["detail"]["object"].update(size=True),
            "detail.object.size: expected an integer, got true",
        ),
        (lambda e: e.update(detail=None), "detail: expected an object, got null"),
        (lambda e: e.update(resources="arn"), "resources: expected a list, got 'arn'"),
        (
            lambda e: e.update({"detail-type": "Object Deleted"}),
            "detail-type: expected 'Object Created', got 'Object Deleted'",
        ),
        (lambda e: e.update(source="aws.ecr"), "source: expected 'aws.s3', got 'aws.ecr'"),
    ],
)
def test_wrong_s3_events_are_refused_naming_the_field(change: Any, message: str) -> None:
    event = documented_event("s3_object_created")
    change(event)
    assert refusal(ObjectCreatedEvent.parse, event) == message


def test_wrong_scan_events_are_refused_naming_the_field() -> None:
    assert refusal(parse_scan_event, documented_event("s3_object_created")) == (
        "detail-type: expected one of 'ECR Image Scan', 'Inspector2 Scan', 'Inspector2 Finding', "
        "got 'Object Created'"
    )
    spoofed = documented_event("ecr_image_scan") | {"source": "aws.inspector2"}
    assert refusal(parse_scan_event, spoofed) == "source: expected 'aws.ecr', got 'aws.inspector2'"

    counts = documented_event("ecr_image_scan")
    counts["detail"]["finding-severity-counts"]["HIGH"] = "3"
    assert (
        refusal(parse_scan_event, counts)
        == "detail.finding-severity-counts.HIGH: expected an integer, got '3'"
    )

    finding = documented_event("inspector2_finding")
    finding["detail"]["resources"][0]["details"]["awsEcrContainerImage"]["imageTags"] = ["latest", 7]
    assert refusal(parse_scan_event, finding) == (
        "detail.resources[0].details.awsEcrContainerImage.imageTags[1]: expected a string, got 7"
    )
    finding = documented_event("inspector2_finding")
    del finding["detail"]["resources"][0]["type"]
    assert refusal(parse_scan_event, finding) == "detail.resources[0].type: missing"
    finding = documented_event("inspector2_finding")
    finding["detail"]["inspectorScore"] = "high"
    assert refusal(parse_scan_event, finding) == "detail.inspectorScore: expected a number, got 'high'"
    finding["detail"].pop("severity")
    assert refusal(parse_scan_event, finding) == "detail.severity: missing"


def test_refusals_are_automation_errors_and_value_errors() -> None:
    assert refusal(NightAction.parse, ["scale_down"]) == "event: expected an object, got a list"
    assert refusal(NightAction.parse, {}) == "action: missing"
    assert refusal(DeploymentStateChangeEvent.parse, documented_event("ecr_image_scan")) == (
        "source: expected 'aws.ecs', got 'aws.ecr'"
    )
    assert issubclass(EventShapeError, AutomationError) and issubclass(EventShapeError, ValueError)


_IMPORT_PROBE = """
import json, sys
sys.path[:0] = {paths!r}
import app
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("pydantic", "pydantic_core"))))
"""


@pytest.mark.parametrize("function", sorted(CLIENTS))
def test_handler_cold_import_does_not_load_pydantic(function: str) -> None:
    """Cold start stays under 1.5x a bare ``import boto3``: pydantic alone cost ~40-60 ms of it."""
    paths = [str(ROOT / "functions" / function), str(ROOT / "functions" / "common")]
    completed = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE.format(paths=paths)],
        env=lambda_env(function),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert json.loads(completed.stdout.strip().splitlines()[-1]) == []
