"""Upload a model checkpoint to the models bucket with its SHA-256 as object metadata ``sha256``.

    python -m ops.upload_model PATH [--bucket NAME | --env dev] [--key models/NAME.pt]

Prints one JSON line on stdout: bucket, key, version_id, sha256, size. The bucket must have
versioning (the rollout pins the version). S3 also verifies the bytes it stores against SHA-256
checksums (``ChecksumSHA256``: of the whole file for a single PUT, of each part for a multipart
upload), so a corrupted transfer fails here rather than at task start.

Files larger than one part (``--part-size-mib``, 16 by default) go up as a multipart upload; an
upload that fails is aborted so no orphaned parts are billed. Hashing and uploading show a
progress bar (bytes, rate, time left) on a terminal, and a start and an end line on stderr when
stderr is not a terminal (CI logs).
Honours ``AWS_ENDPOINT_URL`` (boto3 does), so it works against moto too.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import itertools
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from ezspeech_common.aws import RETRY_CONFIG
from ezspeech_common.errors import AutomationError, VersioningRequiredError
from ezspeech_common.rollout import MODEL_SUFFIXES, check_model_key

from ops.names import MissingNameError, from_ssm
from ops.progress import Progress, progress

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

_SINGLE_PUT_LIMIT = 5 * 1024**3
MIN_PART_SIZE = 5 * 1024**2  # S3's minimum for every part but the last
DEFAULT_PART_SIZE = 16 * 1024**2  # 320 parts at the 5 GiB limit, well under S3's 10,000
_HASH_BLOCK = 4 * 1024**2


@dataclass(frozen=True)
class Uploaded:
    bucket: str
    key: str
    version_id: str
    sha256: str
    size: int


def sha256_of(path: Path, report: Progress | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
            if report is not None:
                report.update(len(block))
    return digest.hexdigest()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def upload_model(
    s3: S3Client,
    path: Path,
    bucket: str,
    key: str,
    *,
    part_size: int = DEFAULT_PART_SIZE,
    stream: TextIO | None = None,
) -> Uploaded:
    """Upload ``path`` to ``s3://bucket/key`` with ``sha256`` metadata; returns the new version.

    Progress goes to ``stream`` (default stderr).
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not a file")
    size = path.stat().st_size
    if size == 0 or size > _SINGLE_PUT_LIMIT:
        raise ValueError(f"{path} is {size} bytes; a checkpoint must be 1 byte .. 5 GiB")
    if part_size < MIN_PART_SIZE:
        raise ValueError(f"part size {part_size} is below S3's minimum of {MIN_PART_SIZE} bytes")
    check_model_key(key)
    if not key.lower().endswith(MODEL_SUFFIXES):
        raise ValueError(f"key {key!r} must end in one of {MODEL_SUFFIXES} for the rollout to pick it up")
    status = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    if status != "Enabled":
        raise VersioningRequiredError(
            f"bucket {bucket} has versioning {status or 'not enabled'}; the rollout pins object versions"
        )
    with progress(size, f"sha256 {path.name}", stream=stream) as report:
        digest = sha256_of(path, report)
    with progress(size, f"upload {path.name}", stream=stream) as report:
        if size <= part_size:
            with path.open("rb") as body:
                response: Any = s3.put_object(
                    Bucket=bucket,
                    Key=key,
                    Body=body,
                    Metadata={"sha256": digest},
                    ChecksumSHA256=_b64(bytes.fromhex(digest)),
                )
            report.update(size)
        else:
            response = _multipart_upload(s3, path, bucket, key, digest, part_size, report)
    version = response.get("VersionId")
    if not version:
        raise VersioningRequiredError(f"S3 returned no version id for s3://{bucket}/{key}")
    return Uploaded(bucket, key, version, digest, size)


def _multipart_upload(
    s3: S3Client, path: Path, bucket: str, key: str, digest: str, part_size: int, report: Progress
) -> Any:
    """Parts in order, each with its own SHA-256 that S3 checks; aborted on any failure."""
    upload_id = s3.create_multipart_upload(
        Bucket=bucket, Key=key, Metadata={"sha256": digest}, ChecksumAlgorithm="SHA256"
    )["UploadId"]
    try:
        parts: list[CompletedPartTypeDef] = []
        with path.open("rb") as handle:
            for number in itertools.count(1):
                data = handle.read(part_size)
                if not data:
                    break
                checksum = _b64(hashlib.sha256(data).digest())
                part = s3.upload_part(
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=data,
                    ChecksumSHA256=checksum,
                )
                parts.append({"PartNumber": number, "ETag": part["ETag"], "ChecksumSHA256": checksum})
                report.update(len(data))
        return s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
    except BaseException:
        # Interrupted (Ctrl-C) or failed: leave no billed, invisible parts behind.
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.upload_model", description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, help="checkpoint file")
    parser.add_argument("--bucket", help="models bucket (default: SSM /ezspeech/<env>/models-bucket)")
    parser.add_argument(
        "--env", default="dev", help="environment whose bucket to use when --bucket is not given"
    )
    parser.add_argument("--key", help="object key (default: models/<file name>)")
    parser.add_argument("--prefix", default="models/", help="key prefix when --key is not given")
    parser.add_argument(
        "--part-size-mib",
        type=int,
        default=DEFAULT_PART_SIZE // 2**20,
        help="multipart part size in MiB (at least 5); larger files upload in parts",
    )
    args = parser.parse_args(argv)
    try:
        bucket = args.bucket or from_ssm(boto3.client("ssm", config=RETRY_CONFIG), args.env, "models-bucket")
        key = args.key or f"{args.prefix}{args.path.name}"
        uploaded = upload_model(
            boto3.client("s3", config=RETRY_CONFIG),
            args.path,
            bucket,
            key,
            part_size=args.part_size_mib * 2**20,
        )
    except (AutomationError, MissingNameError, OSError, ValueError, BotoCoreError, ClientError) as error:
        print(f"upload-model: {error}", file=sys.stderr)
        return 1
    print(json.dumps(asdict(uploaded)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
