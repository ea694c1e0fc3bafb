"""The EventBridge envelope every AWS service event shares."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class EventModel(BaseModel):
    """Base of every event model: unknown keys are ignored, AWS's dashed names are aliases."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class EventBridgeEnvelope(EventModel):
    id: str
    source: str
    detail_type: str = Field(alias="detail-type")
    account: str = ""
    # AWS sends ISO-8601; moto's S3 notifications send epoch seconds. pydantic takes both.
    time: datetime
    region: str = ""
    resources: list[str] = Field(default_factory=list)
