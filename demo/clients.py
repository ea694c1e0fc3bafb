"""boto3 clients for one endpoint: moto's in the demo, real AWS when no endpoint is given."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import boto3


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
