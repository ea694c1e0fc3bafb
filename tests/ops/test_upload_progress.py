"""`make upload-model`: multipart upload, and progress that shows on a terminal and stays out of logs.

The two ways are run for real: the CLI in a child process whose stderr is a pseudo-terminal, and
the same CLI with stderr on a pipe (what CI captures), both against a moto server on loopback.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import io
import json
import os
import pty
import select
import socket
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from ops import upload_model as ops_upload
from ops.progress import progress
from tests.functions.helpers import BUCKET, Platform

ROOT = Path(__file__).resolve().parents[2]
MIB = 2**20


def _weights(size: int) -> bytes:
    return hashlib.sha256(b"seed").digest() * (size // 32) + b"x" * (size % 32)


def test_a_large_checkpoint_goes_up_in_parts_each_checked_by_s3(platform: Platform, tmp_path: Path):
    path = tmp_path / "big.pt"
    content = _weights(11 * MIB)  # three 5 MiB parts, the last one short
    path.write_bytes(content)
    log = io.StringIO()
    uploaded = ops_upload.upload_model(
        platform.clients.s3, path, BUCKET, "models/big.pt", part_size=5 * MIB, stream=log
    )
    s3 = platform.clients.s3
    part = s3.head_object(Bucket=BUCKET, Key="models/big.pt", VersionId=uploaded.version_id, PartNumber=1)
    assert part["PartsCount"] == 3
    head = s3.head_object(Bucket=BUCKET, Key="models/big.pt", VersionId=uploaded.version_id)
    assert head["Metadata"]["sha256"] == uploaded.sha256 == hashlib.sha256(content).hexdigest()
    body = s3.get_object(Bucket=BUCKET, Key="models/big.pt", VersionId=uploaded.version_id)["Body"].read()
    assert body == content and uploaded.size == len(content)
    # Not a terminal: two lines per phase, each naming the file, no bar redraws.
    lines = log.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == ["sha256 big.pt"] * 2 + ["upload big.pt"] * 2
    assert lines[-1].startswith("upload big.pt: done, 11.0 MiB in ") and "\r" not in log.getvalue()


def test_a_failed_part_aborts_the_multipart_upload(platform: Platform, tmp_path: Path):
    path = tmp_path / "big.pt"
    path.write_bytes(_weights(11 * MIB))
    s3 = platform.clients.s3

    class FailingSecondPart:
        def __getattr__(self, name: str) -> Any:
            return getattr(s3, name)

        def upload_part(self, **kwargs: Any) -> Any:
            if kwargs["PartNumber"] == 2:
                raise ConnectionResetError("network gone")
            return s3.upload_part(**kwargs)

    with pytest.raises(ConnectionResetError):
        ops_upload.upload_model(
            FailingSecondPart(),  # type: ignore[arg-type]
            path,
            BUCKET,
            "models/big.pt",
            part_size=5 * MIB,
            stream=io.StringIO(),
        )
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert s3.list_object_versions(Bucket=BUCKET, Prefix="models/big.pt").get("Versions", []) == []


def test_part_sizes_below_the_s3_minimum_are_refused(platform: Platform, tmp_path: Path):
    path = tmp_path / "m.pt"
    path.write_bytes(b"w" * 2048)
    with pytest.raises(ValueError, match="minimum"):
        ops_upload.upload_model(platform.clients.s3, path, BUCKET, "models/m.pt", part_size=MIB)


def test_a_failed_phase_prints_no_done_line():
    log = io.StringIO()
    with pytest.raises(OSError), progress(100, "upload x", stream=log) as report:
        report.update(40)
        raise OSError("disk gone")
    assert log.getvalue() == "upload x: 100 B ...\n"


# ------------------------------------------------------------------------------ the CLI, for real
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def moto_endpoint() -> Iterator[str]:
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    try:
        yield url
    finally:
        server.stop()


def _cli(endpoint: str, path: Path) -> tuple[list[str], dict[str, str]]:
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'functions/common'}",
        "COLUMNS": "100",
    }
    args = [sys.executable, "-m", "ops.upload_model", str(path), "--bucket", BUCKET, "--part-size-mib", "5"]
    return args, env


def _read_all(fd: int, process: subprocess.Popen[bytes], timeout: float = 60) -> bytes:
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the child closed its side
                break
            if not chunk:
                break
            chunks.append(chunk)
        elif process.poll() is not None:
            break
    return b"".join(chunks)


@pytest.mark.slow  # a child process and a moto server: a few seconds
def test_on_a_terminal_the_upload_shows_a_bar_with_bytes_rate_and_eta(moto_endpoint: str, tmp_path: Path):
    path = tmp_path / "asr.pt"
    path.write_bytes(_weights(11 * MIB))
    args, env = _cli(moto_endpoint, path)
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=follower, cwd=ROOT)
    os.close(follower)
    try:
        shown = _read_all(leader, process).decode(errors="replace")
        stdout = process.communicate(timeout=60)[0].decode()
    finally:
        os.close(leader)
    assert process.returncode == 0, shown
    assert "\r" in shown  # redrawn in place, the way a bar is
    for phase in ("sha256 asr.pt", "upload asr.pt"):
        final = [line for line in shown.replace("\r", "\n").splitlines() if line.startswith(phase)][-1]
        assert "100%" in final and "11.0M/11.0M" in final, final  # bytes done / total
        assert "B/s]" in final and "<00:00" in final, final  # rate and time left
    # stdout still carries exactly the machine-readable line.
    uploaded = json.loads(stdout)
    assert (
        uploaded["size"] == 11 * MIB and uploaded["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    )


@pytest.mark.slow
def test_in_a_log_the_upload_prints_a_few_plain_lines(moto_endpoint: str, tmp_path: Path):
    path = tmp_path / "asr.pt"
    path.write_bytes(_weights(11 * MIB))
    args, env = _cli(moto_endpoint, path)
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr and "%|" not in result.stderr  # no bar in CI logs
    assert result.stderr.splitlines() == [
        "sha256 asr.pt: 11.0 MiB ...",
        result.stderr.splitlines()[1],
        "upload asr.pt: 11.0 MiB ...",
        result.stderr.splitlines()[3],
    ]
    assert all(line.endswith("MiB/s)") for line in result.stderr.splitlines()[1::2])
    digest = json.loads(result.stdout)["sha256"]
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    head = s3.head_object(Bucket=BUCKET, Key="models/asr.pt")
    assert head["Metadata"]["sha256"] == digest
    assert base64.b64decode(
        s3.head_object(Bucket=BUCKET, Key="models/asr.pt", ChecksumMode="ENABLED")["ChecksumSHA256"].split(
            "-"
        )[0]
    )
