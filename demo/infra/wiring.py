"""What Terraform built, read back from moto, checked against what the SAM stack (samconfig.toml's
SSM parameter names and task-role pattern), the Makefile/ops and the container contract expect.
Not a word of the .tf text is read here: a broken reference shows as a broken resource."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

#: The container contract of DESIGN.md.
CONTAINER_NAME = "asr-server"
WEBSOCKET_PORT, HEALTH_PORT, READY_PATH = 8765, 8080, "/ready"
MIN_IDLE_TIMEOUT_S = 300
_OVERRIDE = re.compile(r'(\w+)="([^"]*)"')


def sam_parameters(root: Path, env: str) -> dict[str, str]:
    """``parameter_overrides`` of samconfig.toml's ``[<env>.deploy.parameters]``."""
    config = tomllib.loads((root / "samconfig.toml").read_text())
    overrides = str(config[env]["deploy"]["parameters"]["parameter_overrides"])
    return dict(_OVERRIDE.findall(overrides.replace('\\"', '"')))


def moto_client(endpoint: str) -> Callable[[str], Any]:
    """A boto3 client factory for the rehearsal's moto server (fake keys: nothing else is reachable)."""

    def client(name: str) -> Any:
        return boto3.client(  # type: ignore[call-overload]
            name,
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="rehearsal",
            aws_secret_access_key="rehearsal",  # noqa: S106 - moto's fake key, never a real one
        )

    return client


