"""ECS "Deployment State Change".

Shape: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_service_deployment_events.html
"""

from __future__ import annotations

from dataclasses import dataclass

from ezspeech_common.events.base import EventBridgeEnvelope, read_envelope
from ezspeech_common.events.reader import Fields


@dataclass(frozen=True)
class DeploymentStateDetail:
    event_type: str
    event_name: str
    deployment_id: str
    updated_at: str = ""
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class DeploymentStateChangeEvent(EventBridgeEnvelope):
    detail: DeploymentStateDetail

    @classmethod
    def parse(cls, event: object) -> DeploymentStateChangeEvent:
        """The handler's event as this model; ``EventShapeError`` names what does not fit."""
        fields = Fields(event)
        envelope = read_envelope(fields, "aws.ecs", "ECS Deployment State Change")
        detail = fields.object("detail")
        return cls(
            **envelope,
            detail=DeploymentStateDetail(
                event_type=detail.text("eventType"),
                event_name=detail.text("eventName"),
                deployment_id=detail.text("deploymentId"),
                updated_at=detail.text("updatedAt", ""),
                reason=detail.text("reason", ""),
            ),
        )

    @property
    def service_arn(self) -> str:
        services = [arn for arn in self.resources if ":service/" in arn]
        return services[0] if services else ""
