"""Events moto does not emit, built in the shapes the AWS documentation gives.

moto 5 emits S3 "Object Created" events to EventBridge (the demo uses that real path), but it
emits neither ECR scan results nor ECS deployment state changes. For those the demo builds the
event the way AWS would send it, from the real data moto returns (repository, digest, findings).
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any


def _envelope(
    detail_type: str, source: str, region: str, account: str, resources: list[str]
) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": resources,
    }


def ecr_image_scan(findings: dict[str, Any], region: str) -> dict[str, Any]:
    """An "ECR Image Scan" event from a ``describe_image_scan_findings`` response.

    Shape: https://docs.aws.amazon.com/AmazonECR/latest/userguide/ecr-eventbridge.html
    """
    registry, repository = findings["registryId"], findings["repositoryName"]
    image_id = findings["imageId"]
    tag = image_id.get("imageTag")
    return {
        **_envelope(
            "ECR Image Scan",
            "aws.ecr",
            region,
            registry,
            [f"arn:aws:ecr:{region}:{registry}:repository/{repository}"],
        ),
        "detail": {
            "scan-status": findings["imageScanStatus"]["status"],
            "repository-name": repository,
            "finding-severity-counts": findings["imageScanFindings"]["findingSeverityCounts"],
            "image-digest": image_id["imageDigest"],
            "image-tags": [tag] if tag else [],
        },
    }


def ecs_deployment_state_change(
    service_arn: str, deployment_id: str, event_name: str, reason: str, region: str, account: str
) -> dict[str, Any]:
    """An "ECS Deployment State Change" event (e.g. SERVICE_DEPLOYMENT_FAILED from the circuit breaker).

    Shape: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_service_deployment_events.html
    """
    event_type = "ERROR" if event_name == "SERVICE_DEPLOYMENT_FAILED" else "INFO"
    return {
        **_envelope("ECS Deployment State Change", "aws.ecs", region, account, [service_arn]),
        "detail": {
            "eventType": event_type,
            "eventName": event_name,
            "deploymentId": deployment_id,
            "updatedAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "reason": reason,
        },
    }


def docker_manifest() -> dict[str, Any]:
    """A minimal image manifest (schema 2) to "push" to moto's ECR: moto stores manifests, not layers."""
    config = b'{"architecture":"amd64","os":"linux"}'
    return {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": len(config),
            "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
        },
        "layers": [],
    }


def night_schedule(action: str) -> dict[str, Any]:
    """What EventBridge Scheduler delivers to night_scaler: template.yaml's schedule input, with
    the ``<aws.scheduler.execution-id>`` and ``<aws.scheduler.scheduled-time>`` attributes filled in."""
    if action not in ("scale_down", "scale_up"):
        raise ValueError(f"action must be scale_down or scale_up, got {action!r}")
    return {
        "action": action,
        "execution_id": str(uuid.uuid4()),
        "scheduled_time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
