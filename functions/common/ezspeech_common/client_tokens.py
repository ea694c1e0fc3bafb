"""Roll the service onto a new version of the client-tokens secret, the way a model is rolled out.

A task reads ``AUTH_TOKENS`` once, when it starts: ECS resolves the task definition's ``secrets``
entry with the execution role. So a new secret version reaches the service like a new model does
(``ezspeech_common.rollout``): a new task-definition revision, copied from the one the service
runs now, whose ``AUTH_TOKENS`` entry pins the version (``valueFrom = <secret ARN>:::<version
id>``, ECS's documented form), then UpdateService. The deployment (minimum 100 % healthy, maximum
200 %, circuit breaker with rollback) starts new tasks beside the old ones; the old ones keep the
tokens they started with until they have drained, so no open session is cut, and any rollback
to an earlier revision brings back the tokens of its time together with its model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ezspeech_common.ecs import (
    TAG_PREFIX,
    copyable_tags,
    describe_service,
    describe_task_definition,
    find_container,
    other_deployment_ids,
    register_and_deploy,
    registerable,
    rollout_in_progress,
    with_container_secret,
)
from ezspeech_common.errors import ClientTokensError, DeploymentFailedError

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient

    from ezspeech_common.rollout import RolloutSettings

#: The container's variable (DESIGN.md container contract).
AUTH_TOKENS = "AUTH_TOKENS"


@dataclass(frozen=True)
class SecretRef:
    """A ``secrets`` valueFrom naming a Secrets Manager secret, optionally pinned to a version."""

    arn: str
    version_id: str = ""

    @classmethod
    def parse(cls, value_from: str) -> SecretRef:
        # arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME[:json-key:version-stage:version-id]
        parts = value_from.split(":")
        if len(parts) < 7 or parts[0] != "arn" or parts[2] != "secretsmanager" or parts[5] != "secret":
            raise ClientTokensError(
                f"{AUTH_TOKENS} is read from {value_from.split(':')[2:3] or value_from!r}, not from a "
                "Secrets Manager secret ARN"
            )
        json_key, stage, version = ([*parts[7:], "", "", ""])[:3]
        if json_key or stage:
            raise ClientTokensError(
                f"{AUTH_TOKENS} takes a JSON key or a version stage of the secret; the rollout pins "
                "whole versions only (valueFrom = ARN or ARN:::VERSION_ID)"
            )
        return cls(":".join(parts[:7]), version)

    @property
    def value_from(self) -> str:
        return f"{self.arn}:::{self.version_id}" if self.version_id else self.arn


def tokens_secret(task_definition: dict[str, Any], container_name: str) -> SecretRef:
    """The secret (and pinned version, if any) the container reads AUTH_TOKENS from."""
    container = find_container(task_definition, container_name)
    for entry in container.get("secrets", []):
        if entry.get("name") == AUTH_TOKENS:
            return SecretRef.parse(str(entry["valueFrom"]))
    raise ClientTokensError(
        f"task definition {task_definition.get('family')}:{task_definition.get('revision')} gives "
        f"container {container_name!r} no {AUTH_TOKENS} secret: apply Terraform (terraform/secrets.tf) first"
    )


@dataclass
class TokensRolloutResult:
    status: Literal["started", "skipped"]
    reason: str
    secret_arn: str
    version_id: str
    previous_version_id: str = ""
    task_definition_arn: str = ""
    previous_task_definition_arn: str = ""
    deployment_id: str = ""
    superseded_deployment_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def roll_out_client_tokens(
    ecs: ECSClient, settings: RolloutSettings, version_id: str, *, secret_arn: str | None = None
) -> TokensRolloutResult:
    """Pin ``version_id`` of the service's client-tokens secret on a new revision and deploy it.

    Everything else of the running revision is kept (its model pin and the rollout's ordering
    tags included). ``secret_arn`` must be the secret the revision already reads, if given: a
    rollout never silently moves the service to another secret.
    """
    if not version_id:
        raise ClientTokensError("a secret version id is required")
    service = describe_service(ecs, settings.cluster, settings.service)
    current_arn = str(service["taskDefinition"])
    current, current_tags = describe_task_definition(ecs, current_arn)
    secret = tokens_secret(current, settings.container_name)
    if secret_arn is not None and secret_arn != secret.arn:
        raise ClientTokensError(
            f"the service reads {AUTH_TOKENS} from {secret.arn}, not {secret_arn}; "
            "change the secret with Terraform"
        )
    result = TokensRolloutResult(
        status="skipped",
        reason="",
        secret_arn=secret.arn,
        version_id=version_id,
        previous_version_id=secret.version_id,
        previous_task_definition_arn=current_arn,
    )
    if secret.version_id == version_id:
        result.reason = "already_deployed"
        return result
    definition = with_container_secret(
        registerable(ecs, current),
        settings.container_name,
        AUTH_TOKENS,
        SecretRef(secret.arn, version_id).value_from,
    )
    tags = {
        **copyable_tags(current_tags),
        TAG_PREFIX + "client-tokens-version": version_id,
        TAG_PREFIX + "rollout-source": "rotate-tokens",
    }
    result.superseded_deployment_ids = other_deployment_ids(service) if rollout_in_progress(service) else []
    deployed = register_and_deploy(ecs, settings.cluster, settings.service, definition, tags)
    result.status = "started"
    result.reason = "superseded_in_progress_rollout" if result.superseded_deployment_ids else "new_tokens"
    result.task_definition_arn = deployed.task_definition_arn
    result.deployment_id = deployed.deployment_id
    return result


DeploymentState = Literal["COMPLETED", "IN_PROGRESS"]


def deployment_state(ecs: ECSClient, settings: RolloutSettings, task_definition_arn: str) -> DeploymentState:
    """Where the deployment of ``task_definition_arn`` stands.

    COMPLETED: it is the service's only deployment and ECS reports it COMPLETED, i.e. every task of
    an older revision has drained and stopped. A deployment that failed, was rolled back or was
    superseded by another revision raises DeploymentFailedError.
    """
    service = describe_service(ecs, settings.cluster, settings.service)
    deployments = service.get("deployments", [])
    ours = [d for d in deployments if d.get("taskDefinition") == task_definition_arn]
    if not ours or ours[0].get("status") != "PRIMARY":
        raise DeploymentFailedError(
            f"the service runs {service.get('taskDefinition')} now, not {task_definition_arn}: "
            "the deployment was rolled back (circuit breaker) or replaced by a newer one"
        )
    deployment = ours[0]
    if deployment.get("rolloutState") == "FAILED":
        raise DeploymentFailedError(
            f"deployment {deployment.get('id')} FAILED: {deployment.get('rolloutStateReason', '')}"
        )
    if deployment.get("rolloutState") == "COMPLETED" and len(deployments) == 1:
        return "COMPLETED"
    return "IN_PROGRESS"


def wait_for_deployment(
    ecs: ECSClient,
    settings: RolloutSettings,
    task_definition_arn: str,
    timeout_s: float,
    poll_s: float = 15.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Return once the deployment has COMPLETED (old tasks drained); DeploymentFailedError otherwise."""
    deadline = clock() + timeout_s
    while deployment_state(ecs, settings, task_definition_arn) != "COMPLETED":
        if clock() >= deadline:
            raise DeploymentFailedError(
                f"the deployment of {task_definition_arn.rsplit('/', 1)[-1]} did not complete within "
                f"{timeout_s:.0f} s; it may still finish (make model-status shows the service's revision)"
            )
        sleep(poll_s)
