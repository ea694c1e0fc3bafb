"""MODEL_URI from S3 (moto, pinned versionId), local paths, and SHA-256 verification."""

from __future__ import annotations

import hashlib

import boto3
import pytest
from moto import mock_aws

from asr_service.model_fetch import ModelSourceError, parse_s3_uri, resolve_model


def test_parse_s3_uri_with_and_without_version():
    assert parse_s3_uri("s3://models/demo/v1.pt?versionId=abc").version_id == "abc"
    location = parse_s3_uri("s3://models/a/b.pt")
    assert (location.bucket, location.key, location.version_id) == ("models", "a/b.pt", None)
    for bad in ("s3://bucket", "http://x/y", "s3://bucket/key?other=1"):
        with pytest.raises(ModelSourceError):
            parse_s3_uri(bad)


@mock_aws
def test_s3_model_is_downloaded_at_the_pinned_version_and_verified(tmp_path):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="models")
    s3.put_bucket_versioning(Bucket="models", VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket="models", Key="models/demo.pt", Body=b"version one")["VersionId"]
    s3.put_object(Bucket="models", Key="models/demo.pt", Body=b"version two")
    digest = hashlib.sha256(b"version one").hexdigest()

    resolved = resolve_model(f"s3://models/models/demo.pt?versionId={first}", None, digest, str(tmp_path))
    assert resolved.path.read_bytes() == b"version one"
    assert resolved.sha256 == digest and resolved.path.parent == tmp_path

    latest = resolve_model("s3://models/models/demo.pt", None, None, str(tmp_path / "latest"))
    assert latest.path.read_bytes() == b"version two"


@mock_aws
def test_s3_bytes_that_do_not_match_the_pinned_sha256_are_refused(tmp_path):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="models")
    s3.put_object(Bucket="models", Key="m.pt", Body=b"tampered")
    with pytest.raises(ModelSourceError, match="expected"):
        resolve_model("s3://models/m.pt", None, "ab" * 32, str(tmp_path))


@mock_aws
def test_missing_s3_object_is_a_clear_error(tmp_path):
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="models")
    with pytest.raises(ModelSourceError, match=r"cannot download s3://models/nope\.pt"):
        resolve_model("s3://models/nope.pt", None, None, str(tmp_path))


def test_local_path_model_uri_wins_over_model_path(tmp_path):
    chosen, other = tmp_path / "chosen.pt", tmp_path / "other.pt"
    chosen.write_bytes(b"a")
    other.write_bytes(b"b")
    resolved = resolve_model(str(chosen), str(other), hashlib.sha256(b"a").hexdigest(), str(tmp_path))
    assert resolved.path == chosen
    assert resolve_model(None, str(other), None, str(tmp_path)).path == other


def test_missing_local_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelSourceError, match="model file not found"):
        resolve_model(None, str(tmp_path / "absent.pt"), None, str(tmp_path))


def test_nothing_configured_means_the_shipped_demo_model(tmp_path):
    from asr_service.model.checkpoint import DEFAULT_MODEL_PATH

    if not DEFAULT_MODEL_PATH.is_file():
        pytest.skip("the demo checkpoint is not in this checkout yet")
    assert resolve_model(None, None, None, str(tmp_path)).path == DEFAULT_MODEL_PATH
