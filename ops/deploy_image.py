"""Ship a new container image to the ECS service, the way a model rollout ships a model.

    python -m ops.deploy_image --tag TAG [--env dev] [--threshold HIGH] [--no-wait]

Terraform registers the first task definition and then ignores drift on it, so pushing an image
changes nothing that runs. This command registers a new task-definition revision copied from the
one the service runs now with only the image of the model container changed (the model pin,
golden set, secrets and every setting are kept), then points the service at it: the same
RegisterTaskDefinition + UpdateService path, ordering tags and circuit breaker as a model rollout,
so the deploy_watch Lambda reports its completion or rollback as it does for a model.

It refuses a tag that is not in the service's ECR repository, whose scan has not completed, or
whose scan has findings at or above the alert threshold the scan_alert Lambda uses
(``SEVERITY_THRESHOLD``, default HIGH): an image the alerting would page about never ships.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from ezspeech_common.aws import RETRY_CONFIG
from ezspeech_common.client_tokens import wait_for_deployment
from ezspeech_common.ecs import (
    TAG_PREFIX,
    copyable_tags,
    describe_service,
    describe_task_definition,
    find_container,
    model_pin,
    other_deployment_ids,
    register_and_deploy,
    registerable,
    rollout_in_progress,
    with_container_image,
)
from ezspeech_common.errors import AutomationError, DeploymentFailedError
from ezspeech_common.notify import publish
from ezspeech_common.rollout import RolloutSettings
from ezspeech_common.scanning import ScanSettings, count_at_or_above

from ops.names import MissingNameError, from_ssm

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_sns import SNSClient

DEFAULT_WAIT_S = 1800.0


class ImageRefusedError(AutomationError):
    """The tag must not ship: not in ECR, not scanned, or findings at/above the threshold."""


@dataclass(frozen=True)
class CheckedImage:
    repository_uri: str
    tag: str
    digest: str
    counts: dict[str, int]

    @property
    def image(self) -> str:
        # ECR tags are immutable here (terraform/ecr.tf), so the tag names exactly these bytes.
        return f"{self.repository_uri}:{self.tag}"


def check_image(ecr: ECRClient, repository: str, tag: str, threshold: str) -> CheckedImage:
    """The pushed, scanned and clean image ``repository:tag``; ImageRefusedError otherwise."""
    threshold = ScanSettings(threshold=threshold).threshold.upper()  # the scan_alert's validation
    try:
        uri = str(ecr.describe_repositories(repositoryNames=[repository])["repositories"][0]["repositoryUri"])
        image = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])["imageDetails"][
            0
        ]
    except (ecr.exceptions.RepositoryNotFoundException, ecr.exceptions.ImageNotFoundException):
        raise ImageRefusedError(
            f"{repository}:{tag} is not in ECR: push it first (make build push IMAGE_TAG={tag})"
        ) from None
    digest = str(image["imageDigest"])
    try:
        scan = ecr.describe_image_scan_findings(repositoryName=repository, imageId={"imageDigest": digest})
    except ecr.exceptions.ScanNotFoundException:
        raise ImageRefusedError(
            f"{repository}:{tag} ({digest[:19]}) has no scan result: wait for the scan on push "
            "(or start one: aws ecr start-image-scan) before shipping it"
        ) from None
    status = scan.get("imageScanStatus", {}).get("status", "")
    if status not in ("COMPLETE", "ACTIVE"):  # ACTIVE: enhanced (Inspector) scanning, results present
        raise ImageRefusedError(
            f"{repository}:{tag} scan is {status or 'unknown'}, not complete: try again later"
        )
    counts = {
        str(k): int(v) for k, v in scan.get("imageScanFindings", {}).get("findingSeverityCounts", {}).items()
    }
    blocking = count_at_or_above(counts, threshold)
    if blocking:
        raise ImageRefusedError(
            f"{repository}:{tag} has {blocking} findings at or above {threshold} ({counts}): "
            "the scan alert would fire for it; fix the image and push a new tag"
        )
    return CheckedImage(uri, tag, digest, counts)


@dataclass
class ImageRolloutResult:
    status: Literal["started", "skipped"]
    reason: str
    image: str
    previous_image: str = ""
    digest: str = ""
    model_uri: str = ""
    task_definition_arn: str = ""
    previous_task_definition_arn: str = ""
    deployment_id: str = ""
    superseded_deployment_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def roll_out_image(ecs: ECSClient, settings: RolloutSettings, checked: CheckedImage) -> ImageRolloutResult:
    """A new revision of the running one with only the container's image changed; UpdateService."""
    service = describe_service(ecs, settings.cluster, settings.service)
    current_arn = str(service["taskDefinition"])
    current, current_tags = describe_task_definition(ecs, current_arn)
    previous_image = str(find_container(current, settings.container_name).get("image", ""))
    pin = model_pin(current, settings.container_name)
    result = ImageRolloutResult(
        status="skipped",
        reason="",
        image=checked.image,
        previous_image=previous_image,
        digest=checked.digest,
        model_uri=pin.uri if pin else "",
        previous_task_definition_arn=current_arn,
    )
    if previous_image == checked.image:
        result.reason = "already_deployed"
        return result
    tags = {
        **copyable_tags(current_tags),
        TAG_PREFIX + "image-tag": checked.tag,
        TAG_PREFIX + "image-digest": checked.digest,
        TAG_PREFIX + "rollout-source": "deploy-image",
    }
    definition = with_container_image(registerable(ecs, current), settings.container_name, checked.image)
    result.superseded_deployment_ids = other_deployment_ids(service) if rollout_in_progress(service) else []
    deployed = register_and_deploy(ecs, settings.cluster, settings.service, definition, tags)
    result.status = "started"
    result.reason = "superseded_in_progress_rollout" if result.superseded_deployment_ids else "new_image"
    result.task_definition_arn = deployed.task_definition_arn
    result.deployment_id = deployed.deployment_id
    return result


