"""Night mode: save the day capacity, scale to the night values, restore exactly in the morning.

State lives in one SSM String parameter (``CAPACITY_PARAMETER``, created by the SAM stack) as
JSON: ``{"state": "night"|"day", "saved": {"min": .., "max": .., "desired": ..}, ...}``.

- ``scale_down`` saves first, then changes: the scalable target's min/max go to the night values
  (so target tracking cannot scale back out), then the desired count. While the state is
  "night" the saved day values are never overwritten, so a second run is harmless. A rollout in
  progress is not interrupted: the scale-down is deferred (the schedule fires again later).
- ``scale_up`` restores exactly what was saved and marks the state "day"; a second run changes
  nothing. With nothing saved it applies safe defaults (never below what runs now) and says so.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from ezspeech_common.ecs import describe_service, rollout_in_progress
from ezspeech_common.errors import ConfigurationError, ScalableTargetNotFoundError

if TYPE_CHECKING:
    from mypy_boto3_application_autoscaling import ApplicationAutoScalingClient
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_ssm import SSMClient

DESIRED_COUNT: Final = "ecs:service:DesiredCount"


@dataclass(frozen=True)
class NightSettings:
    cluster: str
    service: str
    parameter: str
    night_min: int = 0
    night_max: int = 0
    default_min: int = 1
    default_max: int = 2

    def __post_init__(self) -> None:
        if not 0 <= self.night_min <= self.night_max:
            raise ConfigurationError(
                f"night capacity needs 0 <= min <= max, got {self.night_min}/{self.night_max}"
            )
        if not 0 <= self.default_min <= self.default_max or self.default_max < 1:
            raise ConfigurationError(
                "default capacity needs 0 <= min <= max and max >= 1, "
                f"got {self.default_min}/{self.default_max}"
            )

    @property
    def resource_id(self) -> str:
        return f"service/{self.cluster}/{self.service}"


@dataclass(frozen=True)
class Capacity:
    min: int
    max: int
    desired: int


@dataclass
class NightResult:
    action: str
    status: str
    before: Capacity | None = None
    after: Capacity | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_state(ssm: SSMClient, name: str) -> dict[str, Any] | None:
    """The saved state, or None when nothing usable was ever saved."""
    try:
        value = ssm.get_parameter(Name=name)["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        return None
    try:
        state = json.loads(value)
    except json.JSONDecodeError:
        return None
    if not isinstance(state, dict) or state.get("state") not in ("night", "day"):
        return None
    if state["state"] == "night" and not isinstance(state.get("saved"), dict):
        return None
    return state


def write_state(ssm: SSMClient, name: str, state: dict[str, Any]) -> None:
    ssm.put_parameter(Name=name, Value=json.dumps(state, sort_keys=True), Type="String", Overwrite=True)


def current_capacity(aas: ApplicationAutoScalingClient, ecs: ECSClient, settings: NightSettings) -> Capacity:
    targets = aas.describe_scalable_targets(
        ServiceNamespace="ecs", ResourceIds=[settings.resource_id], ScalableDimension=DESIRED_COUNT
    )["ScalableTargets"]
    if not targets:
        raise ScalableTargetNotFoundError(
            f"no Application Auto Scaling target for {settings.resource_id} (Terraform registers it)"
        )
    service = describe_service(ecs, settings.cluster, settings.service)
    return Capacity(
        int(targets[0]["MinCapacity"]), int(targets[0]["MaxCapacity"]), int(service["desiredCount"])
    )


def apply_capacity(
    aas: ApplicationAutoScalingClient, ecs: ECSClient, settings: NightSettings, capacity: Capacity
) -> None:
    """Bounds first, so target tracking cannot undo the desired count set right after."""
    aas.register_scalable_target(
        ServiceNamespace="ecs",
        ResourceId=settings.resource_id,
        ScalableDimension=DESIRED_COUNT,
        MinCapacity=capacity.min,
        MaxCapacity=capacity.max,
    )
    ecs.update_service(cluster=settings.cluster, service=settings.service, desiredCount=capacity.desired)


def scale_down(
    ssm: SSMClient, aas: ApplicationAutoScalingClient, ecs: ECSClient, settings: NightSettings
) -> NightResult:
    now = datetime.now(UTC).isoformat()
    before = current_capacity(aas, ecs, settings)
    night = Capacity(
        settings.night_min,
        settings.night_max,
        min(max(before.desired, settings.night_min), settings.night_max),
    )
    state = read_state(ssm, settings.parameter)
    if state is not None and state["state"] == "night":
        if before != night:
            apply_capacity(aas, ecs, settings, night)
        return NightResult(
            "scale_down", "already_down", before, night, "day capacity was saved earlier; kept"
        )
    if rollout_in_progress(describe_service(ecs, settings.cluster, settings.service)):
        return NightResult(
            "scale_down", "deferred", before, before, "a rollout is in progress; not interrupted"
        )
    if (before.min, before.max) == (night.min, night.max):
        # Saving night values as "day" would keep the service down tomorrow: nothing to save.
        if before != night:
            apply_capacity(aas, ecs, settings, night)
        return NightResult("scale_down", "already_at_night_capacity", before, night, "nothing saved")
    write_state(ssm, settings.parameter, {"state": "night", "saved": asdict(before), "saved_at": now})
    apply_capacity(aas, ecs, settings, night)
    return NightResult("scale_down", "scaled_down", before, night, f"saved to {settings.parameter}")


def scale_up(
    ssm: SSMClient, aas: ApplicationAutoScalingClient, ecs: ECSClient, settings: NightSettings
) -> NightResult:
    now = datetime.now(UTC).isoformat()
    before = current_capacity(aas, ecs, settings)
    state = read_state(ssm, settings.parameter)
    if state is not None and state["state"] == "day":
        return NightResult("scale_up", "already_up", before, before, "nothing to restore")
    if state is None:
        target = Capacity(
            min=max(before.min, settings.default_min),
            max=max(before.max, settings.default_max, settings.default_min),
            desired=max(before.desired, settings.default_min),
        )
        status, message = "restored_defaults", "nothing was saved: applied safe defaults"
    else:
        saved = state["saved"]
        target = Capacity(int(saved["min"]), int(saved["max"]), int(saved["desired"]))
        status, message = "scaled_up", "restored the saved day capacity"
    apply_capacity(aas, ecs, settings, target)
    write_state(ssm, settings.parameter, {"state": "day", "saved": asdict(target), "restored_at": now})
    return NightResult("scale_up", status, before, target, message)
