"""model_rollout: an S3 "Object Created" under the models prefix rolls that exact version out.

EventBridge already filters bucket, prefix and suffix at the rule; the handler checks again
(the rule is configuration, this is the contract). The work itself is
``ezspeech_common.rollout.roll_out_model``, shared with ``python -m ops.rollout``. It runs at most
once per bucket+key+version through Powertools idempotency (DynamoDB ``IDEMPOTENCY_TABLE``),
and the SNS notification is part of that once-only unit.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
from aws_lambda_powertools.utilities.typing import LambdaContext
from ezspeech_common.aws import AwsClients
from ezspeech_common.errors import AutomationError
from ezspeech_common.events.s3 import ObjectCreatedEvent
from ezspeech_common.handler import (
    DEFAULT_METRICS_NAMESPACE,
    OncePerKey,
    instrumented,
    mark_duplicate,
    parse_event,
    powertools,
)
from ezspeech_common.notify import publish
from ezspeech_common.rollout import (
    ModelRef,
    RolloutResult,
    RolloutSettings,
    is_model_key,
    notification,
    roll_out_model,
)

logger, tracer, metrics = powertools(
    os.environ.get("POWERTOOLS_METRICS_NAMESPACE", DEFAULT_METRICS_NAMESPACE)
)

SETTINGS = RolloutSettings(
    cluster=os.environ["CLUSTER_NAME"],
    service=os.environ["SERVICE_NAME"],
    container_name=os.environ["CONTAINER_NAME"],
    model_key_prefix=os.environ["MODEL_KEY_PREFIX"],
    min_model_bytes=int(os.environ.get("MIN_MODEL_BYTES", "1024")),
    max_model_bytes=int(os.environ.get("MAX_MODEL_BYTES", str(5 * 1024**3))),
)
NOTIFY_TOPIC_ARN = os.environ["NOTIFY_TOPIC_ARN"]
IDEMPOTENCY_TABLE = os.environ["IDEMPOTENCY_TABLE"]
CLIENTS = AwsClients()


IDEMPOTENCY = IdempotencyConfig(
    event_key_jmespath="[bucket, key, version_id]",
    raise_on_no_idempotency_key=True,
    # Redeliveries come within minutes; after a day the ordering watermark and the
    # "already_deployed" check (same URI and checksum) still stop a repeat.
    expires_after_seconds=24 * 3600,
    response_hook=mark_duplicate,
)


def deploy_and_notify(
    clients: AwsClients, settings: RolloutSettings, topic_arn: str, ref: ModelRef
) -> RolloutResult:
    """The once-only unit: roll out, then announce a started rollout on SNS."""
    result = roll_out_model(clients.s3, clients.ecs, settings, ref, source="event")
    if result.status == "started":
        subject, lines = notification(result, settings.cluster, settings.service)
        publish(clients.sns, topic_arn, subject, lines, result.as_dict(), {"kind": "rollout"})
    return result


DEPLOY_ONCE: OncePerKey[ModelRef, RolloutResult] = OncePerKey(
    lambda ref: deploy_and_notify(CLIENTS, SETTINGS, NOTIFY_TOPIC_ARN, ref),
    RolloutResult,
    table_name=IDEMPOTENCY_TABLE,
    clients=CLIENTS,
    config=IDEMPOTENCY,
)


@instrumented(logger, tracer, metrics)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    upload = parse_event(ObjectCreatedEvent.parse, event, logger)
    bucket, obj = upload.detail.bucket.name, upload.detail.object
    if not is_model_key(obj.key, SETTINGS.model_key_prefix):
        logger.info("upload_ignored", extra={"bucket": bucket, "key": obj.key, "why": "not a model key"})
        metrics.add_metric(name="RolloutsIgnored", unit=MetricUnit.Count, value=1)
        return {"status": "ignored", "reason": "not_a_model_key", "bucket": bucket, "key": obj.key}

    ref = ModelRef(bucket=bucket, key=obj.key, version_id=obj.version_id, sequencer=obj.sequencer)
    IDEMPOTENCY.register_lambda_context(context)
    try:
        result = DEPLOY_ONCE(ref)
    except AutomationError as error:
        logger.error("rollout_failed", extra={"bucket": bucket, "key": obj.key, "error": str(error)})
        metrics.add_metric(name="RolloutsFailed", unit=MetricUnit.Count, value=1)
        raise

    if result.duplicate:
        metrics.add_metric(name="RolloutsDeduplicated", unit=MetricUnit.Count, value=1)
    elif result.status == "started":
        metrics.add_metric(name="RolloutsStarted", unit=MetricUnit.Count, value=1)
        if result.superseded_deployment_ids:
            metrics.add_metric(name="RolloutsSuperseded", unit=MetricUnit.Count, value=1)
    else:
        metrics.add_metric(name="RolloutsSkipped", unit=MetricUnit.Count, value=1)
    logger.info("rollout_" + ("duplicate" if result.duplicate else result.status), extra=result.as_dict())
    return result.as_dict()
