"""night_scaler: EventBridge Scheduler sends {"action": "scale_down" | "scale_up"} (template.yaml).

All the logic is ``ezspeech_common.night``; see its docstring for the saved state and the
guarantees (idempotent, exact restore, safe defaults, rollouts never interrupted).
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from ezspeech_common.aws import AwsClients
from ezspeech_common.events.scheduler import NightAction
from ezspeech_common.handler import DEFAULT_METRICS_NAMESPACE, instrumented, parse_event, powertools
from ezspeech_common.night import NightResult, NightSettings, scale_down, scale_up

logger, tracer, metrics = powertools(
    os.environ.get("POWERTOOLS_METRICS_NAMESPACE", DEFAULT_METRICS_NAMESPACE)
)

SETTINGS = NightSettings(
    cluster=os.environ["CLUSTER_NAME"],
    service=os.environ["SERVICE_NAME"],
    parameter=os.environ["CAPACITY_PARAMETER"],
    night_min=int(os.environ["NIGHT_MIN_CAPACITY"]),
    night_max=int(os.environ["NIGHT_MAX_CAPACITY"]),
    default_min=int(os.environ.get("DEFAULT_MIN_CAPACITY", "1")),
    default_max=int(os.environ.get("DEFAULT_MAX_CAPACITY", "2")),
)
CLIENTS = AwsClients()

_METRICS = {
    "scaled_down": "NightScaleDowns",
    "scaled_up": "NightScaleUps",
    "deferred": "NightScaleDownsDeferred",
    "restored_defaults": "NightDefaultsRestored",
}


def run_action(clients: AwsClients, settings: NightSettings, action: str) -> NightResult:
    operation = scale_down if action == "scale_down" else scale_up
    return operation(clients.ssm, clients.autoscaling, clients.ecs, settings)


# Scheduler events have no EventBridge id: the schedule's input carries its execution id instead.
@instrumented(logger, tracer, metrics, correlation_id_path="execution_id")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_event(NightAction.parse, event, logger)
    result = run_action(CLIENTS, SETTINGS, request.action)
    metrics.add_metric(name=_METRICS.get(result.status, "NightNoChange"), unit=MetricUnit.Count, value=1)
    log = logger.warning if result.status in ("deferred", "restored_defaults") else logger.info
    log("night_" + result.status, extra=result.as_dict())
    return result.as_dict()
