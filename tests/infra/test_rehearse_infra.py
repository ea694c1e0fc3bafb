"""`make rehearse-infra`: terraform/ applied against moto for dev and prod, its wiring checked, a
second plan empty, destroyed — and a reference broken on purpose fails it, naming what broke.

Both runs start together (each environment has its own moto server), so the module costs about
one rehearsal of wall time.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from demo.infra.rehearse import plugin_dir
from demo.infra.wiring import sam_parameters

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform binary not on PATH"),
    pytest.mark.skipif(plugin_dir() is None, reason="no local AWS provider mirror (TF_PLUGIN_DIR)"),
]
TIMEOUT_S = 600


def _start(*args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.Popen(
        [sys.executable, "-m", "demo.infra.rehearse", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture(scope="module")
def broken_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """terraform/ with the service-name SSM parameter pointing at a service that does not exist."""
    copy = tmp_path_factory.mktemp("broken") / "terraform"
    shutil.copytree(ROOT / "terraform", copy, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
    ssm = copy / "ssm.tf"
    text = ssm.read_text()
    good = '"service-name"        = aws_ecs_service.asr.name'
    assert good in text, "ssm.tf changed shape: update the line this test breaks"
    ssm.write_text(text.replace(good, '"service-name"        = "${aws_ecs_service.asr.name}-old"'))
    return copy


@pytest.fixture(scope="module")
def runs(broken_copy: Path) -> Iterator[dict[str, subprocess.Popen[str]]]:
    processes = {
        "both": _start("--env", "dev", "--env", "prod"),
        "broken": _start("--env", "dev", "--terraform-dir", str(broken_copy)),
    }
    yield processes
    for process in processes.values():
        if process.poll() is None:
            process.kill()
            process.wait()


def _finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    output, _ = process.communicate(timeout=TIMEOUT_S)
    return process.returncode, output


@pytest.mark.slow
def test_rehearse_infra_applies_checks_plans_empty_and_destroys_dev_and_prod(
    runs: dict[str, subprocess.Popen[str]],
) -> None:
    code, output = _finish(runs["both"])
    assert code == 0, output
    for env in ("dev", "prod"):
        line = re.search(
            rf"^PASS {env}: (\d+) resources, (\d+) wiring checks \((.*)\)$", output, re.MULTILINE
        )
        assert line, output
        assert int(line.group(1)) > 80 and int(line.group(2)) >= 15
        assert "destroy" in line.group(3)  # every step ran, destroy last


@pytest.mark.slow
def test_rehearse_infra_names_a_broken_reference(runs: dict[str, subprocess.Popen[str]]) -> None:
    code, output = _finish(runs["broken"])
    assert code == 1, output
    assert "FAIL dev" in output
    assert "no ACTIVE service 'ezspeech-dev-asr-old' in cluster 'ezspeech-dev'" in output


def test_sam_parameters_are_read_per_environment() -> None:
    dev, prod = sam_parameters(ROOT, "dev"), sam_parameters(ROOT, "prod")
    assert dev["ServiceName"] == "/ezspeech/dev/service-name"
    assert prod["ClusterName"] == "/ezspeech/prod/cluster-name"
    assert prod["TaskRoleNamePattern"] == "ezspeech-prod-*"
