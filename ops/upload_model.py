"""Upload a model checkpoint to the models bucket with its SHA-256 as object metadata ``sha256``.

    python -m ops.upload_model PATH [--bucket NAME | --env dev] [--key models/NAME.pt]
                               [--golden DIR | --golden s3://...?versionId=V] [--golden-max-wer 0.1]

Prints one JSON line: bucket, key, version_id, sha256, size (and golden_set / golden_max_wer when
given). The bucket must have versioning (the rollout pins the version). S3 also verifies the
bytes it stores against the SHA-256 (``ChecksumSHA256``), so a corrupted transfer fails here
rather than at task start. Honours ``AWS_ENDPOINT_URL`` (boto3 does), so it works against moto too.

With ``--golden DIR`` (a directory with ``transcripts.json`` beside its WAVs, issue 22) the golden
set is uploaded FIRST, under ``<prefix>golden/<dir name>/``: each clip, then a ``transcripts.json``
that pins every clip by version id and SHA-256. The model object then carries the pinned set as
metadata ``golden-set`` (and ``golden-max-wer``), which the rollout puts in the new revision as
``GOLDEN_SET`` / ``GOLDEN_MAX_WER``. The order matters: the model upload is what starts the rollout.
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
from urllib.parse import quote

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from ezspeech_common.aws import RETRY_CONFIG
from ezspeech_common.errors import AutomationError, VersioningRequiredError
from ezspeech_common.rollout import (
    GOLDEN_MAX_WER_METADATA,
    GOLDEN_SET_METADATA,
    MODEL_SUFFIXES,
    check_model_key,
    parse_golden_metadata,
)

from asr_service.golden import GoldenSetError
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
    golden_set: str | None = None
    golden_max_wer: float | None = None


@dataclass(frozen=True)
class UploadedGoldenSet:
    uri: str  # s3://bucket/prefix/?versionId=V (V: the manifest's version): what GOLDEN_SET takes
    prefix: str
    clips: int


def _put(s3: S3Client, bucket: str, key: str, body: bytes, metadata: dict[str, str] | None = None) -> str:
    """PUT with S3's own SHA-256 check of the bytes; returns the new version id."""
    digest = hashlib.sha256(body).digest()
    response = s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        Metadata=metadata or {},
        ChecksumSHA256=base64.b64encode(digest).decode(),
    )
    version = response.get("VersionId")
    if not version:
        raise VersioningRequiredError(f"S3 returned no version id for s3://{bucket}/{key}")
    return str(version)


def upload_golden_set(s3: S3Client, directory: Path, bucket: str, prefix: str) -> UploadedGoldenSet:
    """Upload a local golden set (checked as the server would read it) pinned by one version id."""
    from asr_service.golden import TRANSCRIPTS_FILE, ManifestEntry, load_local, manifest_bytes

    if not prefix.endswith("/"):
        raise ValueError(f"golden-set prefix {prefix!r} must end with '/'")
    check_model_key(prefix + TRANSCRIPTS_FILE)
    _require_versioning(s3, bucket)
    golden = load_local(directory)  # GoldenSetError names a bad manifest or a missing clip
    pinned = []
    for clip in golden.clips:
        body = clip.path.read_bytes()
        version = _put(s3, bucket, prefix + clip.name, body)
        pinned.append(ManifestEntry(clip.name, clip.text, version, hashlib.sha256(body).hexdigest()))
    manifest_version = _put(s3, bucket, prefix + TRANSCRIPTS_FILE, manifest_bytes(pinned))
    uri = f"s3://{bucket}/{prefix}?versionId={quote(manifest_version, safe='')}"
    return UploadedGoldenSet(uri=uri, prefix=prefix, clips=len(pinned))


def _require_versioning(s3: S3Client, bucket: str) -> None:
    status = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    if status != "Enabled":
        raise VersioningRequiredError(
            f"bucket {bucket} has versioning {status or 'not enabled'}; the rollout pins object versions"
        )


def sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def upload_model(
    s3: S3Client,
    path: Path,
    bucket: str,
    key: str,
    golden_set: str | None = None,
    golden_max_wer: float | None = None,
) -> Uploaded:
    """Upload ``path`` to ``s3://bucket/key`` with ``sha256`` metadata; returns the new version.

    ``golden_set`` (a pinned ``s3://`` URI) and ``golden_max_wer`` ride along as metadata for the
    rollout to pin; they are checked here with the rollout's own rules."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not a file")
    size = path.stat().st_size
    if size == 0 or size > _SINGLE_PUT_LIMIT:
        raise ValueError(f"{path} is {size} bytes; a checkpoint must be 1 byte .. 5 GiB")
    check_model_key(key)
    if not key.lower().endswith(MODEL_SUFFIXES):
        raise ValueError(f"key {key!r} must end in one of {MODEL_SUFFIXES} for the rollout to pick it up")
    metadata = golden_metadata(bucket, golden_set, golden_max_wer)
    _require_versioning(s3, bucket)
    digest = sha256_of(path)
    with path.open("rb") as body:
        response = s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            Metadata={"sha256": digest, **metadata},
            ChecksumSHA256=base64.b64encode(bytes.fromhex(digest)).decode(),
        )
    version = response.get("VersionId")
    if not version:
        raise VersioningRequiredError(f"S3 returned no version id for s3://{bucket}/{key}")
    return Uploaded(bucket, key, version, digest, size, golden_set, golden_max_wer)


def golden_metadata(bucket: str, golden_set: str | None, golden_max_wer: float | None) -> dict[str, str]:
    """The model object's golden-set metadata, validated like the rollout will validate it."""
    if golden_set is None:
        if golden_max_wer is not None:
            raise ValueError(
                "--golden-max-wer needs --golden (a threshold without a golden set gates nothing)"
            )
        return {}
    metadata = {GOLDEN_SET_METADATA: golden_set}
    if golden_max_wer is not None:
        metadata[GOLDEN_MAX_WER_METADATA] = repr(float(golden_max_wer))
    parse_golden_metadata(bucket, metadata)  # GoldenSetPinError: the same rules as the rollout's
    return metadata


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
        "--golden",
        help="golden set: a directory (transcripts.json + WAVs) to upload, or an uploaded s3://...?versionId=V",
    )
    parser.add_argument(
        "--golden-prefix", help="where a --golden directory goes (default: <prefix>golden/<dir name>/)"
    )
    parser.add_argument("--golden-max-wer", type=float, help="GOLDEN_MAX_WER for this model (0..1)")
    args = parser.parse_args(argv)
    try:
        bucket = args.bucket or from_ssm(boto3.client("ssm", config=RETRY_CONFIG), args.env, "models-bucket")
        key = args.key or f"{args.prefix}{args.path.name}"
        s3 = boto3.client("s3", config=RETRY_CONFIG)
        golden_set = args.golden
        if golden_set and not golden_set.startswith("s3://"):
            directory = Path(golden_set)
            prefix = args.golden_prefix or f"{args.prefix}golden/{directory.resolve().name}/"
            golden_set = upload_golden_set(s3, directory, bucket, prefix).uri
        uploaded = upload_model(s3, args.path, bucket, key, golden_set, args.golden_max_wer)
    except (AutomationError, MissingNameError, OSError, ValueError, BotoCoreError, ClientError) as error:
        # GoldenSetError is a RuntimeError: named here so a bad golden set reads as one line too.
        print(f"upload-model: {error}", file=sys.stderr)
        return 1
    except GoldenSetError as error:
        print(f"upload-model: golden set: {error}", file=sys.stderr)
        return 1
    print(json.dumps(asdict(uploaded)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
