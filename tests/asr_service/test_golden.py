"""The golden-set gate through the real server process: ``python -m asr_service``.

A checkpoint that loads but transcribes badly (its token list rotated) must never turn ready and
must exit 3 with one ``golden_set_failed`` line; the shipped model must pass its own golden set
(the demo clips); a golden set that cannot be read fails closed (exit 4).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from asr_service.golden import (
    EXIT_GATE_FAILED,
    EXIT_GOLDEN_UNREADABLE,
    GoldenSetError,
    golden_location,
    load_local,
    parse_manifest,
    score_clip,
)
from asr_service.model_fetch import sha256_file
from asr_service.settings import SettingsError, load_settings
from demo.models import make_wrong_version
from demo.moto_server import FAKE_CREDENTIALS, MotoServer
from ops.upload_model import upload_golden_set
from tests.asr_service.helpers import http_get

REPO = Path(__file__).resolve().parents[2]
CLIPS = REPO / "tests" / "data" / "clips"
SHIPPED_MODEL = REPO / "asr_service" / "model_files" / "demo" / "demo.pt"


@pytest.fixture(scope="module")
def wrong_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wrong") / "wrong-tokens.pt"
    make_wrong_version(SHIPPED_MODEL, path)
    return path


class ServerProcess:
    """``python -m asr_service`` with a clean env; reads its JSON log lines as they come."""

    def __init__(self, env_extra: dict[str, str]) -> None:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("MODEL_", "AUTH_", "GOLDEN_", "AWS_"))
        }
        env.update(
            {"PYTHONPATH": str(REPO), "SERVER_HOST": "127.0.0.1", "SERVER_PORT": "0", "HEALTH_PORT": "0"}
        )
        env["WORKERS"] = "1"  # the gate of one process (with more, each worker passes its own)
        env.update(env_extra)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "asr_service"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.records: list[dict] = []

    def next_record(self) -> dict | None:
        assert self.process.stdout is not None
        while line := self.process.stdout.readline():
            if line.startswith("{"):
                record = json.loads(line)
                self.records.append(record)
                return record
        return None

    def wait_for(self, *events: str, timeout: float = 90) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = self.next_record()
            if record is None:
                raise AssertionError(f"exited before {events}: {self.records[-3:]}")
            if record.get("event") in events:
                return record
        raise AssertionError(f"none of {events} within {timeout} s")

    def ready_statuses_until_exit(self, health_port: int, timeout: float = 90) -> list[int]:
        """Poll /ready until the process exits: every status it answered."""
        statuses = []
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError):  # the port closes as the process exits
                statuses.append(http_get(health_port, "/ready")[0])
            time.sleep(0.05)
        return statuses

    def finish(self, timeout: float = 30) -> int:
        code = self.process.wait(timeout)
        while self.next_record() is not None:
            pass
        return code

    def events(self, name: str) -> list[dict]:
        return [r for r in self.records if r.get("event") == name]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


# ------------------------------------------------------------------ through the real server process
def test_the_shipped_model_passes_its_own_golden_set_and_reports_the_wer():
    server = ServerProcess({"GOLDEN_SET": str(CLIPS), "GOLDEN_MAX_WER": "0.1"})
    try:
        ready = server.wait_for("server_ready")
        (passed,) = server.events("golden_set_passed")
        assert passed["golden_clips"] == 5 and set(passed["clips"]) == set(
            json.loads((CLIPS / "transcripts.json").read_text())
        )
        assert ready["golden_wer"] == passed["golden_wer"] <= 0.1
        assert ready["golden_set"] == str(CLIPS) and ready["golden_max_wer"] == 0.1
        assert http_get(ready["health_port"], "/ready")[0] == 200
        status, _headers, body = http_get(ready["health_port"], "/metrics")
        metrics = json.loads(body)
        assert status == 200 and metrics["golden_wer"] == ready["golden_wer"] and metrics["golden_clips"] == 5
        prometheus = http_get(ready["health_port"], "/metrics", accept="text/plain")[2].decode()
        assert f"asr_golden_wer {float(ready['golden_wer'])}" in prometheus
        assert "asr_golden_max_wer 0.1" in prometheus
    finally:
        server.kill()


def test_a_valid_but_wrong_checkpoint_loads_without_the_gate(wrong_model):
    """The control: the rotated-token checkpoint is a valid model; nothing but the gate stops it."""
    server = ServerProcess({"MODEL_PATH": str(wrong_model)})
    try:
        ready = server.wait_for("server_ready")
        assert ready["model_sha256"] == sha256_file(wrong_model)
        assert http_get(ready["health_port"], "/ready")[0] == 200
    finally:
        server.kill()


def test_a_valid_but_wrong_checkpoint_never_turns_ready_and_exits_3(wrong_model):
    server = ServerProcess(
        {"MODEL_PATH": str(wrong_model), "MODEL_SHA256": sha256_file(wrong_model), "GOLDEN_SET": str(CLIPS)}
    )
    try:
        listening = server.wait_for("health_listening")
        statuses = server.ready_statuses_until_exit(listening["health_port"])
        assert server.finish() == EXIT_GATE_FAILED
    finally:
        server.kill()
    assert 200 not in statuses and statuses  # it answered /ready while checking, never with 200
    assert not server.events("server_ready")
    (failed,) = server.events("golden_set_failed")
    assert failed["level"] == "error" and failed["exit_code"] == EXIT_GATE_FAILED
    assert failed["model_sha256"] == sha256_file(wrong_model)
    assert failed["wer"] > failed["max_wer"] == 0.2
    assert len(failed["clips"]) == 5 and all(wer > 0.5 for wer in failed["clips"].values())
    worst = failed["worst"][0]
    assert worst["reference"] in json.loads((CLIPS / "transcripts.json").read_text()).values()
    assert worst["hypothesis"] != worst["reference"]


def test_a_golden_set_that_cannot_be_read_fails_closed_with_exit_4(tmp_path):
    broken = tmp_path / "golden"
    broken.mkdir()
    (broken / "transcripts.json").write_text(json.dumps({"missing.wav": "hello world"}))
    server = ServerProcess({"GOLDEN_SET": str(broken)})
    try:
        assert server.finish(timeout=90) == EXIT_GOLDEN_UNREADABLE
    finally:
        server.kill()
    (unreadable,) = server.events("golden_set_unreadable")
    assert "missing.wav" in unreadable["error"] and "does not exist" in unreadable["error"]
    assert not server.events("server_ready")


def test_an_unpinned_s3_golden_set_is_refused_at_start():
    server = ServerProcess({"GOLDEN_SET": "s3://bucket/models/golden/demo/"})
    _out, err = server.process.communicate(timeout=30)
    assert server.process.returncode == 2 and "GOLDEN_SET must pin a version" in err


def test_an_s3_golden_set_pinned_by_one_version_is_read_back_and_tampering_fails_closed(tmp_path):
    bucket, prefix = "golden-test-models", "models/golden/clips/"
    with MotoServer(tmp_path / "moto.log") as moto:
        aws = {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": moto.endpoint_url, "AWS_DEFAULT_REGION": "us-east-1"}
        s3 = boto3.client(
            "s3",
            endpoint_url=moto.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="demo",
            aws_secret_access_key="demo",  # moto's fake key
        )
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        uploaded = upload_golden_set(s3, CLIPS, bucket, prefix)
        assert uploaded.clips == 5 and uploaded.uri.startswith(f"s3://{bucket}/{prefix}?versionId=")

        # A later overwrite of a clip does not change what the pinned set reads.
        s3.put_object(Bucket=bucket, Key=prefix + "clip1_en-us_m3.wav", Body=b"RIFF not audio")
        server = ServerProcess(
            {**aws, "GOLDEN_SET": uploaded.uri, "MODEL_CACHE_DIR": str(tmp_path / "cache")}
        )
        try:
            ready = server.wait_for("server_ready")
            assert ready["golden_set"] == uploaded.uri and ready["golden_clips"] == 5
            assert ready["golden_wer"] <= 0.2
        finally:
            server.kill()

        # A manifest version that does not exist: fail closed, naming the object.
        missing = uploaded.uri.split("?")[0] + "?versionId=nonexistent"
        server = ServerProcess({**aws, "GOLDEN_SET": missing, "MODEL_CACHE_DIR": str(tmp_path / "cache2")})
        try:
            assert server.finish(timeout=90) == EXIT_GOLDEN_UNREADABLE
        finally:
            server.kill()
        (unreadable,) = server.events("golden_set_unreadable")
        assert f"s3://{bucket}/{prefix}transcripts.json version nonexistent" in unreadable["error"]


# ------------------------------------------------------------------ the manifest and the scoring
def test_manifest_shapes_are_accepted_and_bad_entries_are_named():
    plain = parse_manifest(b'{"a.wav": "Hello, World."}', "t")
    listed = parse_manifest(b'[{"file": "a.wav", "text": "hello world"}]', "t")
    assert plain[0].file == listed[0].file == "a.wav"
    for bad, message in [
        (b"{", "not valid JSON"),
        (b"{}", "lists no clips"),
        (b'{"../etc/passwd": "x"}', "plain file name"),
        (b'{"a.wav": ""}', "non-empty text"),
        (b'{"a.wav": {"text": "x", "sha256": "nothex"}}', "sha256 must be"),
        (b"42", "expected an object"),
    ]:
        with pytest.raises(GoldenSetError, match=message):
            parse_manifest(bad, "t")


def test_a_local_clip_that_does_not_match_its_pinned_sha256_is_refused(tmp_path):
    (tmp_path / "a.wav").write_bytes((CLIPS / "clip1_en-us_m3.wav").read_bytes())
    manifest = {"a.wav": {"text": "the blue street", "sha256": "0" * 64}}
    (tmp_path / "transcripts.json").write_text(json.dumps(manifest))
    with pytest.raises(GoldenSetError, match="the manifest pins 0000"):
        load_local(tmp_path)


def test_golden_location_pins_the_manifest_and_requires_a_version():
    location = golden_location("s3://b/models/golden/demo/?versionId=v1")
    assert (location.bucket, location.key, location.version_id) == (
        "b",
        "models/golden/demo/transcripts.json",
        "v1",
    )
    with pytest.raises(GoldenSetError, match="not pinned"):
        golden_location("s3://b/models/golden/demo/")


def test_scoring_ignores_case_and_punctuation_but_counts_word_errors():
    assert score_clip("a", "Hello, World.", "hello world").wer == 0.0
    assert score_clip("a", "the blue street", "the glue street").wer == pytest.approx(1 / 3)
    assert score_clip("a", "the blue street", "").wer == 1.0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GOLDEN_MAX_WER": "1.5"}, "golden_max_wer must be a WER fraction 0..1"),
        ({"GOLDEN_MAX_WER": "low"}, "GOLDEN_MAX_WER must be a number"),
        ({"GOLDEN_SET": "s3://b/models/golden/x/"}, "GOLDEN_SET must pin a version"),
    ],
)
def test_bad_gate_settings_are_refused_by_name(env, message):
    with pytest.raises(SettingsError, match=message):
        load_settings([], env)
