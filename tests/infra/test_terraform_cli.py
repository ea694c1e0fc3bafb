"""The terraform binary's own checks: fmt, validate, and `terraform test` with a mocked provider.

They run offline against a local copy of the AWS provider (a plugin directory: TF_PLUGIN_DIR, or
/opt/tf-plugins where this project's machines have it) and skip, saying why, when either the
binary or the provider is missing. The configuration is copied to a temporary directory so that
`terraform init` leaves no .terraform/ or lock file in the repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.infra.helpers import TERRAFORM_DIR

PROVIDER = Path("registry.terraform.io/hashicorp/aws")


def _plugin_dir() -> Path | None:
    for candidate in (os.environ.get("TF_PLUGIN_DIR"), "/opt/tf-plugins"):
        if candidate and (Path(candidate) / PROVIDER).is_dir():
            return Path(candidate)
    return None


TERRAFORM = shutil.which("terraform")
PLUGIN_DIR = _plugin_dir()
pytestmark = [
    pytest.mark.skipif(TERRAFORM is None, reason="terraform binary not on PATH"),
    pytest.mark.skipif(
        PLUGIN_DIR is None,
        reason="no local AWS provider (set TF_PLUGIN_DIR to a plugin directory holding "
        "registry.terraform.io/hashicorp/aws); the tests never download it",
    ),
]


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 120) -> str:
    assert TERRAFORM is not None
    result = subprocess.run(
        [TERRAFORM, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"terraform {' '.join(args)} failed:\n{output}"
    return output


@pytest.fixture(scope="module")
def terraform_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    config = tmp_path_factory.mktemp("tfcli") / "terraformrc"
    config.write_text("")  # no user CLI config: no credentials helpers, no network mirrors
    return {
        **os.environ,
        "TF_CLI_CONFIG_FILE": str(config),
        "TF_IN_AUTOMATION": "1",
        "CHECKPOINT_DISABLE": "1",  # no version check call home
        "TF_INPUT": "0",
    }


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory, terraform_env: dict[str, str]) -> Iterator[Path]:
    workdir = tmp_path_factory.mktemp("tf") / "terraform"
    skip = shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate*")
    shutil.copytree(TERRAFORM_DIR, workdir, ignore=skip)
    _run(["init", "-backend=false", "-no-color", f"-plugin-dir={PLUGIN_DIR}"], workdir, terraform_env)
    yield workdir


def test_terraform_fmt_is_clean(terraform_env: dict[str, str]) -> None:
    args = ["fmt", "-check", "-recursive", "-diff", "-no-color", str(TERRAFORM_DIR)]
    _run(args, TERRAFORM_DIR, terraform_env)


@pytest.mark.slow  # 5-15 s: the provider schema is large
def test_terraform_validate(initialised: Path, terraform_env: dict[str, str]) -> None:
    output = _run(["validate", "-no-color"], initialised, terraform_env)
    assert "The configuration is valid" in output


@pytest.mark.slow  # 10-30 s: two mocked applies and two plans
def test_terraform_test_gpu_and_cpu_modes_with_mocked_provider(
    initialised: Path, terraform_env: dict[str, str]
) -> None:
    """terraform/tests/core.tftest.hcl: evaluates both capacity modes and the input guards."""
    output = _run(["test", "-no-color"], initialised, terraform_env, timeout=300)
    assert "0 failed" in output
    for run in (
        "gpu_mode_prod",
        "cpu_mode_dev",
        "idle_timeout_below_300_is_rejected",
        "workers_per_task_is_passed_as_workers",
        "fractional_workers_per_task_is_rejected",
        "dashboard_renders_for_the_stack",  # dashboard.tftest.hcl
        "automation_stack_name_can_be_overridden",
    ):
        assert f'run "{run}"... pass' in output
