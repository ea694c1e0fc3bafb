"""Roll a model checkpoint out to the ECS service: the one code path for the Lambda and the ops CLI.

A rollout registers a new task-definition revision copied from the one the service runs now,
with ``MODEL_URI=s3://bucket/key?versionId=V`` and ``MODEL_SHA256`` on the model container, and
points the service at it. Because each revision pins an exact object version and its checksum,
rolling the service back to an earlier revision also brings back the earlier model.

Ordering. Every revision this code registers carries ``ezspeech:newest-*`` tags: the newest
upload ever applied (key, version, S3 ``sequencer``, LastModified). An event is applied only if
it is newer than that watermark: for the same key by the S3 sequencer (left-padded hex, as the
S3 docs prescribe; equal sequencers, which moto always sends, fall through), otherwise by the
object's LastModified (a tie, same second, lets the later-processed event win). An event that
is not newer is skipped as ``older_than_deployed``. Manual promote/rollback ignore the watermark
on purpose and carry it on unchanged, so no late event at or below it undoes an operator's choice.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from botocore.exceptions import ClientError

from ezspeech_common.ecs import (
    TAG_PREFIX,
    copyable_tags,
    describe_service,
    describe_task_definition,
    model_pin,
    other_deployment_ids,
    plain_environment,
    register_and_deploy,
    registerable,
    rollout_in_progress,
    with_container_environment,
)
from ezspeech_common.errors import (
    ModelChecksumError,
    ModelObjectNotFoundError,
    ModelSizeError,
    UnsupportedModelKeyError,
    VersioningRequiredError,
)
from ezspeech_common.golden_pin import SAFE_KEY, GoldenPin, check_golden_pin, parse_golden_metadata

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_s3 import S3Client

#: File suffixes of a model checkpoint (torch.save output).
MODEL_SUFFIXES = (".pt", ".pth", ".ckpt")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

RolloutSource = Literal["event", "promote", "rollback"]


@dataclass(frozen=True)
class RolloutSettings:
    cluster: str
    service: str
    container_name: str = "asr-server"
    model_key_prefix: str = "models/"
    #: A torch checkpoint is never this small; a 0-byte "folder" placeholder or a stub is.
    min_model_bytes: int = 1024
    #: S3's single-PUT limit, which is also what `make upload-model` can upload.
    max_model_bytes: int = 5 * 1024**3


@dataclass(frozen=True)
class ModelRef:
    """An uploaded object as the event (or the operator) names it."""

    bucket: str
    key: str
    version_id: str | None
    sequencer: str | None = None


@dataclass(frozen=True)
class ModelObject:
    """An object version checked to be a deployable checkpoint."""

    bucket: str
    key: str
    version_id: str
    size: int
    sha256: str
    last_modified: datetime
    golden: GoldenPin | None = None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}?versionId={quote(self.version_id, safe='')}"


@dataclass(frozen=True)
class Watermark:
    """The newest upload applied so far, kept in tags of the service's task definition."""

    key: str
    version_id: str
    sequencer: str
    last_modified: datetime

    _TAGS = ("newest-key", "newest-version", "newest-sequencer", "newest-modified")

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> Watermark | None:
        values = [tags.get(TAG_PREFIX + name) for name in cls._TAGS]
        if not values[0] or not values[3]:
            return None
        try:
            modified = datetime.fromisoformat(str(values[3]))
        except ValueError:
            return None
        return cls(str(values[0]), values[1] or "", values[2] or "", modified)

    @classmethod
    def of(cls, model: ModelObject, sequencer: str | None) -> Watermark:
        return cls(model.key, model.version_id, sequencer or "", model.last_modified)

    def tags(self) -> dict[str, str]:
        values = (self.key, self.version_id, self.sequencer, self.last_modified.isoformat())
        return {TAG_PREFIX + name: value for name, value in zip(self._TAGS, values, strict=True) if value}


@dataclass
class RolloutResult:
    status: Literal["started", "skipped"]
    reason: str
    bucket: str
    key: str
    version_id: str
    source: str
    sha256: str = ""
    model_uri: str = ""
    task_definition_arn: str = ""
    previous_task_definition_arn: str = ""
    previous_model_uri: str = ""
    #: GOLDEN_SET of the new revision and where it came from: "upload" (the model's metadata),
    #: "carried" (the replaced revision's), or "none" (the gate is off).
    golden_set: str = ""
    golden_source: str = "none"
    deployment_id: str = ""
    superseded_deployment_ids: list[str] = field(default_factory=list)
    #: True when idempotency handed back the stored result of an earlier delivery.
    duplicate: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RolloutResult:
        return cls(**data)


