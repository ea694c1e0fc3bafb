"""deploy_watch: ECS "Deployment State Change" for the service → SNS, naming the model versions.

A failed deployment's alert also says why its tasks stopped when ECS and the task's log stream
tell: exit 3/4 and the ``golden_set_failed`` line name the golden-set gate and its WER.

Failed deployments (circuit breaker) and their rollbacks are alerts; completions are reports.
Other states (IN_PROGRESS) are filtered at the rule and ignored here if they arrive anyway,
without touching DynamoDB.

EventBridge delivers at least once, so a report goes out at most once per deployment id and
event name: Powertools idempotency (DynamoDB ``IDEMPOTENCY_TABLE``) guards describe + publish
as one unit. The key is the deployment's state change itself, not the EventBridge event id, so
a duplicate that ECS emits under a new event id is caught too; a failure removes the record, so
EventBridge's retry reports again.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
from aws_lambda_powertools.utilities.typing import LambdaContext
from ezspeech_common.aws import AwsClients
from ezspeech_common.deployments import (
    DeploymentReport,
    ignored_report,
    inspect_stopped_tasks,
    is_reported,
    report_deployment,
    report_text,
)
from ezspeech_common.events.ecs import DeploymentStateChangeEvent
from ezspeech_common.handler import (
    DEFAULT_METRICS_NAMESPACE,
    OncePerKey,
    instrumented,
    mark_duplicate,
    parse_event,
    powertools,
)
from ezspeech_common.notify import publish

logger, tracer, metrics = powertools(
    os.environ.get("POWERTOOLS_METRICS_NAMESPACE", DEFAULT_METRICS_NAMESPACE)
)

NOTIFY_TOPIC_ARN = os.environ["NOTIFY_TOPIC_ARN"]
IDEMPOTENCY_TABLE = os.environ["IDEMPOTENCY_TABLE"]
CONTAINER_NAME = os.environ.get("CONTAINER_NAME", "asr-server")
CLIENTS = AwsClients()

IDEMPOTENCY = IdempotencyConfig(
    event_key_jmespath="[detail.deployment_id, detail.event_name]",
    raise_on_no_idempotency_key=True,
    # EventBridge gives up on an event after an hour (the rule's retry policy); a day is ample.
    expires_after_seconds=24 * 3600,
    response_hook=mark_duplicate,
)

_METRICS = {
    "failed": "DeploymentsFailed",
    "rolled_back": "DeploymentsRolledBack",
    "completed": "DeploymentsCompleted",
}


def watch(
    clients: AwsClients, topic_arn: str, container_name: str, event: DeploymentStateChangeEvent
) -> DeploymentReport:
    report = report_deployment(clients.ecs, event, container_name)
    if report.outcome in ("failed", "rolled_back"):
        # An operator reading the alert wants why the tasks stopped: the exit status and, when
        # the golden-set gate stopped them, the WER it measured.
        report.stopped_task = inspect_stopped_tasks(
            clients.ecs, clients.logs, report.cluster, report.deployment_id, container_name
        )
    if report.outcome != "ignored":
        subject, lines = report_text(report)
        publish(
            clients.sns,
            topic_arn,
            subject,
            lines,
            report.as_dict(),
            {"kind": "deployment", "outcome": report.outcome},
        )
    return report


WATCH_ONCE: OncePerKey[DeploymentStateChangeEvent, DeploymentReport] = OncePerKey(
    lambda change: watch(CLIENTS, NOTIFY_TOPIC_ARN, CONTAINER_NAME, change),
    DeploymentReport,
    table_name=IDEMPOTENCY_TABLE,
    clients=CLIENTS,
    config=IDEMPOTENCY,
)


@instrumented(logger, tracer, metrics)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    change = parse_event(DeploymentStateChangeEvent.parse, event, logger)
    if not is_reported(change):
        ignored = ignored_report(change).as_dict()
        metrics.add_metric(name="DeploymentEventsIgnored", unit=MetricUnit.Count, value=1)
        logger.info("deployment_ignored", extra={**ignored, "event_name": change.detail.event_name})
        return ignored

    IDEMPOTENCY.register_lambda_context(context)
    report = WATCH_ONCE(change)
    if report.duplicate:
        metrics.add_metric(name="DeploymentsDeduplicated", unit=MetricUnit.Count, value=1)
        logger.info(
            "deployment_duplicate", extra={**report.as_dict(), "event_name": change.detail.event_name}
        )
        return report.as_dict()
    metrics.add_metric(name=_METRICS[report.outcome], unit=MetricUnit.Count, value=1)
    (logger.info if report.outcome == "completed" else logger.error)(
        "deployment_" + report.outcome, extra=report.as_dict()
    )
    return report.as_dict()
