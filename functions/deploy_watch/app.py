"""deploy_watch: ECS "Deployment State Change" for the service → SNS, naming the model versions.

Failed deployments (circuit breaker) and their rollbacks are alerts; completions are reports.
Other states (IN_PROGRESS) are filtered at the rule and ignored here if they arrive anyway.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from ezspeech_common.aws import AwsClients
from ezspeech_common.deployments import DeploymentReport, report_deployment, report_text
from ezspeech_common.errors import EventShapeError
from ezspeech_common.events.ecs import DeploymentStateChangeEvent
from ezspeech_common.notify import publish

logger = Logger()
tracer = Tracer(patch_modules=("boto3",))
# The namespace is set by the template (Globals); the default keeps local runs (demo, tests) working.
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "EzSpeech/Automation"))

NOTIFY_TOPIC_ARN = os.environ["NOTIFY_TOPIC_ARN"]
CONTAINER_NAME = os.environ.get("CONTAINER_NAME", "asr-server")
CLIENTS = AwsClients()

_METRICS = {
    "failed": "DeploymentsFailed",
    "rolled_back": "DeploymentsRolledBack",
    "completed": "DeploymentsCompleted",
}


def watch(
    clients: AwsClients, topic_arn: str, container_name: str, event: DeploymentStateChangeEvent
) -> DeploymentReport:
    report = report_deployment(clients.ecs, event, container_name)
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


@tracer.capture_lambda_handler
@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        change = DeploymentStateChangeEvent.parse(event)
    except EventShapeError as error:
        logger.error("event_rejected", extra={"error": str(error)})
        raise
    report = watch(CLIENTS, NOTIFY_TOPIC_ARN, CONTAINER_NAME, change)
    metrics.add_metric(
        name=_METRICS.get(report.outcome, "DeploymentEventsIgnored"), unit=MetricUnit.Count, value=1
    )
    (logger.info if report.outcome in ("completed", "ignored") else logger.error)(
        "deployment_" + report.outcome, extra=report.as_dict()
    )
    return report.as_dict()
