"""ops: `python -m ops.upload_model` and the manual promote/rollback that reuse the rollout code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ops import rollout as ops_rollout
from ops import upload_model as ops_upload
from tests.functions.helpers import (
    BUCKET,
    CLUSTER,
    CONTAINER,
    SERVICE,
    TABLE,
    FakeContext,
    Platform,
    object_created,
)

NAMES = ["--cluster", CLUSTER, "--service", SERVICE, "--bucket", BUCKET]


def checkpoint(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def pinned(platform: Platform) -> str:
    ecs = platform.clients.ecs
    arn = ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]["taskDefinition"]
    definition = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
    container = next(c for c in definition["containerDefinitions"] if c["name"] == CONTAINER)
    return {e["name"]: e["value"] for e in container["environment"]}["MODEL_URI"]


def upload(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, name: str = "asr.pt"
) -> dict[str, Any]:
    capsys.readouterr()  # drop what handlers logged before
    assert ops_upload.main([str(checkpoint(tmp_path, name, content)), "--bucket", BUCKET]) == 0
    return dict(json.loads(capsys.readouterr().out))


def test_upload_model_stores_sha256_metadata_and_returns_the_version(
    platform: Platform, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uploaded = upload(tmp_path, capsys, b"weights" * 500)
    head = platform.clients.s3.head_object(
        Bucket=BUCKET, Key="models/asr.pt", VersionId=uploaded["version_id"]
    )
    assert head["Metadata"]["sha256"] == uploaded["sha256"] == ops_upload.sha256_of(tmp_path / "asr.pt")
    assert uploaded["size"] == 3500 and uploaded["key"] == "models/asr.pt"


def test_upload_model_resolves_the_bucket_from_ssm(
    platform: Platform, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    platform.clients.ssm.put_parameter(Name="/ezspeech/dev/models-bucket", Value=BUCKET, Type="String")
    path = checkpoint(tmp_path, "asr.ckpt", b"x" * 2048)
    assert ops_upload.main([str(path), "--env", "dev", "--key", "models/v3/asr.ckpt"]) == 0
    assert json.loads(capsys.readouterr().out)["key"] == "models/v3/asr.ckpt"


def test_upload_model_refuses_unversioned_buckets_and_bad_keys(
    platform: Platform, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    platform.clients.s3.create_bucket(Bucket="plain-bucket")
    path = checkpoint(tmp_path, "asr.pt", b"x" * 2048)
    assert ops_upload.main([str(path), "--bucket", "plain-bucket"]) == 1
    assert "versioning" in capsys.readouterr().err
    assert ops_upload.main([str(path), "--bucket", BUCKET, "--key", "models/my model.pt"]) == 1
    assert "A-Z a-z 0-9" in capsys.readouterr().err
    assert ops_upload.main([str(path), "--bucket", BUCKET, "--key", "models/asr.bin"]) == 1


def test_promote_and_rollback_reuse_the_rollout_code(
    platform: Platform, load_handler: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {
        "CLUSTER_NAME": CLUSTER,
        "SERVICE_NAME": SERVICE,
        "CONTAINER_NAME": CONTAINER,
        "MODEL_KEY_PREFIX": "models/",
        "NOTIFY_TOPIC_ARN": platform.topic_arn,
        "IDEMPOTENCY_TABLE": TABLE,
    }
    app = load_handler("model_rollout", env, platform.clients)
    v1 = upload(tmp_path, capsys, b"one" * 1000)
    app.lambda_handler(object_created("models/asr.pt", v1["version_id"], "0001"), FakeContext())
    v2 = upload(tmp_path, capsys, b"two" * 1000)
    app.lambda_handler(object_created("models/asr.pt", v2["version_id"], "0002"), FakeContext())
    assert pinned(platform).endswith(v2["version_id"])

    capsys.readouterr()
    assert ops_rollout.main(["rollback", *NAMES]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["status"], result["source"], result["version_id"]) == (
        "started",
        "rollback",
        v1["version_id"],
    )
    assert pinned(platform).endswith(v1["version_id"])

    # A late redelivery of v2's event (after the idempotency record expired) must not undo it.
    platform.clients.dynamodb.delete_table(TableName=TABLE)
    platform.clients.dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    late = app.lambda_handler(object_created("models/asr.pt", v2["version_id"], "0002"), FakeContext())
    assert (late["status"], late["reason"]) == ("skipped", "older_than_deployed")
    assert pinned(platform).endswith(v1["version_id"])

    capsys.readouterr()
    assert ops_rollout.main(["promote", "--key", "models/asr.pt", *NAMES]) == 0  # latest = v2
    assert json.loads(capsys.readouterr().out)["version_id"] == v2["version_id"]
    assert pinned(platform).endswith(v2["version_id"])

    assert ops_rollout.main(["status", *NAMES]) == 0
    assert json.loads(capsys.readouterr().out)["model_uri"].endswith(v2["version_id"])


def test_rollback_with_no_earlier_model_says_what_to_do(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ops_rollout.main(["rollback", *NAMES]) == 1
    assert "--version-id" in capsys.readouterr().err
