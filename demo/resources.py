"""One description of the AWS resources the Terraform + SAM stacks create, for the demo and the tests.

The names follow the stacks' conventions (``local.name = "<project>-<env>"``, SSM parameters under
``/<project>/<env>/...``, container ``asr-server`` on ports 8765/8080). Two resources exist only
here, and say so: an SQS queue standing in for the ``model_rollout`` Lambda as the EventBridge
rule's target (moto delivers rule matches to SQS, and the demo then invokes the real handler with
each delivered event), and an SQS queue subscribed to the SNS topic so the demo can read alerts back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import boto3

CONTAINER_NAME = "asr-server"
SERVER_PORT = 8765
HEALTH_PORT = 8080
MODEL_KEY_PREFIX = "models/"
#: Checkpoint suffixes the rollout rule matches (template.yaml, ModelUploaded pattern).
MODEL_SUFFIXES = (".pt", ".pth", ".ckpt")
ECS_DESIRED_DIMENSION = "ecs:service:DesiredCount"
#: Terraform's min_capacity / max_capacity defaults: the daytime scalable-target bounds.
DAY_MIN_CAPACITY = 1
DAY_MAX_CAPACITY = 4
#: template.yaml's DefaultMin/MaxCapacity: what night_scaler restores when nothing was saved.
SAM_DEFAULT_MIN_CAPACITY = 1
SAM_DEFAULT_MAX_CAPACITY = 2


@dataclass(frozen=True)
class StackNames:
    """Every name the parts must agree on, derived from project + environment like Terraform does."""

    project: str = "ezspeech"
    #: The rehearsal is of a dev deployment: the same names `make tf-apply ENV=dev` and
    #: `make sam-deploy ENV=dev` create, so the ops tools' defaults (``--env dev``) apply as is.
    environment: str = "dev"
    region: str = "us-east-1"
    account_id: str = "123456789012"  # moto's default account

    @property
    def name(self) -> str:
        return f"{self.project}-{self.environment}"

    @property
    def models_bucket(self) -> str:
        return f"{self.name}-models-{self.account_id}"

    @property
    def cluster(self) -> str:
        return self.name

    @property
    def service(self) -> str:
        return f"{self.name}-asr"

    @property
    def task_family(self) -> str:
        return f"{self.name}-asr"

    @property
    def ecr_repository(self) -> str:
        return f"{self.name}/asr-server"

    @property
    def automation_stack(self) -> str:
        """samconfig.toml's stack_name; SAM names its resources after it."""
        return f"{self.project}-automation-{self.environment}"

    @property
    def notify_topic(self) -> str:
        """Rollouts and deployments (model_rollout, deploy_watch)."""
        return f"{self.automation_stack}-notifications"

    @property
    def alert_topic(self) -> str:
        """Security and automation alerts (scan_alert)."""
        return f"{self.automation_stack}-alerts"

    @property
    def idempotency_table(self) -> str:
        return f"{self.automation_stack}-idempotency"

    @property
    def model_uploaded_rule(self) -> str:
        return f"{self.name}-model-uploaded"

    @property
    def model_events_queue(self) -> str:
        """Demo only: the rule's target in place of the model_rollout Lambda."""
        return f"{self.name}-model-events"

    @property
    def alerts_inbox_queue(self) -> str:
        """Demo only: subscribed to the SNS topic so alerts can be read back."""
        return f"{self.name}-alerts-inbox"

    @property
    def client_tokens_secret(self) -> str:
        """terraform/secrets.tf: the Secrets Manager secret ECS injects as AUTH_TOKENS."""
        return f"{self.name}/client-tokens"

    @property
    def capacity_parameter(self) -> str:
        """SAM's CapacityParameter: night_scaler keeps the day capacity here."""
        return f"/{self.project}/{self.environment}/night-scaler/saved-capacity"

    @property
    def log_group(self) -> str:
        """terraform/monitoring.tf's log group of the asr-server container (awslogs)."""
        return f"/ecs/{self.name}/asr-server"

    @property
    def scalable_resource_id(self) -> str:
        return f"service/{self.cluster}/{self.service}"

    def ssm_parameter(self, suffix: str) -> str:
        return f"/{self.project}/{self.environment}/{suffix}"

    @property
    def ecr_repository_url(self) -> str:
        return f"{self.account_id}.dkr.ecr.{self.region}.amazonaws.com/{self.ecr_repository}"

    def published_parameters(self) -> dict[str, str]:
        """The SSM parameters terraform/ssm.tf publishes for SAM (and the Makefile) to read."""
        values = {
            "cluster-name": self.cluster,
            "service-name": self.service,
            "container-name": CONTAINER_NAME,
            "models-bucket": self.models_bucket,
            "ecr-repository-name": self.ecr_repository,
            "ecr-repository-url": self.ecr_repository_url,
            "alb-dns-name": f"{self.name}-0123456789.{self.region}.elb.amazonaws.com",
            "log-group-name": self.log_group,
            "task-family": self.task_family,
        }
        return {self.ssm_parameter(key): value for key, value in values.items()}


