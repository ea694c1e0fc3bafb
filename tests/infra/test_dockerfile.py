"""Static checks of the Dockerfile and its build context (the image itself is built and run by
`make image-test` with podman). hadolint runs here too when .venv-tools has it."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from image import preflight
from tests.infra.helpers import DOCKERFILE, ROOT, Dockerfile, exec_form, read_dockerfile

PUBLIC_BASE = "python:3.11-slim-bookworm"


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return read_dockerfile()


def test_base_image_defaults_to_the_public_python_image(dockerfile: Dockerfile) -> None:
    assert dockerfile.global_args["BASE_IMAGE"] == PUBLIC_BASE
    assert [stage.base for stage in dockerfile.stages] == ["${BASE_IMAGE}", "${BASE_IMAGE}"]


def test_multi_stage_venv_from_the_pinned_requirements(dockerfile: Dockerfile) -> None:
    builder, runtime = dockerfile.stages
    assert builder.name == "builder"
    runs = " ".join(builder.all("RUN"))
    assert "python -m venv /opt/venv" in runs
    assert "-r /tmp/requirements/service.txt" in runs
    assert any("requirements/service.txt" in copy for copy in builder.all("COPY"))
    assert "COPY --from=builder /opt/venv /opt/venv" in [f"COPY {c}" for c in runtime.all("COPY")]
    # The runtime stage installs no Python packages of its own: everything comes from the pins.
    assert not any("pip install" in run for run in runtime.all("RUN"))


def test_runtime_has_libsndfile_and_no_extra_tools(dockerfile: Dockerfile) -> None:
    runs = " ".join(dockerfile.final.all("RUN"))
    assert re.search(r"apt-get install [^&]*\blibsndfile1\b", runs)
    assert "--no-install-recommends" in runs and "rm -rf /var/lib/apt/lists/*" in runs
    commands = " ".join(
        i.args for stage in dockerfile.stages for i in stage.instructions if i.keyword != "ENV"
    )
    assert not re.search(r"\b(curl|wget)\b", commands), "no download tools in the image"


def test_server_code_and_demo_model_are_copied(dockerfile: Dockerfile) -> None:
    assert "asr_service/ /app/asr_service/" in dockerfile.final.all("COPY")
    assert dockerfile.final.all("WORKDIR") == ["/app"]


def test_runs_as_a_numeric_non_root_user_that_exists(dockerfile: Dockerfile) -> None:
    users = dockerfile.final.all("USER")
    assert len(users) == 1
    uid, _, gid = users[0].partition(":")
    assert uid.isdigit() and int(uid) >= 1000 and gid.isdigit()
    runs = " ".join(dockerfile.final.all("RUN"))
    assert f"useradd --system --uid {uid}" in runs and f"--gid {gid}" in runs
    # Installed files readable by that user (and owned by root, so not writable by it); the venv
    # is made readable in the builder so the runtime stage does not copy it into a second layer.
    assert "chmod -R a+rX /app" in runs and "/opt/venv" not in runs
    assert "chmod -R a+rX /opt/venv" in " ".join(dockerfile.stages[0].all("RUN"))


def test_entrypoint_is_exec_form_and_reads_settings_from_env(dockerfile: Dockerfile) -> None:
    entrypoints = dockerfile.final.all("ENTRYPOINT")
    assert [exec_form(e) for e in entrypoints] == [["python", "-m", "asr_service"]]
    for cmd in dockerfile.final.all("CMD"):
        assert not any("$" in part for part in exec_form(cmd)), "exec form never expands variables"
    env = " ".join(dockerfile.final.all("ENV"))
    for setting in ("SERVER_HOST=0.0.0.0", "SERVER_PORT=8765", "HEALTH_PORT=8080", "DEVICE=auto"):
        assert setting in env
    assert (ROOT / "asr_service" / "__main__.py").is_file(), "python -m asr_service needs __main__.py"


def test_healthcheck_uses_python_urllib_on_the_health_port(dockerfile: Dockerfile) -> None:
    (healthcheck,) = dockerfile.final.all("HEALTHCHECK")
    options, _, command = healthcheck.partition(" CMD ")
    assert "--start-period=" in options
    argv = exec_form(command)
    assert argv[:2] == ["python", "-c"]
    assert "urllib.request.urlopen" in argv[2] and "/health" in argv[2]
    assert "os.environ.get('HEALTH_PORT', '8080')" in argv[2]


def test_stop_signal_and_ports(dockerfile: Dockerfile) -> None:
    assert dockerfile.final.all("STOPSIGNAL") == ["SIGTERM"]
    assert dockerfile.final.all("EXPOSE") == ["8765 8080"]


def test_writable_scratch_is_declared_for_a_read_only_root(dockerfile: Dockerfile) -> None:
    assert dockerfile.final.all("VOLUME") == ['["/tmp"]']
    assert "chmod 1777 /tmp" in " ".join(dockerfile.final.all("RUN"))


# ------------------------------------------------------------------------------ build context
@pytest.fixture(scope="module")
def ignore_patterns() -> list[str]:
    return preflight.read_dockerignore(ROOT)


@pytest.mark.parametrize(
    "path",
    [
        "requirements/service.txt",
        "requirements/constraints.txt",
        "asr_service/__main__.py",
        "asr_service/ui/static/index.html",
        "asr_service/model_files/demo/demo.pt",
    ],
)
def test_build_context_holds_what_the_image_needs(ignore_patterns: list[str], path: str) -> None:
    assert not preflight.is_ignored(path, ignore_patterns)


@pytest.mark.parametrize(
    "path",
    ["asr_client/stream.py", "asr_client/transcribe.py", "ezspeech_convert/source.py", "training/train.py"],
)
def test_clients_and_the_converter_stay_out_of_the_image(ignore_patterns: list[str], path: str) -> None:
    assert preflight.is_ignored(path, ignore_patterns)


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        "tests/conftest.py",
        "asr_service/__pycache__/x.pyc",
        "terraform/main.tf",
    ],
)
def test_build_context_leaves_out_the_rest(ignore_patterns: list[str], path: str) -> None:
    assert preflight.is_ignored(path, ignore_patterns)


def test_every_copied_source_is_in_the_build_context(
    dockerfile: Dockerfile, ignore_patterns: list[str]
) -> None:
    for stage in dockerfile.stages:
        for copy in stage.all("COPY"):
            if copy.startswith("--from="):
                continue
            *sources, _destination = [part for part in copy.split() if not part.startswith("--")]
            for source in sources:
                assert (ROOT / source).exists(), f"COPY source {source} is missing"
                assert not preflight.is_ignored(source.rstrip("/"), ignore_patterns), f"{source} is ignored"


def test_hadolint_is_clean() -> None:
    hadolint = ROOT / ".venv-tools" / "bin" / "hadolint"
    binary = str(hadolint) if hadolint.exists() else shutil.which("hadolint")
    if binary is None:
        pytest.skip("hadolint not installed (make tools-venv)")
    result = subprocess.run(
        [binary, str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
