"""Manual rollout: promote a given model version, or roll back to the previous one.

    python -m ops.rollout status   [--env dev]
    python -m ops.rollout promote  --key models/asr.pt [--version-id V] [--env dev]
    python -m ops.rollout rollback [--key K --version-id V] [--env dev]

Both actions run ``ezspeech_common.rollout.roll_out_model`` — the code the model_rollout Lambda
runs — with ``source="promote"``/``"rollback"``: a new task-definition revision pinning the
chosen version, then UpdateService. They skip the event-ordering check on purpose (the operator
decides) and keep its watermark, so a late event for an older upload cannot undo the choice.
``rollback`` without a version walks the service's revision history back to the last revision
that pinned a different model and rolls that model out again.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from ezspeech_common.aws import RETRY_CONFIG
from ezspeech_common.ecs import (
    ModelPin,
    describe_service,
    describe_task_definition,
    model_pin,
    plain_environment,
)
from ezspeech_common.errors import AutomationError, RollbackTargetError
from ezspeech_common.rollout import ModelRef, RolloutResult, RolloutSettings, roll_out_model

from ops.names import MissingNameError, add_name_flags, resolve_names

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_s3 import S3Client

#: How far back ``rollback`` looks for a different model.
HISTORY_DEPTH = 50


def latest_version(s3: S3Client, bucket: str, key: str) -> str:
    """The current version id of ``key`` (what ``promote`` rolls out when no version is given)."""
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key)
    for page in pages:
        for version in page.get("Versions", []):
            if version["Key"] == key and version.get("IsLatest"):
                return str(version["VersionId"])
    raise RollbackTargetError(f"s3://{bucket}/{key} has no current version")


def current_model(ecs: ECSClient, settings: RolloutSettings) -> tuple[dict[str, Any], ModelPin | None]:
    service = describe_service(ecs, settings.cluster, settings.service)
    definition, _ = describe_task_definition(ecs, str(service["taskDefinition"]))
    return definition, model_pin(definition, settings.container_name)


def previous_model(ecs: ECSClient, settings: RolloutSettings) -> ModelPin:
    """The newest earlier revision of the service's family whose pinned model differs from now."""
    definition, now = current_model(ecs, settings)
    pages = ecs.get_paginator("list_task_definitions").paginate(
        familyPrefix=str(definition["family"]), sort="DESC", status="ACTIVE"
    )
    seen = 0
    for page in pages:
        for arn in page.get("taskDefinitionArns", []):
            seen += 1
            if seen > HISTORY_DEPTH:
                break
            older, _ = describe_task_definition(ecs, arn)
            if (
                int(older["revision"]) >= int(definition["revision"])
                or older["family"] != definition["family"]
            ):
                continue
            pin = model_pin(older, settings.container_name)
            if pin is not None and pin.uri.startswith("s3://") and (now is None or pin.uri != now.uri):
                return pin
    raise RollbackTargetError(
        f"no earlier revision of {definition['family']} pins another model; give --key and --version-id"
    )


def promote(
    s3: S3Client, ecs: ECSClient, settings: RolloutSettings, bucket: str, key: str, version_id: str | None
) -> RolloutResult:
    version = version_id or latest_version(s3, bucket, key)
    return roll_out_model(s3, ecs, settings, ModelRef(bucket, key, version), source="promote")


def rollback(
    s3: S3Client,
    ecs: ECSClient,
    settings: RolloutSettings,
    bucket: str,
    key: str | None = None,
    version_id: str | None = None,
) -> RolloutResult:
    if version_id:
        if not key:
            _, now = current_model(ecs, settings)
            if now is None:
                raise RollbackTargetError("the service pins no model; give --key with --version-id")
            key = now.key
        target = ModelRef(bucket, key, version_id)
    else:
        pin = previous_model(ecs, settings)
        location = pin.uri.removeprefix("s3://").split("?", 1)[0]
        target = ModelRef(location.split("/", 1)[0], pin.key, pin.version_id)
    return roll_out_model(s3, ecs, settings, target, source="rollback")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.rollout", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["status", "promote", "rollback"])
    parser.add_argument("--key", help="model key (promote: required)")
    parser.add_argument("--version-id", help="S3 version id (promote: default latest)")
    parser.add_argument("--container", default="asr-server", help="model container name")
    add_name_flags(parser)
    args = parser.parse_args(argv)
    try:
        s3 = boto3.client("s3", config=RETRY_CONFIG)
        ecs = boto3.client("ecs", config=RETRY_CONFIG)
        names = resolve_names(boto3.client("ssm", config=RETRY_CONFIG), args)
        settings = RolloutSettings(
            cluster=names.cluster, service=names.service, container_name=args.container
        )
        if args.action == "status":
            definition, pin = current_model(ecs, settings)
            env = plain_environment(definition, settings.container_name)
            print(
                json.dumps(
                    {
                        "task_definition": definition["taskDefinitionArn"],
                        "model_uri": pin.uri if pin else None,
                        # The golden-set gate the service's tasks must pass (None: the gate is off).
                        "golden_set": env.get("GOLDEN_SET") or None,
                        "golden_max_wer": env.get("GOLDEN_MAX_WER") or None,
                    }
                )
            )
            return 0
        if args.action == "promote":
            if not args.key:
                parser.error("promote needs --key")
            result = promote(s3, ecs, settings, names.bucket, args.key, args.version_id)
        else:
            result = rollback(s3, ecs, settings, names.bucket, args.key, args.version_id)
    except (AutomationError, MissingNameError, BotoCoreError, ClientError) as error:
        print(f"{args.action}: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result.as_dict(), indent=2))
    return 0 if result.status == "started" or result.reason == "already_deployed" else 1


if __name__ == "__main__":
    sys.exit(main())
