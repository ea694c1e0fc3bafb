"""The golden set a model is uploaded with: read from the object's metadata, checked, pinned.

``make upload-model GOLDEN=dir`` writes the metadata (the same rules as here, before uploading);
the rollout checks it again and pins the set on the new revision as GOLDEN_SET / GOLDEN_MAX_WER.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from botocore.exceptions import ClientError

from ezspeech_common.errors import GoldenSetPinError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

#: Keys are restricted to characters that read the same raw and URL-encoded (S3 event keys,
#: the ``s3://`` URI the container parses) and fit in a 256-character tag value.
SAFE_KEY = re.compile(r"^[A-Za-z0-9._/-]{1,256}$")

#: Model object metadata naming the golden set the model must pass (`make upload-model
#: GOLDEN=dir` sets it) and the WER threshold; the rollout pins them as GOLDEN_SET / GOLDEN_MAX_WER.
GOLDEN_SET_METADATA = "golden-set"
GOLDEN_MAX_WER_METADATA = "golden-max-wer"
#: The manifest the golden set's version id pins (asr_service.golden.TRANSCRIPTS_FILE).
GOLDEN_MANIFEST = "transcripts.json"


@dataclass(frozen=True)
class GoldenPin:
    """A golden set given with an upload: ``s3://bucket/prefix/?versionId=V`` and its threshold."""

    uri: str
    bucket: str
    manifest_key: str
    version_id: str
    max_wer: str = ""  # as given ("" = the server's default)

    def environment(self) -> dict[str, str]:
        env = {"GOLDEN_SET": self.uri}
        if self.max_wer:
            env["GOLDEN_MAX_WER"] = self.max_wer
        return env


def parse_golden_metadata(
    bucket: str, metadata: dict[str, str], key_prefix: str = "models/"
) -> GoldenPin | None:
    """The golden set named in a model object's metadata, checked; None when there is none.

    It must be a version-pinned prefix in the models bucket under the models prefix: the task role
    can read only there, and an unpinned set could change under a rollout.
    """
    uri = metadata.get(GOLDEN_SET_METADATA, "").strip()
    max_wer = metadata.get(GOLDEN_MAX_WER_METADATA, "").strip()
    if not uri:
        if max_wer:
            raise GoldenSetPinError(
                f"metadata {GOLDEN_MAX_WER_METADATA}={max_wer!r} without {GOLDEN_SET_METADATA}"
            )
        return None
    parts = urlsplit(uri)
    versions = parse_qs(parts.query).get("versionId", [])
    key = parts.path.lstrip("/")
    if not key.endswith(GOLDEN_MANIFEST):
        key = key.rstrip("/") + "/" + GOLDEN_MANIFEST
    problems = []
    if parts.scheme != "s3" or parts.netloc != bucket:
        problems.append(f"must be in the models bucket s3://{bucket}/")
    if not key.startswith(key_prefix) or not SAFE_KEY.match(key):
        problems.append(f"must be under {key_prefix} with key characters A-Z a-z 0-9 . _ / -")
    if len(versions) != 1 or not versions[0] or set(parse_qs(parts.query)) != {"versionId"}:
        problems.append("must be pinned with exactly one ?versionId=")
    if max_wer:
        try:
            if not 0 <= float(max_wer) <= 1:
                raise ValueError
        except ValueError:
            problems.append(f"{GOLDEN_MAX_WER_METADATA} must be a WER fraction 0..1, got {max_wer!r}")
    if problems:
        raise GoldenSetPinError(f"{GOLDEN_SET_METADATA} {uri!r}: " + "; ".join(problems))
    return GoldenPin(uri, bucket, key, versions[0], max_wer)


def check_golden_pin(s3: S3Client, pin: GoldenPin) -> None:
    """HEAD the pinned manifest: a golden set that does not exist fails the rollout now, with a
    clear message, instead of failing every task of the new revision later."""
    try:
        s3.head_object(Bucket=pin.bucket, Key=pin.manifest_key, VersionId=pin.version_id)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        raise GoldenSetPinError(
            f"golden set {pin.uri}: s3://{pin.bucket}/{pin.manifest_key} version {pin.version_id} "
            f"cannot be read ({code}); upload it with make upload-model GOLDEN=dir"
        ) from error
