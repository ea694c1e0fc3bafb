"""Upload a model checkpoint to the models bucket with its SHA-256 as object metadata ``sha256``.

    python -m ops.upload_model PATH [--bucket NAME | --env dev] [--key models/NAME.pt]

Prints one JSON line: bucket, key, version_id, sha256, size. The bucket must have versioning
(the rollout pins the version). S3 also verifies the bytes it stores against the SHA-256
(``ChecksumSHA256``), so a corrupted transfer fails here rather than at task start.
Honours ``AWS_ENDPOINT_URL`` (boto3 does), so it works against moto too.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from ezspeech_common.aws import RETRY_CONFIG
from ezspeech_common.errors import AutomationError, VersioningRequiredError
from ezspeech_common.rollout import MODEL_SUFFIXES, check_model_key

from ops.names import MissingNameError, from_ssm

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_SINGLE_PUT_LIMIT = 5 * 1024**3


@dataclass(frozen=True)
class Uploaded:
    bucket: str
    key: str
    version_id: str
    sha256: str
    size: int


def sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def upload_model(s3: S3Client, path: Path, bucket: str, key: str) -> Uploaded:
    """Upload ``path`` to ``s3://bucket/key`` with ``sha256`` metadata; returns the new version."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not a file")
    size = path.stat().st_size
    if size == 0 or size > _SINGLE_PUT_LIMIT:
        raise ValueError(f"{path} is {size} bytes; a checkpoint must be 1 byte .. 5 GiB")
    check_model_key(key)
    if not key.lower().endswith(MODEL_SUFFIXES):
        raise ValueError(f"key {key!r} must end in one of {MODEL_SUFFIXES} for the rollout to pick it up")
    status = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    if status != "Enabled":
        raise VersioningRequiredError(
            f"bucket {bucket} has versioning {status or 'not enabled'}; the rollout pins object versions"
        )
    digest = sha256_of(path)
    with path.open("rb") as body:
        response = s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            Metadata={"sha256": digest},
            ChecksumSHA256=base64.b64encode(bytes.fromhex(digest)).decode(),
        )
    version = response.get("VersionId")
    if not version:
        raise VersioningRequiredError(f"S3 returned no version id for s3://{bucket}/{key}")
    return Uploaded(bucket, key, version, digest, size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.upload_model", description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, help="checkpoint file")
    parser.add_argument("--bucket", help="models bucket (default: SSM /ezspeech/<env>/models-bucket)")
    parser.add_argument(
        "--env", default="dev", help="environment whose bucket to use when --bucket is not given"
    )
    parser.add_argument("--key", help="object key (default: models/<file name>)")
    parser.add_argument("--prefix", default="models/", help="key prefix when --key is not given")
    args = parser.parse_args(argv)
    try:
        bucket = args.bucket or from_ssm(boto3.client("ssm", config=RETRY_CONFIG), args.env, "models-bucket")
        key = args.key or f"{args.prefix}{args.path.name}"
        uploaded = upload_model(boto3.client("s3", config=RETRY_CONFIG), args.path, bucket, key)
    except (AutomationError, MissingNameError, OSError, ValueError, BotoCoreError, ClientError) as error:
        print(f"upload-model: {error}", file=sys.stderr)
        return 1
    print(json.dumps(asdict(uploaded)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
