"""A small strict reader for event JSON: what the event models (frozen dataclasses) are built with.

Why not pydantic and the Powertools parser, as CONVENTIONS.md asks: cold start. Importing them
(pydantic, pydantic_core, importlib.metadata, then building the models) took about 40-60 ms of
CPU on a quiet machine where a bare ``import boto3`` takes about 112 ms; it was the largest
avoidable part of every handler's import and kept all four at 1.7-1.9x ``import boto3``, above
the cold-start target of 1.5x. These few flat models need only a fraction of pydantic, and this
module keeps its contract for them: types are checked, unknown keys are ignored, AWS's dashed
and camelCase names map to ours, absent keys take the model's default, and a wrong event raises
one :class:`~ezspeech_common.errors.EventShapeError` whose message names the field path and the
problem (``detail.object.key: missing``), so the handler fails, EventBridge retries, the DLQ
keeps the event, and the log says why.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypeVar

from ezspeech_common.errors import EventShapeError

Choice = TypeVar("Choice", bound=str)


def describe(value: object) -> str:
    """A JSON value as an error message shows it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, int | float):
        return repr(value)
    return "a list" if isinstance(value, list) else "an object"


class Fields:
    """One JSON object of an event, read key by key; every refusal names the key's full path."""

    __slots__ = ("_data", "_path")

    def __init__(self, data: object, path: str = "") -> None:
        if not isinstance(data, dict):
            raise EventShapeError(f"{path or 'event'}: expected an object, got {describe(data)}")
        self._data: dict[str, object] = data
        self._path = path

    def path(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def _refuse(self, key: str, expected: str, value: object) -> EventShapeError:
        return EventShapeError(f"{self.path(key)}: expected {expected}, got {describe(value)}")

    def _required(self, key: str) -> object:
        if key not in self._data:
            raise EventShapeError(f"{self.path(key)}: missing")
        return self._data[key]

    def text(self, key: str, default: str | None = None) -> str:
        """A string; required unless a default is given (used only when the key is absent)."""
        if default is not None and key not in self._data:
            return default
        value = self._required(key)
        if not isinstance(value, str):
            raise self._refuse(key, "a string", value)
        return value

    def optional_text(self, key: str) -> str | None:
        """A string, or None when the key is absent or null."""
        return None if self._data.get(key) is None else self.text(key)

    def optional_integer(self, key: str) -> int | None:
        value = self._data.get(key)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._refuse(key, "an integer", value)
        return value

    def optional_number(self, key: str) -> float | None:
        value = self._data.get(key)
        if value is None:
            return None
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self._refuse(key, "a number", value)
        return float(value)

    def choice(self, key: str, allowed: tuple[Choice, ...]) -> Choice:
        """A required string that must be one of ``allowed`` (a literal check)."""
        value = self.text(key)
        for option in allowed:
            if value == option:
                return option
        expected = repr(allowed[0]) if len(allowed) == 1 else "one of " + ", ".join(map(repr, allowed))
        raise self._refuse(key, expected, value)

    def timestamp(self, key: str) -> datetime:
        """A required aware time: ISO-8601 (AWS; naive means UTC) or epoch seconds (moto's S3)."""
        value = self._required(key)
        try:
            if isinstance(value, str):
                parsed = datetime.fromisoformat(value)
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return datetime.fromtimestamp(value, tz=UTC)
        except (ValueError, OverflowError, OSError):
            pass
        raise self._refuse(key, "an ISO-8601 time or epoch seconds", value)

    def _list(self, key: str) -> list[object]:
        value = self._data.get(key, [])
        if not isinstance(value, list):
            raise self._refuse(key, "a list", value)
        return value

    def texts(self, key: str) -> tuple[str, ...]:
        """A list of strings; empty when the key is absent."""
        texts: list[str] = []
        for index, item in enumerate(self._list(key)):
            if not isinstance(item, str):
                raise self._refuse(f"{key}[{index}]", "a string", item)
            texts.append(item)
        return tuple(texts)

    def counts(self, key: str) -> dict[str, int]:
        """An object of integers (e.g. severity → count); empty when the key is absent."""
        if key not in self._data:
            return {}
        counts = Fields(self._data[key], self.path(key))
        return {name: counts._integer(name) for name in counts._data}

    def _integer(self, key: str) -> int:
        value = self.optional_integer(key)
        if value is None:
            raise self._refuse(key, "an integer", None)
        return value

    def object(self, key: str) -> Fields:
        """A required nested object."""
        return Fields(self._required(key), self.path(key))

    def optional_object(self, key: str) -> Fields | None:
        """A nested object, or None when the key is absent or null."""
        return None if self._data.get(key) is None else self.object(key)

    def objects(self, key: str) -> list[Fields]:
        """A list of objects; empty when the key is absent."""
        return [Fields(item, f"{self.path(key)}[{index}]") for index, item in enumerate(self._list(key))]
