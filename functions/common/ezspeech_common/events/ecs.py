"""ECS "Deployment State Change".

Shape: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_service_deployment_events.html
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ezspeech_common.events.base import EventBridgeEnvelope, EventModel


class DeploymentStateDetail(EventModel):
    event_type: str = Field(alias="eventType")
    event_name: str = Field(alias="eventName")
    deployment_id: str = Field(alias="deploymentId")
    updated_at: str = Field(default="", alias="updatedAt")
    reason: str = ""


class DeploymentStateChangeEvent(EventBridgeEnvelope):
    source: Literal["aws.ecs"]
    detail_type: Literal["ECS Deployment State Change"] = Field(alias="detail-type")
    detail: DeploymentStateDetail

    @property
    def service_arn(self) -> str:
        services = [arn for arn in self.resources if ":service/" in arn]
        return services[0] if services else ""
