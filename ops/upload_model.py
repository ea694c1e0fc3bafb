"""Upload a model checkpoint to the models bucket with its SHA-256 as object metadata ``sha256``.

    python -m ops.upload_model PATH [--bucket NAME | --env dev] [--key models/NAME.pt]
                               [--golden DIR | --golden s3://...?versionId=V] [--golden-max-wer 0.1]

Prints one JSON line on stdout: bucket, key, version_id, sha256, size (and golden_set /
golden_max_wer when given). The bucket must have
versioning (the rollout pins the version). S3 also verifies the bytes it stores against SHA-256
checksums (``ChecksumSHA256``: of the whole file for a single PUT, of each part for a multipart
upload), so a corrupted transfer fails here rather than at task start.

Files larger than one part (``--part-size-mib``, 16 by default) go up as a multipart upload; an
upload that fails is aborted so no orphaned parts are billed. Hashing and uploading show a
progress bar (bytes, rate, time left) on a terminal, and a start and an end line on stderr when
stderr is not a terminal (CI logs).
Honours ``AWS_ENDPOINT_URL`` (boto3 does), so it works against moto too.

With ``--golden DIR`` (a directory with ``transcripts.json`` beside its WAVs) the golden
set is uploaded FIRST, under ``<prefix>golden/<dir name>/``: each clip, then a ``transcripts.json``
that pins every clip by version id and SHA-256. The model object then carries the pinned set as
metadata ``golden-set`` (and ``golden-max-wer``), which the rollout puts in the new revision as
``GOLDEN_SET`` / ``GOLDEN_MAX_WER``. The order matters: the model upload is what starts the rollout.
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
from urllib.parse import quote

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from ezspeech_common.aws import RETRY_CONFIG
from ezspeech_common.errors import AutomationError, VersioningRequiredError
from ezspeech_common.golden_pin import GOLDEN_MAX_WER_METADATA, GOLDEN_SET_METADATA, parse_golden_metadata
from ezspeech_common.rollout import MODEL_SUFFIXES, check_model_key

from asr_service.golden import GoldenSetError
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
        ChecksumSHA256=_b64(digest),
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
    golden_set: str | None = None,
    golden_max_wer: float | None = None,
    part_size: int = DEFAULT_PART_SIZE,
    stream: TextIO | None = None,
) -> Uploaded:
    """Upload ``path`` to ``s3://bucket/key`` with ``sha256`` metadata; returns the new version.

    ``golden_set`` (a pinned ``s3://`` URI) and ``golden_max_wer`` ride along as metadata for the
    rollout to pin; they are checked here with the rollout's own rules. Progress goes to
    ``stream`` (default stderr).
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
    metadata = {"sha256": "", **golden_metadata(bucket, golden_set, golden_max_wer)}
    _require_versioning(s3, bucket)
    with progress(size, f"sha256 {path.name}", stream=stream) as report:
        digest = sha256_of(path, report)
    metadata["sha256"] = digest
    with progress(size, f"upload {path.name}", stream=stream) as report:
        if size <= part_size:
            with path.open("rb") as body:
                response: Any = s3.put_object(
                    Bucket=bucket,
                    Key=key,
                    Body=body,
                    Metadata=metadata,
                    ChecksumSHA256=_b64(bytes.fromhex(digest)),
                )
            report.update(size)
        else:
            response = _multipart_upload(s3, path, bucket, key, metadata, part_size, report)
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


def _multipart_upload(
    s3: S3Client,
    path: Path,
    bucket: str,
    key: str,
    metadata: dict[str, str],
    part_size: int,
    report: Progress,
) -> Any:
    """Parts in order, each with its own SHA-256 that S3 checks; aborted on any failure."""
    upload_id = s3.create_multipart_upload(
        Bucket=bucket, Key=key, Metadata=metadata, ChecksumAlgorithm="SHA256"
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
        uploaded = upload_model(
            s3,
            args.path,
            bucket,
            key,
            golden_set=golden_set,
            golden_max_wer=args.golden_max_wer,
            part_size=args.part_size_mib * 2**20,
        )
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
