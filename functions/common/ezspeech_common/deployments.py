"""ECS deployment state changes → a report naming the model version of the revisions involved.

For a failed deployment the report also says why its tasks stopped when it can tell: the exit
status of the model container of a stopped task of that deployment (``python -m asr_service``
exits 3 when the model fails its golden-set gate, 4 when the golden set cannot be read) and the
gate's own ``golden_set_failed`` log line from the task's awslogs stream (WER, threshold, the worst
clip). Anything it cannot read leaves those lines out; the alert itself still goes out.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ezspeech_common.ecs import (
    ModelPin,
    describe_service,
    describe_task_definition,
    find_container,
    model_pin,
)
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


#: Exit statuses of ``python -m asr_service`` (asr_service/__main__.py, server.py, golden.py).
EXIT_STATUS_MEANINGS = {
    1: "the server did not start (model not fetched, not verified or not loadable)",
    2: "invalid server configuration",
    3: "golden-set gate failed: the model's WER on its golden set is above GOLDEN_MAX_WER",
    4: "golden-set gate failed closed: the golden set could not be read",
}
GATE_EXIT_CODES = (3, 4)
#: The gate's log events, in the order looked for (asr_service/golden.py).
GATE_LOG_EVENTS = ("golden_set_failed", "golden_set_unreadable")
_MAX_TASKS = 10  # DescribeTasks takes up to 100; the first failures tell the story
_MAX_LOG_PAGES = 5


@dataclass
class StoppedTask:
    """Why a task of the failed deployment stopped, as far as ECS and its log stream tell."""

    task_arn: str
    stopped_reason: str
    exit_code: int | None
    meaning: str = ""
    gate_failed: bool = False
    golden_wer: float | None = None
    golden_max_wer: float | None = None
    golden_error: str = ""
    worst_clip: dict[str, Any] | None = None

    def lines(self) -> list[str]:
        task_id = self.task_arn.rsplit("/", 1)[-1]
        code = "unknown" if self.exit_code is None else str(self.exit_code)
        lines = [f"stopped task:  {task_id} exit {code} ({self.stopped_reason or 'no reason given'})"]
        if self.golden_wer is not None:
            lines.append(
                f"golden gate:   FAILED, WER {self.golden_wer:.3f} above GOLDEN_MAX_WER {self.golden_max_wer}"
            )
        elif self.golden_error:
            lines.append(f"golden gate:   FAILED CLOSED, {self.golden_error}")
        elif self.meaning:
            lines.append(f"exit {code}:        {self.meaning}")
        if self.worst_clip:
            worst = self.worst_clip
            lines.append(
                f"worst clip:    {worst.get('clip')} (WER {worst.get('wer')}): heard "
                f'"{worst.get("hypothesis")}" for "{worst.get("reference")}"'
            )
        return lines


@dataclass
class DeploymentReport:
    outcome: str  # "failed", "rolled_back", "completed" or "ignored"
    cluster: str
    service_name: str
    deployment_id: str
    reason: str
    deployment: RevisionModel | None
    service_now: RevisionModel | None
    stopped_task: StoppedTask | None = None
    #: True when idempotency handed back the stored report of an earlier delivery.
    duplicate: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeploymentReport:
        def revision(value: dict[str, Any] | None) -> RevisionModel | None:
            return RevisionModel(**value) if value is not None else None

        stopped = data.get("stopped_task")
        return cls(
            **{
                **data,
                "deployment": revision(data.get("deployment")),
                "service_now": revision(data.get("service_now")),
                "stopped_task": StoppedTask(**stopped) if stopped is not None else None,
            }
        )


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


def _container_exit(task: dict[str, Any], container_name: str) -> int | None:
    for container in task.get("containers", []):
        if container.get("name") == container_name and container.get("exitCode") is not None:
            return int(container["exitCode"])
    return None


def inspect_stopped_tasks(
    ecs: ECSClient, logs: Any, cluster: str, deployment_id: str, container_name: str
) -> StoppedTask | None:
    """The most telling stopped task of ``deployment_id`` (ECS sets a service task's ``startedBy``
    to its deployment id): a gate exit first, then any failure exit. None when ECS lists none."""
    try:
        arns = ecs.list_tasks(cluster=cluster, startedBy=deployment_id, desiredStatus="STOPPED").get(
            "taskArns", []
        )
        if not arns:
            return None
        described = ecs.describe_tasks(cluster=cluster, tasks=arns[:_MAX_TASKS]).get("tasks", [])
        tasks: list[dict[str, Any]] = [dict(task) for task in described]
    except ClientError:
        return None
    if not tasks:
        return None

    def telling(task: dict[str, Any]) -> tuple[bool, bool]:
        code = _container_exit(task, container_name)
        return code not in GATE_EXIT_CODES, not code

    task = sorted(tasks, key=telling)[0]
    exit_code = _container_exit(task, container_name)
    found = StoppedTask(
        task_arn=str(task.get("taskArn", "")),
        stopped_reason=str(task.get("stoppedReason", "")),
        exit_code=exit_code,
        meaning=EXIT_STATUS_MEANINGS.get(exit_code, "") if exit_code is not None else "",
        gate_failed=exit_code in GATE_EXIT_CODES,
    )
    record = gate_log_record(ecs, logs, task, container_name)
    if record is not None:
        found.gate_failed = True
        if record.get("event") == "golden_set_failed" and isinstance(record.get("wer"), int | float):
            found.golden_wer = float(record["wer"])
            found.golden_max_wer = record.get("max_wer")
            worst = record.get("worst") or []
            found.worst_clip = worst[0] if worst and isinstance(worst[0], dict) else None
        else:
            found.golden_error = str(record.get("error", "see the task's log"))
        found.meaning = EXIT_STATUS_MEANINGS[3 if record.get("event") == "golden_set_failed" else 4]
    return found


def gate_log_record(
    ecs: ECSClient, logs: Any, task: dict[str, Any], container_name: str
) -> dict[str, Any] | None:
    """The gate's log line from the task's awslogs stream (``<prefix>/<container>/<task id>``)."""
    try:
        definition, _tags = describe_task_definition(ecs, str(task["taskDefinitionArn"]))
        container = find_container(definition, container_name)
    except (ClientError, ContainerNotFoundError, KeyError):
        return None
    config = container.get("logConfiguration") or {}
    options = config.get("options") or {}
    group, prefix = options.get("awslogs-group"), options.get("awslogs-stream-prefix")
    if config.get("logDriver") != "awslogs" or not group or not prefix:
        return None  # without a stream prefix the stream is named by container id, unknown here
    stream = f"{prefix}/{container_name}/{str(task['taskArn']).rsplit('/', 1)[-1]}"
    for event_name in GATE_LOG_EVENTS:
        token: str | None = None
        for _page in range(_MAX_LOG_PAGES):
            request = {
                "logGroupName": group,
                "logStreamNames": [stream],
                "filterPattern": f'"{event_name}"',
                **({"nextToken": token} if token else {}),
            }
            try:
                reply = logs.filter_log_events(**request)
            except ClientError:
                return None
            for item in reply.get("events", []):
                try:
                    record = json.loads(item.get("message", ""))
                except ValueError:
                    continue
                if isinstance(record, dict) and record.get("event") == event_name:
                    return record
            token = reply.get("nextToken")
            if not token:
                break
    return None


def report_text(report: DeploymentReport) -> tuple[str, list[str]]:
    where = f"{report.cluster}/{report.service_name}"
    failed_model = report.deployment.label if report.deployment else "revision no longer listed by ECS"
    now = report.service_now.label if report.service_now else "unknown"
    if report.outcome == "completed":
        subject = f"[ezspeech] deployment completed on {where}: {now}"
        lines = [f"Deployment {report.deployment_id} on {where} completed.", f"running: {now}"]
    else:
        verdict = "FAILED, rolled back" if report.outcome == "rolled_back" else "FAILED"
        stopped = report.stopped_task
        # SNS cuts subjects at 100 characters: the gate goes before the (long) service name.
        gate = ""
        if stopped is not None and stopped.gate_failed:
            gate = (
                f" golden-set gate, WER {stopped.golden_wer:.2f} > {stopped.golden_max_wer}:"
                if stopped.golden_wer is not None
                else " golden-set gate, golden set unreadable:"
            )
        subject = f"[ezspeech][{verdict}]{gate} deployment {report.deployment_id} on {where}"
        lines = [
            f"Deployment {report.deployment_id} on {where} {verdict.lower()}.",
            f"reason:        {report.reason}",
            f"failed:        {failed_model}",
            f"service now:   {now}",
            *(stopped.lines() if stopped is not None else []),
        ]
        if report.outcome == "failed":
            lines.append(
                "No rollback detected: check the service; `make rollback-model` restores the previous model."
            )
    return subject, lines