def is_model_key(key: str, prefix: str) -> bool:
    """True for a checkpoint under the models prefix (what the EventBridge rule also matches)."""
    return key.startswith(prefix) and len(key) > len(prefix) and key.lower().endswith(MODEL_SUFFIXES)


def sequencer_newer(candidate: str, applied: str) -> bool | None:
    """Compare two S3 sequencers of the same key: True/False, or None when they cannot decide."""
    if not candidate or not applied or candidate.upper() == applied.upper():
        return None
    width = max(len(candidate), len(applied))
    return candidate.upper().rjust(width, "0") > applied.upper().rjust(width, "0")


def is_newer(model: ModelObject, sequencer: str | None, watermark: Watermark | None) -> bool:
    """Whether an upload may replace the newest one applied so far."""
    if watermark is None:
        return True
    if (model.key, model.version_id) == (watermark.key, watermark.version_id):
        return False
    if model.key == watermark.key:
        by_sequencer = sequencer_newer(sequencer or "", watermark.sequencer)
        if by_sequencer is not None:
            return by_sequencer
    # Different keys (or undecidable sequencers): LastModified, to the second. A tie cannot be
    # ordered by anything S3 reports, so the later-processed upload wins.
    return model.last_modified >= watermark.last_modified


def check_model_key(key: str) -> None:
    """Raise UnsupportedModelKeyError unless ``key`` is safe to carry in URIs and tags."""
    if not SAFE_KEY.match(key):
        raise UnsupportedModelKeyError(
            f"key {key!r}: use at most 256 characters from A-Z a-z 0-9 . _ / - for model keys"
        )


def check_model_object(s3: S3Client, ref: ModelRef, settings: RolloutSettings) -> ModelObject:
    """HEAD the exact version and check it is a deployable checkpoint, or raise a named error."""
    check_model_key(ref.key)
    if not ref.version_id or ref.version_id == "null":
        raise VersioningRequiredError(
            f"s3://{ref.bucket}/{ref.key} has no version id: bucket versioning is "
            f"{_versioning_status(s3, ref.bucket)}. Enable versioning on the models bucket; a rollout "
            "pins an exact version so that a rollback restores the previous model."
        )
    try:
        head = s3.head_object(Bucket=ref.bucket, Key=ref.key, VersionId=ref.version_id)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        where = f"s3://{ref.bucket}/{ref.key} version {ref.version_id}"
        if code in ("404", "NoSuchKey", "NoSuchVersion", "400", "InvalidArgument"):
            raise ModelObjectNotFoundError(
                f"{where} does not exist ({code}): deleted, or a wrong version id"
            ) from error
        if code in ("403", "AccessDenied"):
            raise ModelObjectNotFoundError(
                f"{where} cannot be read (403): missing, or the role lacks s3:GetObjectVersion/s3:ListBucket"
            ) from error
        raise
    size = int(head.get("ContentLength", 0))
    if not settings.min_model_bytes <= size <= settings.max_model_bytes:
        raise ModelSizeError(
            f"s3://{ref.bucket}/{ref.key} version {ref.version_id} is {size} bytes; a checkpoint must be "
            f"{settings.min_model_bytes}..{settings.max_model_bytes} bytes"
        )
    sha256 = head.get("Metadata", {}).get("sha256", "").strip().lower()
    if not _SHA256.match(sha256):
        raise ModelChecksumError(
            f"s3://{ref.bucket}/{ref.key} version {ref.version_id} has no valid 'sha256' metadata "
            f"(got {sha256!r}); upload it with `make upload-model`, which sets it"
        )
    modified = head.get("LastModified") or datetime.now(UTC)
    golden = parse_golden_metadata(ref.bucket, head.get("Metadata", {}), settings.model_key_prefix)
    return ModelObject(ref.bucket, ref.key, ref.version_id, size, sha256, modified, golden)


