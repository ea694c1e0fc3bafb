"""S3 "Object Created" delivered by EventBridge (the bucket has EventBridge notifications on).

Shape: https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ezspeech_common.events.base import EventBridgeEnvelope, EventModel


class S3Bucket(EventModel):
    name: str


class S3Object(EventModel):
    key: str
    size: int | None = None
    version_id: str | None = Field(default=None, alias="version-id")
    sequencer: str | None = None


class ObjectCreatedDetail(EventModel):
    bucket: S3Bucket
    object: S3Object
    reason: str = ""


class ObjectCreatedEvent(EventBridgeEnvelope):
    source: Literal["aws.s3"]
    detail_type: Literal["Object Created"] = Field(alias="detail-type")
    detail: ObjectCreatedDetail
