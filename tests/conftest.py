"""Root fixtures. Fake AWS credentials and a region are set before any handler is imported,
so no test can reach a real account even by accident."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

#: ``platform`` and ``load_handler`` (a moto account, a cold handler import): tests/functions and
#: tests/ops both use them, and a fixture is shared across folders only from here. The network
#: guard fails any test that connects off this machine; pytester runs the guard's own test.
#: ``server`` and ``start_server`` (a real AsrServer on port 0) serve tests/asr_service and the
#: client's tests in tests/asr_client.
pytest_plugins = [
    "tests.functions.fixtures",
    "tests.asr_service.fixtures",
    "tests.network_guard",
    "pytester",
]

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "ezspeech-tests",
        "POWERTOOLS_METRICS_NAMESPACE": "EzSpeech/Tests",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
)
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("AWS_ENDPOINT_URL", None)


@pytest.fixture(autouse=True)
def _torch_grad_mode_restored() -> Iterator[None]:
    """CLI entry points (the converter, offline transcription, the EzSpeech bench) switch autograd
    off for their whole process; tests call them in-process, so grad mode is put back after each
    test. torch is consulted only when a test already imported it (Lambda tests never do)."""
    torch = sys.modules.get("torch")
    enabled = torch.is_grad_enabled() if torch is not None else True
    yield
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_grad_enabled(enabled)