def roll_out_model(
    s3: S3Client,
    ecs: ECSClient,
    settings: RolloutSettings,
    ref: ModelRef,
    *,
    source: RolloutSource = "event",
) -> RolloutResult:
    """Pin ``ref`` on a new task-definition revision and update the service to it.

    ``source="event"`` enforces the ordering watermark; ``promote``/``rollback`` (operator
    actions) do not, and keep the watermark as it was. A deployment already in progress is
    superseded: ECS stops the in-flight deployment and starts this one, so the newest model wins
    and the result lists the superseded deployment ids.
    """
    model = check_model_object(s3, ref, settings)
    result = RolloutResult(
        status="skipped",
        reason="",
        bucket=model.bucket,
        key=model.key,
        version_id=model.version_id,
        source=source,
        sha256=model.sha256,
        model_uri=model.uri,
    )
    service = describe_service(ecs, settings.cluster, settings.service)
    current_arn = str(service["taskDefinition"])
    current, current_tags = describe_task_definition(ecs, current_arn)
    previous = model_pin(current, settings.container_name)
    result.previous_task_definition_arn = current_arn
    result.previous_model_uri = previous.uri if previous else ""
    watermark = Watermark.from_tags(current_tags)

    if previous is not None and (previous.uri, previous.sha256) == (model.uri, model.sha256):
        result.reason = "already_deployed"
        return result
    if source == "event" and not is_newer(model, ref.sequencer, watermark):
        result.reason = "older_than_deployed"
        return result

    # Only events advance the watermark: an operator's pick keeps it, so no late event for an
    # upload at or below it can undo the pick.
    newest = watermark if watermark is not None and source != "event" else Watermark.of(model, ref.sequencer)
    tags = {
        **copyable_tags(current_tags),
        TAG_PREFIX + "model-key": model.key,
        TAG_PREFIX + "model-version": model.version_id,
        TAG_PREFIX + "model-sha256": model.sha256,
        TAG_PREFIX + "rollout-source": source,
        **newest.tags(),
    }
    # The golden-set gate travels with the service: the new revision is a copy of the current one,
    # so its GOLDEN_SET / GOLDEN_MAX_WER carry over, unless the upload names its own set.
    updates = {"MODEL_URI": model.uri, "MODEL_SHA256": model.sha256}
    if model.golden is not None:
        check_golden_pin(s3, model.golden)
        updates.update(model.golden.environment())
        result.golden_set, result.golden_source = model.golden.uri, "upload"
    else:
        carried = plain_environment(current, settings.container_name).get("GOLDEN_SET", "")
        result.golden_set, result.golden_source = carried, "carried" if carried else "none"
    definition = with_container_environment(registerable(ecs, current), settings.container_name, updates)
    result.superseded_deployment_ids = other_deployment_ids(service) if rollout_in_progress(service) else []
    deployed = register_and_deploy(ecs, settings.cluster, settings.service, definition, tags)
    result.status = "started"
    result.reason = "superseded_in_progress_rollout" if result.superseded_deployment_ids else "new_model"
    result.task_definition_arn = deployed.task_definition_arn
    result.deployment_id = deployed.deployment_id
    return result


def _versioning_status(s3: S3Client, bucket: str) -> str:
    try:
        status = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    except ClientError as error:
        return f"unknown ({error.response.get('Error', {}).get('Code', 'error')})"
    return f"{status!r}" if status else "not enabled"


def _golden_line(result: RolloutResult) -> str:
    if not result.golden_set:
        return "none: the golden-set gate is off for this revision"
    origin = (
        "given with the upload" if result.golden_source == "upload" else "kept from the previous revision"
    )
    return f"{result.golden_set} ({origin})"


def notification(result: RolloutResult, cluster: str, service: str) -> tuple[str, list[str]]:
    """Subject and text lines announcing a started rollout."""
    revision = result.task_definition_arn.rsplit("/", 1)[-1]
    lines = [
        f"Model rollout started on {cluster}/{service} ({result.source}).",
        f"model:      s3://{result.bucket}/{result.key}",
        f"version:    {result.version_id}",
        f"sha256:     {result.sha256}",
        f"revision:   {revision}",
        f"deployment: {result.deployment_id or 'unknown'}",
        f"previous:   {result.previous_task_definition_arn.rsplit('/', 1)[-1]} ({result.previous_model_uri})",
        f"golden set: {_golden_line(result)}",
    ]
    if result.superseded_deployment_ids:
        lines.append(f"superseded in-progress deployments: {', '.join(result.superseded_deployment_ids)}")
    subject = f"[ezspeech] rollout {result.source}: {result.key}@{result.version_id[:12]} -> {revision}"
    return subject, lines
