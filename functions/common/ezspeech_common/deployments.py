"""ECS deployment state changes → a report naming the model version of the revisions involved."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ezspeech_common.ecs import ModelPin, describe_service, describe_task_definition, model_pin
from ezspeech_common.errors import ContainerNotFoundError
from ezspeech_common.events.ecs import DeploymentStateChangeEvent

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient

FAILED, COMPLETED = "SERVICE_DEPLOYMENT_FAILED", "SERVICE_DEPLOYMENT_COMPLETED"
REPORTED_EVENTS = (FAILED, COMPLETED)


@dataclass
class RevisionModel:
    task_definition_arn: str
    model_uri: str = ""
    model_version: str = ""
    model_sha256: str = ""

    @property
    def label(self) -> str:
        revision = self.task_definition_arn.rsplit("/", 1)[-1] or "unknown revision"
        model = (
            f"{self.model_uri.split('?', 1)[0]} version {self.model_version}"
            if self.model_uri
            else "no pinned model"
        )
        return f"{revision} ({model})"


@dataclass
class DeploymentReport:
    outcome: str  # "failed", "rolled_back", "completed" or "ignored"
    cluster: str
    service_name: str
    deployment_id: str
    reason: str
    deployment: RevisionModel | None
    service_now: RevisionModel | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cluster_and_service(service_arn: str) -> tuple[str, str]:
    """Both names from a service ARN (``...:service/<cluster>/<service>``; the old short form has no
    cluster, which means the ``default`` cluster)."""
    path = service_arn.split(":service/", 1)[-1]
    parts = path.split("/")
    return (parts[0], parts[1]) if len(parts) == 2 else ("default", parts[0])


def revision_model(ecs: ECSClient, arn: str, container_name: str) -> RevisionModel:
    try:
        definition, tags = describe_task_definition(ecs, arn)
        pin: ModelPin | None = model_pin(definition, container_name)
    except (ClientError, ContainerNotFoundError):
        return RevisionModel(arn)
    if pin is None:
        return RevisionModel(arn)
    return RevisionModel(arn, pin.uri, pin.version_id or tags.get("ezspeech:model-version", ""), pin.sha256)


def is_reported(event: DeploymentStateChangeEvent) -> bool:
    """Whether this state change gets a report (the rest, IN_PROGRESS, is ignored)."""
    return event.detail.event_name in REPORTED_EVENTS


def ignored_report(event: DeploymentStateChangeEvent) -> DeploymentReport:
    """The report of an event that is not reported on: no AWS call needed."""
    cluster, service_name = cluster_and_service(event.service_arn)
    detail = event.detail
    return DeploymentReport("ignored", cluster, service_name, detail.deployment_id, detail.reason, None, None)


def report_deployment(
    ecs: ECSClient, event: DeploymentStateChangeEvent, container_name: str
) -> DeploymentReport:
    report = ignored_report(event)
    if not is_reported(event):
        return report
    detail, cluster, service_name = event.detail, report.cluster, report.service_name
    service = describe_service(ecs, cluster, service_name)
    deployments = {str(d.get("id")): d for d in service.get("deployments", [])}
    this = deployments.get(detail.deployment_id)
    if this is not None:
        report.deployment = revision_model(ecs, str(this["taskDefinition"]), container_name)
    report.service_now = revision_model(ecs, str(service["taskDefinition"]), container_name)
    if detail.event_name == COMPLETED:
        report.outcome = "completed"
        report.deployment = report.deployment or report.service_now
        return report
    breaker = service.get("deploymentConfiguration", {}).get("deploymentCircuitBreaker", {})
    moved_away = report.deployment is not None and (
        report.deployment.task_definition_arn != report.service_now.task_definition_arn
    )
    rolled_back = bool(breaker.get("rollback")) or moved_away or "roll" in detail.reason.lower()
    report.outcome = "rolled_back" if rolled_back else "failed"
    return report


def report_text(report: DeploymentReport) -> tuple[str, list[str]]:
    where = f"{report.cluster}/{report.service_name}"
    failed_model = report.deployment.label if report.deployment else "revision no longer listed by ECS"
    now = report.service_now.label if report.service_now else "unknown"
    if report.outcome == "completed":
        subject = f"[ezspeech] deployment completed on {where}: {now}"
        lines = [f"Deployment {report.deployment_id} on {where} completed.", f"running: {now}"]
    else:
        verdict = "FAILED, rolled back" if report.outcome == "rolled_back" else "FAILED"
        subject = f"[ezspeech][{verdict}] deployment {report.deployment_id} on {where}"
        lines = [
            f"Deployment {report.deployment_id} on {where} {verdict.lower()}.",
            f"reason:        {report.reason}",
            f"failed:        {failed_model}",
            f"service now:   {now}",
        ]
        if report.outcome == "failed":
            lines.append(
                "No rollback detected: check the service; `make rollback-model` restores the previous model."
            )
    return subject, lines
