"""ECS helpers shared by the rollout, the night scaler and the deployment watcher."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from ezspeech_common.errors import ContainerNotFoundError, ServiceNotFoundError

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient

#: Tags the rollout writes on every task-definition revision it registers.
TAG_PREFIX = "ezspeech:"


@dataclass(frozen=True)
class ModelPin:
    """The model a task-definition revision pins (its container's MODEL_URI / MODEL_SHA256)."""

    uri: str
    sha256: str

    @property
    def version_id(self) -> str:
        values = parse_qs(urlsplit(self.uri).query).get("versionId", [])
        return values[0] if values else ""

    @property
    def key(self) -> str:
        parts = urlsplit(self.uri)
        return parts.path.lstrip("/") if parts.scheme == "s3" else self.uri


def describe_service(ecs: ECSClient, cluster: str, service: str) -> dict[str, Any]:
    """The service description; ServiceNotFoundError when it does not exist or is not ACTIVE."""
    try:
        response = ecs.describe_services(cluster=cluster, services=[service])
    except ecs.exceptions.ClusterNotFoundException as error:
        raise ServiceNotFoundError(f"ECS cluster {cluster!r} (of service {service!r}) not found") from error
    services = [s for s in response.get("services", []) if s.get("status") == "ACTIVE"]
    if not services:
        reasons = [f.get("reason", "") for f in response.get("failures", [])]
        raise ServiceNotFoundError(f"ECS service {service!r} in cluster {cluster!r} not found ({reasons})")
    return dict(services[0])


def rollout_in_progress(service: dict[str, Any]) -> bool:
    """True while one deployment is replacing another (PRIMARY plus ACTIVE ones still draining).

    This is also what a circuit-breaker rollback looks like. A single deployment, whatever its
    rolloutState, has nothing left to replace.
    """
    deployments = [d for d in service.get("deployments", []) if d.get("status") in ("PRIMARY", "ACTIVE")]
    return len(deployments) > 1


def other_deployment_ids(service: dict[str, Any]) -> list[str]:
    """Ids of the deployments that are not PRIMARY (what a new rollout would supersede)."""
    return [str(d["id"]) for d in service.get("deployments", []) if d.get("status") == "ACTIVE"]


def find_container(task_definition: dict[str, Any], container_name: str) -> dict[str, Any]:
    for container in task_definition.get("containerDefinitions", []):
        if container.get("name") == container_name:
            return dict(container)
    names = [c.get("name") for c in task_definition.get("containerDefinitions", [])]
    raise ContainerNotFoundError(
        f"task definition {task_definition.get('family')}:{task_definition.get('revision')} has no "
        f"container {container_name!r} (containers: {names})"
    )


def plain_environment(task_definition: dict[str, Any], container_name: str) -> dict[str, str]:
    container = find_container(task_definition, container_name)
    return {str(e["name"]): str(e.get("value", "")) for e in container.get("environment", [])}


def model_pin(task_definition: dict[str, Any], container_name: str) -> ModelPin | None:
    env = plain_environment(task_definition, container_name)
    if not env.get("MODEL_URI"):
        return None
    return ModelPin(uri=env["MODEL_URI"], sha256=env.get("MODEL_SHA256", ""))


def describe_task_definition(ecs: ECSClient, arn: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The task definition and its tags as a dict."""
    response = ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])
    tags = {str(t["key"]): str(t["value"]) for t in response.get("tags", [])}
    return dict(response["taskDefinition"]), tags


def registerable(ecs: ECSClient, task_definition: dict[str, Any]) -> dict[str, Any]:
    """The fields of a described task definition that RegisterTaskDefinition accepts.

    The allow-list is RegisterTaskDefinition's own input shape from the botocore service model,
    so read-only fields (ARN, revision, status, registeredAt, requiresAttributes, ...) drop out
    and fields added to ECS later are copied without a code change.
    """
    shape = ecs.meta.service_model.operation_model("RegisterTaskDefinition").input_shape
    accepted = set(shape.members) if shape is not None else set()
    return {k: v for k, v in task_definition.items() if k in accepted and k != "tags"}


def with_container_environment(
    task_definition: dict[str, Any], container_name: str, updates: dict[str, str]
) -> dict[str, Any]:
    """A copy of ``task_definition`` whose container ``container_name`` has ``updates`` in its env."""
    find_container(task_definition, container_name)  # a clear error before copying anything
    containers = []
    for container in task_definition["containerDefinitions"]:
        if container.get("name") == container_name:
            env = [e for e in container.get("environment", []) if e.get("name") not in updates]
            env.extend({"name": name, "value": value} for name, value in sorted(updates.items()))
            container = {**container, "environment": env}
        containers.append(container)
    return {**task_definition, "containerDefinitions": containers}


def with_container_secret(
    task_definition: dict[str, Any], container_name: str, name: str, value_from: str
) -> dict[str, Any]:
    """A copy of ``task_definition`` whose container ``container_name`` reads ``name`` from ``value_from``."""
    find_container(task_definition, container_name)
    containers = []
    for container in task_definition["containerDefinitions"]:
        if container.get("name") == container_name:
            secrets = [s for s in container.get("secrets", []) if s.get("name") != name]
            secrets.append({"name": name, "valueFrom": value_from})
            container = {**container, "secrets": sorted(secrets, key=lambda s: str(s["name"]))}
        containers.append(container)
    return {**task_definition, "containerDefinitions": containers}


def copyable_tags(tags: dict[str, str]) -> dict[str, str]:
    """Tags a new revision may carry: ``aws:`` tags are reserved and cannot be set by callers."""
    return {k: v for k, v in tags.items() if not k.lower().startswith("aws:")}


@dataclass(frozen=True)
class Deployed:
    """What ``register_and_deploy`` started: the new revision and the deployment running it."""

    task_definition_arn: str
    deployment_id: str


def register_and_deploy(
    ecs: ECSClient, cluster: str, service: str, definition: dict[str, Any], tags: dict[str, str]
) -> Deployed:
    """Register ``definition`` (a ``registerable`` copy with changes) tagged ``tags``, point the
    service at it and name the deployment ECS started for it.

    Model rollouts and client-token rotations both go through here, so a revision is always
    registered and deployed the same way whatever changed in it.
    """
    registered = ecs.register_task_definition(
        **definition, tags=[{"key": k, "value": v} for k, v in sorted(tags.items())]
    )
    new_arn = str(registered["taskDefinition"]["taskDefinitionArn"])
    updated = ecs.update_service(cluster=cluster, service=service, taskDefinition=new_arn)
    deployments = updated["service"].get("deployments", [])
    # moto (and ECS in a race) may not tag the deployment with the revision yet: PRIMARY is it.
    primary = [d for d in deployments if d.get("taskDefinition") == new_arn] or [
        d for d in deployments if d.get("status") == "PRIMARY"
    ]
    return Deployed(new_arn, str(primary[0]["id"]) if primary else "")


def with_container_image(task_definition: dict[str, Any], container_name: str, image: str) -> dict[str, Any]:
    """A copy of ``task_definition`` whose container ``container_name`` runs ``image``; nothing else
    changes (environment, model pin, secrets, ports, limits are the running revision's)."""
    find_container(task_definition, container_name)
    containers = [
        {**c, "image": image} if c.get("name") == container_name else c
        for c in task_definition["containerDefinitions"]
    ]
    return {**task_definition, "containerDefinitions": containers}
