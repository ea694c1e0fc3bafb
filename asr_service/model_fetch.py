"""Where the model file comes from: S3 (a pinned object version) or a local path, hash-checked.

``MODEL_URI`` wins over ``MODEL_PATH``; with neither, the shipped demo model is served. When
``MODEL_SHA256`` is set the bytes must hash to it, or the server refuses to start: a task that
cannot prove it runs the model the rollout pinned must never turn ready.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from asr_service.logging_setup import get_logger

log = get_logger(component="model_source")

_READ_BLOCK = 1 << 20


class ModelSourceError(RuntimeError):
    """The model could not be fetched or did not verify."""


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str
    version_id: str | None


def parse_s3_uri(uri: str) -> S3Location:
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc or not parts.path.strip("/"):
        raise ModelSourceError(f"not an s3://bucket/key URI: {uri!r}")
    query = parse_qs(parts.query)
    versions = query.get("versionId", [])
    unknown = set(query) - {"versionId"}
    if unknown:
        raise ModelSourceError(f"unsupported query parameters in MODEL_URI: {sorted(unknown)}")
    return S3Location(parts.netloc, parts.path.lstrip("/"), versions[0] if versions else None)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in blocks (checkpoints can be hundreds of MB)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def verify_sha256(path: Path, expected: str | None) -> str:
    actual = sha256_file(path)
    if expected is not None and actual != expected.lower():
        raise ModelSourceError(f"model {path} has sha256 {actual}, expected {expected.lower()}")
    return actual


def download_s3(location: S3Location, cache_dir: Path) -> Path:
    """Fetch the object (the pinned version when given) to ``cache_dir``; boto3 honours
    ``AWS_ENDPOINT_URL`` so the same code runs against moto."""
    import boto3  # imported here: a local model needs no AWS SDK start-up cost
    from botocore.exceptions import BotoCoreError, ClientError

    cache_dir.mkdir(parents=True, exist_ok=True)
    name = Path(location.key).name or "model.pt"
    target = cache_dir / (f"{location.version_id}-{name}" if location.version_id else name)
    try:
        s3 = boto3.client("s3")
        if location.version_id:
            obj = s3.get_object(Bucket=location.bucket, Key=location.key, VersionId=location.version_id)
        else:
            obj = s3.get_object(Bucket=location.bucket, Key=location.key)
        body = obj["Body"]
        # Write to a temporary file first: a half-written model must never look complete.
        with tempfile.NamedTemporaryFile(dir=cache_dir, delete=False, suffix=".part") as tmp:
            shutil.copyfileobj(body, tmp, _READ_BLOCK)
        Path(tmp.name).replace(target)
    except (BotoCoreError, ClientError) as error:
        version = f" version {location.version_id}" if location.version_id else ""
        raise ModelSourceError(
            f"cannot download s3://{location.bucket}/{location.key}{version}: {error}"
        ) from error
    return target


def default_model_path() -> Path:
    from asr_service.model.checkpoint import DEFAULT_MODEL_PATH

    return Path(DEFAULT_MODEL_PATH)


@dataclass(frozen=True)
class ResolvedModel:
    path: Path
    source: str  # what was configured, for logs and /metrics
    sha256: str


def resolve_model(
    model_uri: str | None, model_path: str | None, expected_sha256: str | None, cache_dir: str
) -> ResolvedModel:
    """Find (download if needed) and verify the model file."""
    if model_uri:
        if model_uri.startswith("s3://"):
            location = parse_s3_uri(model_uri)
            path = download_s3(location, Path(cache_dir))
        else:
            path = Path(model_uri.removeprefix("file://"))
        source = model_uri
    elif model_path:
        path, source = Path(model_path), model_path
    else:
        path = default_model_path()
        source = f"default:{path}"
    if not path.is_file():
        raise ModelSourceError(f"model file not found: {path}")
    if not os.access(path, os.R_OK):
        raise ModelSourceError(f"model file not readable: {path}")
    digest = verify_sha256(path, expected_sha256)
    log.info(
        "model_resolved", source=source, path=str(path), sha256=digest, verified=expected_sha256 is not None
    )
    return ResolvedModel(path=path, source=source, sha256=digest)
