"""The rollout keeps the golden-set gate: `make upload-model GOLDEN=dir` → model_rollout.

A golden set uploaded with a model is pinned on the new revision as GOLDEN_SET / GOLDEN_MAX_WER;
a model uploaded without one inherits the pin of the revision it replaces; a bad pin fails the
rollout with a named error before any revision is registered.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from ezspeech_common.errors import GoldenSetPinError

from ops.rollout import main as rollout_main
from ops.upload_model import main as upload_main
from ops.upload_model import upload_golden_set, upload_model
from tests.functions.helpers import (
    BUCKET,
    CLUSTER,
    SERVICE,
    FakeContext,
    Platform,
    container_env,
    object_created,
    put_model,
    revision_count,
    rollout_env,
    service_revision,
)

CLIPS = Path(__file__).resolve().parents[1] / "data" / "clips"


@pytest.fixture
def app(platform: Platform, load_handler: Any) -> Any:
    return load_handler("model_rollout", rollout_env(platform), platform.clients)


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "asr.pt"
    path.write_bytes(b"checkpoint" * 400)
    return path


def test_a_golden_set_uploaded_with_the_model_is_pinned_and_then_carried_over(
    platform: Platform, app: Any, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s3 = platform.clients.s3
    golden = upload_golden_set(s3, CLIPS, BUCKET, "models/golden/clips/")
    manifest = json.loads(
        s3.get_object(Bucket=BUCKET, Key="models/golden/clips/transcripts.json")["Body"].read()
    )
    assert set(manifest) == set(json.loads((CLIPS / "transcripts.json").read_text()))
    assert all(entry["version_id"] and len(entry["sha256"]) == 64 for entry in manifest.values())

    first = upload_model(s3, checkpoint, BUCKET, "models/asr.pt", golden_set=golden.uri, golden_max_wer=0.1)
    result = app.lambda_handler(object_created("models/asr.pt", first.version_id), FakeContext())
    assert result["status"] == "started" and result["golden_source"] == "upload"
    environment = container_env(service_revision(platform))
    assert environment["GOLDEN_SET"] == golden.uri and environment["GOLDEN_MAX_WER"] == "0.1"
    (note,) = platform.notifications()
    assert f"golden set: {golden.uri} (given with the upload)" in note["message"]

    # The next upload names no golden set: the new revision keeps the gate of the one it replaces.
    checkpoint.write_bytes(b"retrained!" * 400)
    second = upload_model(s3, checkpoint, BUCKET, "models/asr.pt")
    result = app.lambda_handler(object_created("models/asr.pt", second.version_id), FakeContext())
    assert result["status"] == "started" and result["golden_source"] == "carried"
    environment = container_env(service_revision(platform))
    assert environment["MODEL_URI"].endswith(second.version_id)
    assert environment["GOLDEN_SET"] == golden.uri and environment["GOLDEN_MAX_WER"] == "0.1"
    (note,) = platform.notifications()
    assert "(kept from the previous revision)" in note["message"]

    # `make model-status` says the gate is on and with what.
    capsys.readouterr()  # the handlers' own log lines
    assert rollout_main(["status", "--cluster", CLUSTER, "--service", SERVICE, "--bucket", BUCKET]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["golden_set"], status["golden_max_wer"]) == (golden.uri, "0.1")


def test_without_any_golden_set_the_notification_says_the_gate_is_off(platform: Platform, app: Any) -> None:
    uploaded = put_model(platform, "models/asr.pt")
    result = app.lambda_handler(object_created("models/asr.pt", uploaded["version_id"]), FakeContext())
    assert result["golden_source"] == "none" and "GOLDEN_SET" not in container_env(service_revision(platform))
    (note,) = platform.notifications()
    assert "golden set: none: the golden-set gate is off" in note["message"]


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"golden-set": "s3://other-bucket/models/golden/x/?versionId=v1"}, "must be in the models bucket"),
        ({"golden-set": f"s3://{BUCKET}/models/golden/x/"}, "must be pinned"),
        ({"golden-set": f"s3://{BUCKET}/elsewhere/x/?versionId=v1"}, "must be under models/"),
        ({"golden-set": f"s3://{BUCKET}/models/golden/x/?versionId=v1", "golden-max-wer": "5"}, "0..1"),
        ({"golden-max-wer": "0.1"}, "without golden-set"),
        ({"golden-set": f"s3://{BUCKET}/models/golden/x/?versionId=nope"}, "cannot be read"),
    ],
)
def test_a_bad_golden_pin_fails_the_rollout_before_registering_a_revision(
    platform: Platform, app: Any, metadata: dict[str, str], message: str
) -> None:
    data = b"checkpoint" * 400
    version = platform.clients.s3.put_object(
        Bucket=BUCKET,
        Key="models/asr.pt",
        Body=data,
        Metadata={"sha256": hashlib.sha256(data).hexdigest(), **metadata},
    )["VersionId"]
    before = revision_count(platform)
    with pytest.raises(GoldenSetPinError, match=message):
        app.lambda_handler(object_created("models/asr.pt", version), FakeContext())
    assert revision_count(platform) == before


def test_upload_model_cli_uploads_the_golden_set_first_and_refuses_a_threshold_alone(
    platform: Platform, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [str(checkpoint), "--bucket", BUCKET, "--key", "models/asr.pt"]
    assert upload_main([*args, "--golden-max-wer", "0.1"]) == 1
    assert "--golden-max-wer needs --golden" in capsys.readouterr().err

    assert upload_main([*args, "--golden", str(CLIPS), "--golden-max-wer", "0.15"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["golden_set"].startswith(f"s3://{BUCKET}/models/golden/clips/?versionId=")
    head = platform.clients.s3.head_object(
        Bucket=BUCKET, Key="models/asr.pt", VersionId=printed["version_id"]
    )
    assert head["Metadata"]["golden-set"] == printed["golden_set"]
    assert head["Metadata"]["golden-max-wer"] == "0.15"

    empty = checkpoint.parent / "empty-golden"
    empty.mkdir()
    assert upload_main([*args, "--golden", str(empty)]) == 1
    assert "golden set: cannot read the golden set's transcripts.json" in capsys.readouterr().err
