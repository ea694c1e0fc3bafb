"""boto3 clients with one retry policy, created once per process and only when first used.

Throttling is normal for the control-plane APIs the automation calls (ECS RegisterTaskDefinition
and UpdateService, Application Auto Scaling): every client retries with botocore's *adaptive*
mode — exponential backoff with jitter plus client-side rate limiting after a throttle — up to
``MAX_ATTEMPTS`` attempts, so a burst of throttles delays a rollout instead of failing it.

Clients are created lazily: a cold start pays for the JSON service models a handler actually
uses (a ``models/`` key with the wrong suffix never loads the ECS model). Endpoints come from
botocore's usual settings, so ``AWS_ENDPOINT_URL`` points every client at moto.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_application_autoscaling import ApplicationAutoScalingClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_ssm import SSMClient

MAX_ATTEMPTS = 8
RETRY_CONFIG = Config(
    retries={"mode": "adaptive", "max_attempts": MAX_ATTEMPTS},
    connect_timeout=5,
    read_timeout=30,
)


class AwsClients:
    """The clients a function uses, each built on first access and then reused.

    Tests and the demo pass ready-made clients (moto, botocore Stubber) as keyword arguments;
    those are used as they are.
    """

    def __init__(self, session: boto3.session.Session | None = None, **clients: Any) -> None:
        self._session = session
        unknown = set(clients) - _CLIENT_ATTRIBUTES
        if unknown:
            raise TypeError(f"unknown client names: {sorted(unknown)}")
        # cached_property reads the instance dict first, so an injected client wins.
        self.__dict__.update(clients)

    def _client(self, service_name: str) -> Any:
        session = self._session or boto3.session.Session()
        self._session = session
        return session.client(service_name, config=RETRY_CONFIG)  # type: ignore[call-overload]

    @cached_property
    def s3(self) -> S3Client:
        return self._client("s3")

    @cached_property
    def ecs(self) -> ECSClient:
        return self._client("ecs")

    @cached_property
    def sns(self) -> SNSClient:
        return self._client("sns")

    @cached_property
    def ssm(self) -> SSMClient:
        return self._client("ssm")

    @cached_property
    def ecr(self) -> ECRClient:
        return self._client("ecr")

    @cached_property
    def dynamodb(self) -> DynamoDBClient:
        return self._client("dynamodb")

    @cached_property
    def autoscaling(self) -> ApplicationAutoScalingClient:
        return self._client("application-autoscaling")

    @cached_property
    def logs(self) -> Any:  # CloudWatch Logs (no boto3-stubs extra installed for it)
        return self._client("logs")


_CLIENT_ATTRIBUTES = {"s3", "ecs", "sns", "ssm", "ecr", "dynamodb", "autoscaling", "logs"}