def check_wiring(env: str, endpoint: str, root: Path) -> tuple[list[str], list[str]]:
    """(problems, names of the checks that ran). Each problem says what the consumer expected."""

    client = moto_client(endpoint)
    problems: list[str] = []
    ran: list[str] = []

    def check(name: str, body: Callable[[], str | None]) -> None:
        ran.append(name)
        try:
            problem = body()
        except (ClientError, KeyError, IndexError, ValueError) as error:
            problem = f"{type(error).__name__}: {error}"
        if problem:
            problems.append(f"{name}: {problem}")

    ssm, ecs, s3, ecr, logs = (client(n) for n in ("ssm", "ecs", "s3", "ecr", "logs"))
    elbv2, secrets = client("elbv2"), client("secretsmanager")
    sam = sam_parameters(root, env)
    names: dict[str, str] = {}
    for parameter, path in sorted(sam.items()):
        if not path.startswith("/"):
            continue

        def read(parameter: str = parameter, path: str = path) -> str | None:
            try:
                names[path.rsplit("/", 1)[-1]] = str(ssm.get_parameter(Name=path)["Parameter"]["Value"])
            except ssm.exceptions.ParameterNotFound:
                return f"SSM {path} (SAM parameter {parameter}) was not written by Terraform"
            return None

        check(f"ssm {path}", read)

    # Read by the Makefile (make push), ops/ and the demo rather than by SAM.
    for path in (
        f"/ezspeech/{env}/{what}" for what in ("ecr-repository-url", "container-name", "task-family")
    ):

        def read_extra(path: str = path) -> str | None:
            try:
                names[path.rsplit("/", 1)[-1]] = str(ssm.get_parameter(Name=path)["Parameter"]["Value"])
            except ssm.exceptions.ParameterNotFound:
                return f"SSM {path} (read by make push / ops) was not written by Terraform"
            return None

        check(f"ssm {path}", read_extra)

    cluster, service_name = names.get("cluster-name", ""), names.get("service-name", "")
    service: dict[str, Any] = {}
    definition: dict[str, Any] = {}
    container: dict[str, Any] = {}

    def ecs_service() -> str | None:
        reply = ecs.describe_services(cluster=cluster, services=[service_name])
        active = [s for s in reply.get("services", []) if s.get("status") == "ACTIVE"]
        if not active:
            return (
                f"no ACTIVE service {service_name!r} in cluster {cluster!r} (SSM cluster-name/service-name)"
            )
        service.update(active[0])
        definition.update(
            ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
        )
        matches = [c for c in definition["containerDefinitions"] if c["name"] == CONTAINER_NAME]
        if not matches:
            return (
                f"task definition {definition['family']} has no container {CONTAINER_NAME!r} (the rollout's)"
            )
        container.update(matches[0])
        return None

    check("ecs service and its container", ecs_service)
    if not container:
        return problems, ran

    def family() -> str | None:
        want = names.get("task-family", "")
        return (
            None if definition["family"] == want else f"SSM task-family {want!r} != {definition['family']!r}"
        )

    def container_name() -> str | None:
        want = names.get("container-name", "")
        return (
            None if want == CONTAINER_NAME else f"SSM container-name {want!r}, SAM passes {CONTAINER_NAME!r}"
        )

    def ports() -> str | None:
        mapped = {int(p["containerPort"]) for p in container.get("portMappings", [])}
        want = {WEBSOCKET_PORT, HEALTH_PORT}
        return (
            None
            if want <= mapped
            else f"container ports {sorted(mapped)}, the server listens on {sorted(want)}"
        )

    def load_balancer() -> str | None:
        wired = service.get("loadBalancers", [])
        ours = [lb for lb in wired if lb.get("containerName") == CONTAINER_NAME]
        if not ours or int(ours[0]["containerPort"]) != WEBSOCKET_PORT:
            return f"service load balancers {wired}: want {CONTAINER_NAME}:{WEBSOCKET_PORT}"
        group = elbv2.describe_target_groups(TargetGroupArns=[ours[0]["targetGroupArn"]])["TargetGroups"][0]
        if (group.get("HealthCheckPath"), str(group.get("HealthCheckPort"))) != (
            READY_PATH,
            str(HEALTH_PORT),
        ):
            return f"target group health check {group.get('HealthCheckPath')}:{group.get('HealthCheckPort')}"
        attributes = {
            a["Key"]: a["Value"]
            for a in elbv2.describe_load_balancer_attributes(LoadBalancerArn=group["LoadBalancerArns"][0])[
                "Attributes"
            ]
        }
        idle = int(attributes.get("idle_timeout.timeout_seconds", "0"))
        return None if idle >= MIN_IDLE_TIMEOUT_S else f"ALB idle timeout {idle} s < {MIN_IDLE_TIMEOUT_S} s"

    def image() -> str | None:
        repository = names.get("ecr-repository-name", "")
        described = ecr.describe_repositories(repositoryNames=[repository])["repositories"][0]
        if described["repositoryUri"] != names.get("ecr-repository-url"):
            url = names.get("ecr-repository-url")
            return f"SSM ecr-repository-url {url!r} != the repository's {described['repositoryUri']!r}"
        if not described.get("imageScanningConfiguration", {}).get("scanOnPush"):
            return f"{repository} does not scan on push (scan_alert and deploy-image rely on it)"
        if not str(container["image"]).startswith(described["repositoryUri"] + ":"):
            return f"container image {container['image']!r} is not from {described['repositoryUri']}"
        return None

    def models_bucket() -> str | None:
        bucket = names.get("models-bucket", "")
        if s3.get_bucket_versioning(Bucket=bucket).get("Status") != "Enabled":
            return f"{bucket} is not versioned (the rollout pins ?versionId=)"
        return None

    def upload_reaches_eventbridge() -> str | None:
        # moto does not echo a bucket's EventBridge switch back, but it does deliver the events:
        # the model_rollout rule's pattern, a queue as its target, and one upload under models/.
        bucket = names.get("models-bucket", "")
        events, sqs = client("events"), client("sqs")
        queue = sqs.create_queue(QueueName="rehearsal-object-created")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        pattern = {
            "source": ["aws.s3"],
            "detail-type": ["Object Created"],
            "detail": {"bucket": {"name": [bucket]}, "object": {"key": [{"prefix": "models/"}]}},
        }
        events.put_rule(Name="rehearsal-object-created", EventPattern=json.dumps(pattern))
        events.put_targets(Rule="rehearsal-object-created", Targets=[{"Id": "queue", "Arn": queue_arn}])
        # moto enforces the bucket's TLS-only deny against its plain-HTTP endpoint (as S3 would):
        # the policy is set aside for the upload and put back as it was, byte for byte.
        policy = s3.get_bucket_policy(Bucket=bucket)["Policy"]
        s3.delete_bucket_policy(Bucket=bucket)
        try:
            s3.put_object(Bucket=bucket, Key="models/rehearsal.pt", Body=b"rehearsal")
            received = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=2).get("Messages", [])
            # Leave the bucket empty, or destroy refuses it.
            for version in s3.list_object_versions(Bucket=bucket).get("Versions", []):
                s3.delete_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])
        finally:
            s3.put_bucket_policy(Bucket=bucket, Policy=policy)
            events.remove_targets(Rule="rehearsal-object-created", Ids=["queue"])
            events.delete_rule(Name="rehearsal-object-created")
            sqs.delete_queue(QueueUrl=queue)
        if not received:
            return f"an upload to s3://{bucket}/models/ sent no EventBridge event (the model_rollout trigger)"
        return None

    def log_group() -> str | None:
        group = names.get("log-group-name", "")
        found = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
        if not any(g["logGroupName"] == group for g in found):
            return f"log group {group!r} does not exist"
        used = container.get("logConfiguration", {}).get("options", {}).get("awslogs-group")
        return (
            None if used == group else f"the container logs to {used!r}, SAM's deploy_watch reads {group!r}"
        )

    def task_role() -> str | None:
        pattern = sam.get("TaskRoleNamePattern", "")
        role = str(definition.get("taskRoleArn", "")).rsplit("/", 1)[-1]
        ok = fnmatch.fnmatchcase(role, pattern)
        return None if ok else f"task role {role!r} does not match SAM's TaskRoleNamePattern {pattern!r}"

    def tokens_secret() -> str | None:
        entries = {s["name"]: s["valueFrom"] for s in container.get("secrets", [])}
        if "AUTH_TOKENS" not in entries:
            return "the container reads no AUTH_TOKENS secret (make rotate-tokens rolls it)"
        secrets.describe_secret(SecretId=entries["AUTH_TOKENS"].split(":::", 1)[0])
        environment = {e["name"]: e["value"] for e in container.get("environment", [])}
        return None if environment.get("REQUIRE_AUTH") == "true" else "REQUIRE_AUTH is not 'true'"

    for name, body in (
        ("task family", family),
        ("container name", container_name),
        ("container ports", ports),
        ("load balancer wiring", load_balancer),
        ("ecr repository and image", image),
        ("models bucket", models_bucket),
        ("models upload reaches EventBridge", upload_reaches_eventbridge),
        ("service log group", log_group),
        ("task role name", task_role),
        ("client-tokens secret", tokens_secret),
    ):
        check(name, body)
    return problems, ran
