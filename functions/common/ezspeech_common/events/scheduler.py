"""The fixed input an EventBridge Scheduler schedule hands night_scaler.

The schedule's input is ours (template.yaml): the action plus Scheduler's context attributes
``<aws.scheduler.execution-id>`` and ``<aws.scheduler.scheduled-time>`` for correlation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ezspeech_common.events.reader import Fields

Action = Literal["scale_down", "scale_up"]
ACTIONS: tuple[Action, ...] = ("scale_down", "scale_up")


@dataclass(frozen=True)
class NightAction:
    action: Action
    execution_id: str = ""
    scheduled_time: str = ""

    @classmethod
    def parse(cls, event: object) -> NightAction:
        """The handler's event as this model; ``EventShapeError`` names what does not fit."""
        fields = Fields(event)
        return cls(
            action=fields.choice("action", ACTIONS),
            execution_id=fields.text("execution_id", ""),
            scheduled_time=fields.text("scheduled_time", ""),
        )
