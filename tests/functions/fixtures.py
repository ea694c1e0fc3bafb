"""The moto account fixtures the Lambda tests (tests/functions) and the ops CLI tests (tests/ops)
share; the root conftest registers them as a plugin. What they build and read back is in
``helpers.py``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import ModuleType

import pytest
from ezspeech_common.aws import AwsClients

from tests.functions.helpers import Platform, handler_loader, moto_platform


@pytest.fixture
def platform() -> Iterator[Platform]:
    with moto_platform() as account:
        yield account


@pytest.fixture
def load_handler(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[[str, dict[str, str], AwsClients], ModuleType]]:
    with handler_loader(monkeypatch) as load:
        yield load
