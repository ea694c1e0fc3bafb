"""Settings dataclasses read back from checkpoints (hyper-parameters, feature settings)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from typing import Any, TypeVar

T = TypeVar("T")


def dataclass_from_mapping(cls: type[T], values: Mapping[str, Any], what: str) -> T:
    """Build ``cls`` from ``values``, refusing unknown keys: a typo or a setting from a newer
    format must fail loudly, not be dropped and silently change how the model runs."""
    if not is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {what}: {', '.join(unknown)}")
    return cls(**dict(values))
