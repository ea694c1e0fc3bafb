"""The EventBridge envelope every AWS service event shares."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict

from ezspeech_common.events.reader import Fields


@dataclass(frozen=True, kw_only=True)
class EventBridgeEnvelope:
    """Base of every EventBridge event model; a subclass adds its ``detail``."""

    id: str
    source: str
    detail_type: str
    # AWS sends ISO-8601; moto's S3 notifications send epoch seconds. Both read as aware UTC.
    time: datetime
    account: str = ""
    region: str = ""
    resources: tuple[str, ...] = ()


class Envelope(TypedDict):
    """The envelope's fields as keyword arguments for a subclass's constructor."""

    id: str
    source: str
    detail_type: str
    time: datetime
    account: str
    region: str
    resources: tuple[str, ...]


def read_envelope(event: Fields, source: str, detail_type: str) -> Envelope:
    """The envelope of an event that must come from ``source`` with ``detail_type``."""
    # Source and detail-type first: for an event of the wrong kind, that is the useful message.
    return Envelope(
        source=event.choice("source", (source,)),
        detail_type=event.choice("detail-type", (detail_type,)),
        id=event.text("id"),
        time=event.timestamp("time"),
        account=event.text("account", ""),
        region=event.text("region", ""),
        resources=event.texts("resources"),
    )