def model_uploaded_pattern(names: StackNames) -> dict[str, Any]:
    """The EventBridge pattern of the model_rollout rule (same as template.yaml's)."""
    return {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {
            "bucket": {"name": [names.models_bucket]},
            "object": {"key": [{"wildcard": f"{MODEL_KEY_PREFIX}*{suffix}"} for suffix in MODEL_SUFFIXES]},
        },
    }


def terraform_environment(
    names: StackNames, model_uri: str, model_sha256: str, golden: dict[str, str] | None = None
) -> list[dict[str, str]]:
    """terraform/ecs.tf's container environment, Fargate CPU flavour (sorted, as Terraform writes it).

    ``golden`` ({GOLDEN_SET, GOLDEN_MAX_WER}) is what ``extra_environment`` in the tfvars adds to
    turn the golden-set gate on for the first revision; rollouts carry it on from there."""
    environment = {
        **(golden or {}),
        "SERVER_HOST": "0.0.0.0",  # noqa: S104 (the container's listen address; the demo overrides it)
        "SERVER_PORT": str(SERVER_PORT),
        "HEALTH_PORT": str(HEALTH_PORT),
        "LOG_LEVEL": "INFO",
        "DEVICE": "cpu",
        "DRAIN_TIMEOUT_S": "90",
        "MAX_SESSIONS": "64",
        "SERVICE_NAME": names.service,
        "MODEL_CACHE_DIR": "/tmp/asr-models",  # noqa: S108 (the container's scratch volume)
        "TMPDIR": "/tmp",  # noqa: S108
        "MODEL_URI": model_uri,
        "MODEL_SHA256": model_sha256,
        "REQUIRE_AUTH": "true",
    }
    return [{"name": key, "value": environment[key]} for key in sorted(environment)]


