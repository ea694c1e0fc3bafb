"""The fixed input an EventBridge Scheduler schedule hands night_scaler.

The schedule's input is ours (template.yaml): the action plus Scheduler's context attributes
``<aws.scheduler.execution-id>`` and ``<aws.scheduler.scheduled-time>`` for correlation.
"""

from __future__ import annotations

from typing import Literal

from ezspeech_common.events.base import EventModel


class NightAction(EventModel):
    action: Literal["scale_down", "scale_up"]
    execution_id: str = ""
    scheduled_time: str = ""
