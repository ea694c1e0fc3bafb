"""Names of the deployed resources, from flags or from the SSM parameters Terraform writes."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient


class MissingNameError(Exception):
    """A name is neither given as a flag nor found in SSM."""


def ssm_name(env: str, what: str) -> str:
    """``/ezspeech/<env>/<what>`` — the parameters Terraform publishes (terraform/ssm.tf)."""
    return f"/ezspeech/{env}/{what}"


def from_ssm(ssm: SSMClient, env: str, what: str) -> str:
    name = ssm_name(env, what)
    try:
        return str(ssm.get_parameter(Name=name)["Parameter"]["Value"])
    except ssm.exceptions.ParameterNotFound:
        raise MissingNameError(
            f"SSM parameter {name} not found: has Terraform been applied for {env!r}?"
        ) from None


@dataclass(frozen=True)
class ServiceNames:
    cluster: str
    service: str
    bucket: str


def add_name_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", default="dev", help="read unset names from /ezspeech/<env>/... in SSM")
    parser.add_argument("--cluster", help="ECS cluster (default: SSM cluster-name)")
    parser.add_argument("--service", help="ECS service (default: SSM service-name)")
    parser.add_argument("--bucket", help="models bucket (default: SSM models-bucket)")


def resolve_names(ssm: SSMClient, args: argparse.Namespace) -> ServiceNames:
    return ServiceNames(
        cluster=args.cluster or from_ssm(ssm, args.env, "cluster-name"),
        service=args.service or from_ssm(ssm, args.env, "service-name"),
        bucket=args.bucket or from_ssm(ssm, args.env, "models-bucket"),
    )
