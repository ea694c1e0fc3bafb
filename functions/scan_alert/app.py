"""scan_alert: ECR / Inspector scan results at or above SEVERITY_THRESHOLD become one SNS alert.

One alert per image digest per scan result: the key is (repository, digest, scan completion
time), guarded by Powertools idempotency, so repeated deliveries and Inspector's
one-event-per-finding stream collapse into a single alert. Below the threshold there is no alert,
only the ``ScansBelowThreshold`` metric. An alert for the digest the service runs right now is
escalated (subject prefix and ``escalated=true`` message attribute for subscription filters).
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
from aws_lambda_powertools.utilities.typing import LambdaContext
from ezspeech_common.aws import AwsClients
from ezspeech_common.events.scans import ScanEvent, parse_scan_event
from ezspeech_common.handler import (
    DEFAULT_METRICS_NAMESPACE,
    OncePerKey,
    instrumented,
    mark_duplicate,
    parse_event,
    powertools,
)
from ezspeech_common.notify import publish
from ezspeech_common.scanning import (
    Alert,
    AlertSent,
    ScanSettings,
    add_scan_findings,
    alert_text,
    build_alert,
    count_at_or_above,
    image_scan_from_event,
    running_digests,
    scan_is_complete,
)

logger, tracer, metrics = powertools(
    os.environ.get("POWERTOOLS_METRICS_NAMESPACE", DEFAULT_METRICS_NAMESPACE)
)

SETTINGS = ScanSettings(
    threshold=os.environ["SEVERITY_THRESHOLD"],
    # Optional: without them the alert says "running: unknown" instead of escalating.
    cluster=os.environ.get("CLUSTER_NAME", ""),
    service=os.environ.get("SERVICE_NAME", ""),
)
ALERT_TOPIC_ARN = os.environ["ALERT_TOPIC_ARN"]
IDEMPOTENCY_TABLE = os.environ["IDEMPOTENCY_TABLE"]
CLIENTS = AwsClients()


IDEMPOTENCY = IdempotencyConfig(
    event_key_jmespath="[repository, digest, scan_result_id]",
    raise_on_no_idempotency_key=True,
    # Inspector rescans produce a new completion time, hence a new key; a week covers redeliveries.
    expires_after_seconds=7 * 24 * 3600,
    response_hook=mark_duplicate,
)


def evaluate(clients: AwsClients, settings: ScanSettings, event: ScanEvent) -> tuple[str, Alert | None]:
    """(outcome, alert): outcome is "alert", "below_threshold", "not_an_image" or "not_complete"."""
    scan = image_scan_from_event(event)
    if scan is None:
        return "not_an_image", None
    if not scan_is_complete(scan):
        return "not_complete", None
    scan = add_scan_findings(clients.ecr, scan)
    if count_at_or_above(scan.counts, settings.threshold) == 0:
        return "below_threshold", None
    alert = build_alert(scan, settings, running_digests(clients.ecs, settings.cluster, settings.service))
    return "alert", alert


def send_alert(clients: AwsClients, topic_arn: str, alert: Alert) -> AlertSent:
    subject, lines = alert_text(alert)
    attributes = {"kind": "scan", "escalated": str(alert.escalated).lower(), "severity": alert.threshold}
    message_id = publish(clients.sns, topic_arn, subject, lines, alert.as_dict(), attributes)
    return AlertSent(alert.repository, alert.digest, alert.scan_result_id, message_id, alert.escalated)


ALERT_ONCE: OncePerKey[Alert, AlertSent] = OncePerKey(
    lambda alert: send_alert(CLIENTS, ALERT_TOPIC_ARN, alert),
    AlertSent,
    table_name=IDEMPOTENCY_TABLE,
    clients=CLIENTS,
    config=IDEMPOTENCY,
)


@instrumented(logger, tracer, metrics)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    scan_event = parse_event(parse_scan_event, event, logger)
    outcome, alert = evaluate(CLIENTS, SETTINGS, scan_event)
    if alert is None:
        metric = "ScansBelowThreshold" if outcome == "below_threshold" else "ScansIgnored"
        metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
        logger.info("scan_" + outcome, extra={"detail_type": scan_event.detail_type})
        return {"status": outcome}

    IDEMPOTENCY.register_lambda_context(context)
    sent = ALERT_ONCE(alert)
    if sent.duplicate:
        metrics.add_metric(name="AlertsDeduplicated", unit=MetricUnit.Count, value=1)
    else:
        metrics.add_metric(name="AlertsPublished", unit=MetricUnit.Count, value=1)
        if sent.escalated:
            metrics.add_metric(name="AlertsEscalated", unit=MetricUnit.Count, value=1)
    logger.info("scan_alert", extra=sent.as_dict())
    return sent.as_dict()
