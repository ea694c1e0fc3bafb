"""One description of the AWS resources the Terraform + SAM stacks create, for the demo and the tests.

The names follow the stacks' conventions (``local.name = "<project>-<env>"``, SSM parameters under
``/<project>/<env>/...``, container ``asr-server`` on ports 8765/8080). Two resources exist only
here, and say so: an SQS queue standing in for the ``model_rollout`` Lambda as the EventBridge
rule's target (moto delivers rule matches to SQS, and the demo then invokes the real handler with
each delivered event), and an SQS queue subscribed to the SNS topic so the demo can read alerts back.
``demo.provision`` creates them; ``demo.clients`` is how it reaches the endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
        "WORKERS": "2",  # workers_per_task's default for task_cpu 2048: one per vCPU
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