def notification(result: ImageRolloutResult, settings: RolloutSettings) -> tuple[str, list[str]]:
    """Subject and lines announcing a started image rollout (the model rollout's layout)."""
    revision = result.task_definition_arn.rsplit("/", 1)[-1]
    tag = result.image.rsplit(":", 1)[-1]
    lines = [
        f"Image rollout started on {settings.cluster}/{settings.service} (deploy-image).",
        f"image:      {result.image}",
        f"digest:     {result.digest}",
        f"model:      {result.model_uri or 'the image default'} (unchanged)",
        f"revision:   {revision}",
        f"deployment: {result.deployment_id or 'unknown'}",
        f"previous:   {result.previous_task_definition_arn.rsplit('/', 1)[-1]} ({result.previous_image})",
    ]
    if result.superseded_deployment_ids:
        lines.append(f"superseded in-progress deployments: {', '.join(result.superseded_deployment_ids)}")
    return f"[ezspeech] rollout deploy-image: {tag} -> {revision}", lines


def deploy_image(
    ecr: ECRClient,
    ecs: ECSClient,
    settings: RolloutSettings,
    repository: str,
    tag: str,
    threshold: str,
    sns: SNSClient | None = None,
    topic_arn: str = "",
) -> ImageRolloutResult:
    """Check the image, roll it out, announce it (when a topic is given)."""
    checked = check_image(ecr, repository, tag, threshold)
    result = roll_out_image(ecs, settings, checked)
    if result.status == "started" and sns is not None and topic_arn:
        subject, lines = notification(result, settings)
        publish(
            sns, topic_arn, subject, lines, result.as_dict(), {"kind": "rollout", "source": "deploy-image"}
        )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.deploy_image", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tag", required=True, help="image tag pushed to the service's ECR repository")
    parser.add_argument("--env", default="dev", help="read unset names from /ezspeech/<env>/... in SSM")
    parser.add_argument("--cluster", help="ECS cluster (default: SSM cluster-name)")
    parser.add_argument("--service", help="ECS service (default: SSM service-name)")
    parser.add_argument("--repository", help="ECR repository (default: SSM ecr-repository-name)")
    parser.add_argument("--container", default="asr-server", help="container whose image changes")
    parser.add_argument(
        "--threshold",
        default=os.environ.get("SEVERITY_THRESHOLD", "HIGH"),
        help="refuse findings at or above this severity (the scan_alert's SEVERITY_THRESHOLD)",
    )
    parser.add_argument(
        "--notify-topic-arn",
        default=os.environ.get("NOTIFY_TOPIC_ARN", ""),
        help="SNS topic for the 'rollout started' notice (the model rollout's topic)",
    )
    parser.add_argument("--no-wait", action="store_true", help="return once the deployment has started")
    parser.add_argument("--timeout", type=float, default=DEFAULT_WAIT_S, help="seconds to wait for it")
    args = parser.parse_args(argv)
    try:
        ssm = boto3.client("ssm", config=RETRY_CONFIG)
        ecs = boto3.client("ecs", config=RETRY_CONFIG)
        settings = RolloutSettings(
            cluster=args.cluster or from_ssm(ssm, args.env, "cluster-name"),
            service=args.service or from_ssm(ssm, args.env, "service-name"),
            container_name=args.container,
        )
        repository = args.repository or from_ssm(ssm, args.env, "ecr-repository-name")
        sns = boto3.client("sns", config=RETRY_CONFIG) if args.notify_topic_arn else None
        result = deploy_image(
            boto3.client("ecr", config=RETRY_CONFIG),
            ecs,
            settings,
            repository,
            args.tag,
            args.threshold,
            sns,
            args.notify_topic_arn,
        )
        report: dict[str, Any] = {**result.as_dict(), "deployment": "unchanged"}
        if result.status == "started":
            report["deployment"] = "started"
            if not args.no_wait:
                print(
                    f"waiting up to {args.timeout:.0f} s for the deployment to complete ...", file=sys.stderr
                )
                try:
                    wait_for_deployment(ecs, settings, result.task_definition_arn, args.timeout)
                    report["deployment"] = "completed"
                except DeploymentFailedError as error:
                    report["deployment"] = f"not completed: {error}"
                    print(json.dumps(report, indent=2))
                    return 1
    except (ValueError, AutomationError, MissingNameError, BotoCoreError, ClientError) as error:
        print(f"deploy-image: {error}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
