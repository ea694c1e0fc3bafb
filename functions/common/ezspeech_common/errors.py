"""Named failures. A handler raises them so EventBridge/Lambda retries and the DLQ catch the event."""

from __future__ import annotations


class AutomationError(Exception):
    """Base class of every failure the automation raises on purpose."""


class EventShapeError(AutomationError, ValueError):
    """The event does not have the shape its model needs; the message names the field and why."""


class ConfigurationError(AutomationError):
    """A setting (env var, parameter) is missing or malformed."""


class VersioningRequiredError(AutomationError):
    """The models bucket has no versioning, so a rollout could not pin (and later restore) a version."""


class ModelObjectNotFoundError(AutomationError):
    """The uploaded object does not exist at the version the event names."""


class ModelChecksumError(AutomationError):
    """The object has no usable ``sha256`` metadata to pin as ``MODEL_SHA256``."""


class ModelSizeError(AutomationError):
    """The object is too small or too large to be a checkpoint."""


class UnsupportedModelKeyError(AutomationError):
    """The key has characters that do not survive the ``s3://bucket/key`` URI unchanged."""


class ServiceNotFoundError(AutomationError):
    """The ECS service (or its cluster) does not exist or is not active."""


class ContainerNotFoundError(AutomationError):
    """The task definition has no container with the configured name."""


class ScalableTargetNotFoundError(AutomationError):
    """The service has no Application Auto Scaling target to save or restore."""


class RollbackTargetError(AutomationError):
    """A manual rollback has no earlier model version to go back to."""


class GoldenSetPinError(AutomationError):
    """The golden set given with a model (object metadata ``golden-set``) is malformed or missing."""


class ClientTokensError(AutomationError):
    """The client-tokens secret cannot be rolled out (not wired into the task definition, or bad)."""


class DeploymentFailedError(AutomationError):
    """The deployment a rollout started failed, was rolled back, or did not finish in time."""
