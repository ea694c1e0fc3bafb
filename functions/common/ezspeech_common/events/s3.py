"""S3 "Object Created" delivered by EventBridge (the bucket has EventBridge notifications on).

Shape: https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html
"""

from __future__ import annotations

from dataclasses import dataclass

from ezspeech_common.events.base import EventBridgeEnvelope, read_envelope
from ezspeech_common.events.reader import Fields


@dataclass(frozen=True)
class S3Bucket:
    name: str


@dataclass(frozen=True)
class S3Object:
    key: str
    size: int | None = None
    version_id: str | None = None
    sequencer: str | None = None

    @classmethod
    def read(cls, fields: Fields) -> S3Object:
        return cls(
            key=fields.text("key"),
            size=fields.optional_integer("size"),
            version_id=fields.optional_text("version-id"),
            sequencer=fields.optional_text("sequencer"),
        )


@dataclass(frozen=True)
class ObjectCreatedDetail:
    bucket: S3Bucket
    object: S3Object
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class ObjectCreatedEvent(EventBridgeEnvelope):
    detail: ObjectCreatedDetail

    @classmethod
    def parse(cls, event: object) -> ObjectCreatedEvent:
        """The handler's event as this model; ``EventShapeError`` names what does not fit."""
        fields = Fields(event)
        envelope = read_envelope(fields, "aws.s3", "Object Created")
        detail = fields.object("detail")
        return cls(
            **envelope,
            detail=ObjectCreatedDetail(
                bucket=S3Bucket(name=detail.object("bucket").text("name")),
                object=S3Object.read(detail.object("object")),
                reason=detail.text("reason", ""),
            ),
        )
