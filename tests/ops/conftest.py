"""The ops tests use the same small moto account as the Lambda tests."""

from tests.functions.conftest import platform

__all__ = ["platform"]