def task_definition(
    names: StackNames,
    image: str,
    model_uri: str,
    model_sha256: str,
    tokens_secret_arn: str,
    golden: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The first task definition, as Terraform registers it (Fargate CPU flavour)."""
    return {
        "family": names.task_family,
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "2048",
        "memory": "4096",
        "executionRoleArn": f"arn:aws:iam::{names.account_id}:role/{names.name}-task-execution",
        "taskRoleArn": f"arn:aws:iam::{names.account_id}:role/{names.name}-task",
        "containerDefinitions": [
            {
                "name": CONTAINER_NAME,
                "image": image,
                "essential": True,
                "portMappings": [
                    {"containerPort": SERVER_PORT, "protocol": "tcp"},
                    {"containerPort": HEALTH_PORT, "protocol": "tcp"},
                ],
                "environment": terraform_environment(names, model_uri, model_sha256, golden),
                # Not in terraform/ecs.tf (Fargate sizes the task, not the container): moto's RunTask,
                # with which the demo records a stopped task, needs a container-level figure. The
                # soft limit equal to the task's memory changes nothing for the only container.
                "memoryReservation": 4096,
                # Where deploy_watch finds a stopped task's log: <prefix>/<container>/<task id>.
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {
                        "awslogs-group": names.log_group,
                        "awslogs-region": names.region,
                        "awslogs-stream-prefix": "asr",
                    },
                },
                # terraform/ecs.tf: the client tokens come from the secret, never plain environment.
                "secrets": [{"name": "AUTH_TOKENS", "valueFrom": tokens_secret_arn}],
                # SIGTERM, then up to stopTimeout for open streams to get their finals (> DRAIN_TIMEOUT_S).
                "stopTimeout": 120,
            }
        ],
    }


class EndpointClients:
    """boto3 clients for one endpoint (moto here; real AWS when endpoint_url is None)."""

    def __init__(
        self, endpoint_url: str | None, region: str, credentials: dict[str, str] | None = None
    ) -> None:
        credentials = credentials or {}
        self._session = boto3.session.Session(
            region_name=region,
            aws_access_key_id=credentials.get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=credentials.get("AWS_SECRET_ACCESS_KEY"),
            aws_session_token=credentials.get("AWS_SESSION_TOKEN"),
        )
        self._endpoint_url = endpoint_url

    def client(self, service: str) -> Any:
        return self._session.client(service, endpoint_url=self._endpoint_url)  # type: ignore[call-overload]

    @cached_property
    def s3(self) -> Any:
        return self.client("s3")

    @cached_property
    def events(self) -> Any:
        return self.client("events")

    @cached_property
    def sqs(self) -> Any:
        return self.client("sqs")

    @cached_property
    def sns(self) -> Any:
        return self.client("sns")

    @cached_property
    def ecs(self) -> Any:
        return self.client("ecs")

    @cached_property
    def ecr(self) -> Any:
        return self.client("ecr")

    @cached_property
    def ssm(self) -> Any:
        return self.client("ssm")

    @cached_property
    def dynamodb(self) -> Any:
        return self.client("dynamodb")

    @cached_property
    def ec2(self) -> Any:
        return self.client("ec2")

    @cached_property
    def logs(self) -> Any:
        return self.client("logs")

    @cached_property
    def secretsmanager(self) -> Any:
        return self.client("secretsmanager")

    @cached_property
    def autoscaling(self) -> Any:
        return self.client("application-autoscaling")


@dataclass
class Stack:
    """What the create_* functions made: the addresses later steps need."""

    names: StackNames
    model_events_queue_url: str = ""
    alerts_inbox_queue_url: str = ""
    notify_topic_arn: str = ""
    alert_topic_arn: str = ""
    ecr_repository_uri: str = ""
    first_task_definition_arn: str = ""
    client_tokens_secret_arn: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def lambda_environment(self, function: str) -> dict[str, str]:
        """The env vars SAM gives each function (DESIGN.md, Lambda contracts)."""
        names = self.names
        per_function = {
            "model_rollout": {
                "CLUSTER_NAME": names.cluster,
                "SERVICE_NAME": names.service,
                "CONTAINER_NAME": CONTAINER_NAME,
                "MODEL_KEY_PREFIX": MODEL_KEY_PREFIX,
                "NOTIFY_TOPIC_ARN": self.notify_topic_arn,
                "IDEMPOTENCY_TABLE": names.idempotency_table,
                "MIN_MODEL_BYTES": "1024",
                "MAX_MODEL_BYTES": "5368709120",
            },
            "scan_alert": {
                "ALERT_TOPIC_ARN": self.alert_topic_arn,
                "SEVERITY_THRESHOLD": "HIGH",
                "IDEMPOTENCY_TABLE": names.idempotency_table,
                "CLUSTER_NAME": names.cluster,
                "SERVICE_NAME": names.service,
            },
            "night_scaler": {
                "CLUSTER_NAME": names.cluster,
                "SERVICE_NAME": names.service,
                "CAPACITY_PARAMETER": names.capacity_parameter,
                "NIGHT_MIN_CAPACITY": "0",
                "NIGHT_MAX_CAPACITY": "0",
                "DEFAULT_MIN_CAPACITY": str(SAM_DEFAULT_MIN_CAPACITY),
                "DEFAULT_MAX_CAPACITY": str(SAM_DEFAULT_MAX_CAPACITY),
            },
            "deploy_watch": {
                "NOTIFY_TOPIC_ARN": self.notify_topic_arn,
                "IDEMPOTENCY_TABLE": names.idempotency_table,
                "CONTAINER_NAME": CONTAINER_NAME,
            },
        }
        powertools = {
            "POWERTOOLS_SERVICE_NAME": function,
            "POWERTOOLS_METRICS_NAMESPACE": "EzSpeech/Automation",
            # No X-Ray daemon here; in AWS, SAM's Globals turn tracing on.
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        try:
            return {**per_function[function], **powertools}
        except KeyError:
            raise KeyError(f"unknown function {function!r} (known: {', '.join(per_function)})") from None


def _queue_arn(aws: EndpointClients, queue_url: str) -> str:
    attributes = aws.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    return str(attributes["Attributes"]["QueueArn"])


def create_models_bucket(aws: EndpointClients, names: StackNames) -> Stack:
    """Terraform's models bucket: versioned (every upload keeps its version), EventBridge notifications on."""
    aws.s3.create_bucket(Bucket=names.models_bucket)
    aws.s3.put_bucket_versioning(Bucket=names.models_bucket, VersioningConfiguration={"Status": "Enabled"})
    aws.s3.put_bucket_notification_configuration(
        Bucket=names.models_bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    return Stack(names=names)


def publish_names(aws: EndpointClients, names: StackNames) -> None:
    """terraform/ssm.tf: the names SAM, `make upload-model` and the ops tools read from SSM."""
    for parameter, value in names.published_parameters().items():
        aws.ssm.put_parameter(Name=parameter, Value=value, Type="String", Overwrite=True)


def create_model_uploaded_rule(aws: EndpointClients, stack: Stack) -> None:
    """SAM's rule for uploads under models/; its target here is an SQS queue (see module docstring)."""
    names = stack.names
    stack.model_events_queue_url = aws.sqs.create_queue(QueueName=names.model_events_queue)["QueueUrl"]
    aws.events.put_rule(
        Name=names.model_uploaded_rule,
        EventPattern=json.dumps(model_uploaded_pattern(names)),
        State="ENABLED",
    )
    aws.events.put_targets(
        Rule=names.model_uploaded_rule,
        Targets=[{"Id": "model-rollout", "Arn": _queue_arn(aws, stack.model_events_queue_url)}],
    )


def create_automation_backing(aws: EndpointClients, stack: Stack) -> None:
    """What template.yaml creates beside the functions: two SNS topics, the idempotency table and
    night_scaler's parameter (+ the demo's inbox queue, subscribed to both topics)."""
    names = stack.names
    stack.notify_topic_arn = aws.sns.create_topic(Name=names.notify_topic)["TopicArn"]
    stack.alert_topic_arn = aws.sns.create_topic(Name=names.alert_topic)["TopicArn"]
    stack.alerts_inbox_queue_url = aws.sqs.create_queue(QueueName=names.alerts_inbox_queue)["QueueUrl"]
    inbox_arn = _queue_arn(aws, stack.alerts_inbox_queue_url)
    for topic_arn in (stack.notify_topic_arn, stack.alert_topic_arn):
        # Not raw delivery: the SNS envelope keeps the subject, which the demo prints.
        aws.sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=inbox_arn)
    aws.dynamodb.create_table(
        TableName=names.idempotency_table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    aws.ssm.put_parameter(
        Name=names.capacity_parameter, Value='{"state": "unset"}', Type="String", Overwrite=True
    )


def create_client_tokens_secret(aws: EndpointClients, stack: Stack) -> str:
    """terraform/secrets.tf: the client-tokens secret, created without a value (Terraform never
    writes one; `make rotate-tokens` does)."""
    arn = str(aws.secretsmanager.create_secret(Name=stack.names.client_tokens_secret)["ARN"])
    stack.client_tokens_secret_arn = arn
    return arn


def create_service(
    aws: EndpointClients,
    stack: Stack,
    model_uri: str,
    model_sha256: str,
    desired_count: int = 1,
    golden: dict[str, str] | None = None,
) -> None:
    """ECR repository, ECS cluster + first task definition + service, scalable target, log group."""
    names = stack.names
    aws.logs.create_log_group(logGroupName=names.log_group)
    # terraform/network.tf (DNS hostnames on, as there): the subnet where awsvpc tasks get an ENI.
    vpc = aws.ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    aws.ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = aws.ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]
    stack.extra["task_subnet"] = subnet["SubnetId"]
    stack.extra["task_security_group"] = aws.ec2.create_security_group(
        GroupName=f"{names.name}-tasks", Description="asr-server tasks", VpcId=vpc
    )["GroupId"]
    repository = aws.ecr.create_repository(
        repositoryName=names.ecr_repository,
        imageScanningConfiguration={"scanOnPush": True},
        imageTagMutability="IMMUTABLE",
    )["repository"]
    stack.ecr_repository_uri = repository["repositoryUri"]
    aws.ecs.create_cluster(clusterName=names.cluster)
    secret_arn = stack.client_tokens_secret_arn or create_client_tokens_secret(aws, stack)
    registered = aws.ecs.register_task_definition(
        **task_definition(
            names, f"{stack.ecr_repository_uri}:v1", model_uri, model_sha256, secret_arn, golden
        )
    )
    stack.first_task_definition_arn = registered["taskDefinition"]["taskDefinitionArn"]
    aws.ecs.create_service(
        cluster=names.cluster,
        serviceName=names.service,
        taskDefinition=stack.first_task_definition_arn,
        desiredCount=desired_count,
        launchType="FARGATE",
        deploymentConfiguration={
            "deploymentCircuitBreaker": {"enable": True, "rollback": True},
            "minimumHealthyPercent": 100,
            "maximumPercent": 200,
        },
    )
    aws.autoscaling.register_scalable_target(
        ServiceNamespace="ecs",
        ResourceId=names.scalable_resource_id,
        ScalableDimension=ECS_DESIRED_DIMENSION,
        MinCapacity=DAY_MIN_CAPACITY,
        MaxCapacity=DAY_MAX_CAPACITY,
    )
