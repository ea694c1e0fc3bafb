"""The static Dockerfile checks of `make image-test` (image/preflight.py): each broken variant
under broken_dockerfiles/ is refused with the check its header names; the real Dockerfile passes;
the same defects injected into the real Dockerfile are caught."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from image import broken_variants, preflight

REPO = Path(__file__).resolve().parents[2]
BROKEN = sorted((Path(__file__).parent / "broken_dockerfiles").glob("*.Dockerfile"))
STATIC_BROKEN = [path for path in BROKEN if "EXPECT-AFTER-BUILD" not in path.read_text()]
AFTER_BUILD_BROKEN = [path for path in BROKEN if path not in STATIC_BROKEN]


def expected_check(path: Path) -> str:
    match = re.search(r"^# EXPECT: ([a-z-]+)$", path.read_text(), flags=re.MULTILINE)
    assert match, f"{path.name} must name the check it breaks in a '# EXPECT: <check>' line"
    return match.group(1)


def checks_of(dockerfile: Path, context: Path = REPO) -> set[str]:
    return {problem.check for problem in preflight.check(dockerfile, context)}


@pytest.mark.parametrize("dockerfile", STATIC_BROKEN, ids=lambda p: p.stem)
def test_broken_dockerfile_is_refused_by_the_check_it_breaks(dockerfile: Path) -> None:
    assert checks_of(dockerfile) == {expected_check(dockerfile)}


def test_every_broken_variant_is_covered() -> None:
    expected = {expected_check(path) for path in STATIC_BROKEN}
    assert {"exec-form-variable", "copy-source-missing", "exec-form-json", "runtime-user"} <= expected


@pytest.mark.parametrize("dockerfile", AFTER_BUILD_BROKEN, ids=lambda p: p.stem)
def test_after_build_variant_looks_fine_to_the_static_checks(dockerfile: Path) -> None:
    # Its defect (files unreadable by the runtime user) shows only in the built image: that is
    # why `make image-test` runs an in-container check, and `make image-test-broken` proves it.
    assert checks_of(dockerfile) == set()
    needs_build, expected = broken_variants.expectations(dockerfile)
    assert needs_build and expected


def test_project_dockerfile_passes_preflight() -> None:
    problems = preflight.check(REPO / "Dockerfile", REPO)
    assert problems == [], "\n".join(map(str, problems))


def mutated(tmp_path: Path, change: str) -> Path:
    """The project's Dockerfile with one defect injected, written next to a copy-free context."""
    text = (REPO / "Dockerfile").read_text()
    if change == "variable":
        text, count = re.subn(
            r"^ENTRYPOINT .*$",
            'ENTRYPOINT ["python", "-m", "asr_service", "--port", "${SERVER_PORT}"]',
            text,
            flags=re.MULTILINE,
        )
        assert count == 1
    elif change == "missing-copy":
        text += "\nCOPY models/not-there.pt /app/model.pt\n"
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    return path


def test_variable_injected_into_real_entrypoint_is_caught(tmp_path: Path) -> None:
    assert checks_of(mutated(tmp_path, "variable")) == {"exec-form-variable"}


def test_missing_copy_injected_into_real_dockerfile_is_caught(tmp_path: Path) -> None:
    assert checks_of(mutated(tmp_path, "missing-copy")) == {"copy-source-missing"}


def write(tmp_path: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    for name, content in (files or {}).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(content)
    path = tmp_path / "Dockerfile"
    path.write_text(dockerfile)
    return path


GOOD_TAIL = 'USER app\nENTRYPOINT ["python", "-m", "asr_service"]\n'
HEAD = "ARG BASE_IMAGE=python:3.11-slim-bookworm\nFROM ${BASE_IMAGE} AS builder\n"


def test_copy_of_a_dockerignored_path_is_caught(tmp_path: Path) -> None:
    dockerfile = write(
        tmp_path,
        HEAD + "COPY models/demo.pt /app/\n" + GOOD_TAIL,
        {"models/demo.pt": "x", ".dockerignore": "**/*.pt\n"},
    )
    assert checks_of(dockerfile, tmp_path) == {"copy-source-ignored"}


def test_dockerignore_exception_keeps_a_path(tmp_path: Path) -> None:
    dockerfile = write(
        tmp_path,
        HEAD + "COPY models/demo.pt /app/\n" + GOOD_TAIL,
        {"models/demo.pt": "x", ".dockerignore": "models\n!models/demo.pt\n"},
    )
    assert checks_of(dockerfile, tmp_path) == set()


def test_copy_of_a_heredoc_is_not_a_missing_source(tmp_path: Path) -> None:
    dockerfile = write(tmp_path, HEAD + "COPY <<EOF /app/settings.ini\n[x]\nEOF\n" + GOOD_TAIL)
    assert checks_of(dockerfile, tmp_path) == set()


def test_copy_from_unknown_stage_is_caught(tmp_path: Path) -> None:
    dockerfile = write(
        tmp_path, HEAD + "FROM ${BASE_IMAGE}\nCOPY --from=bulider /opt/venv /opt/venv\n" + GOOD_TAIL
    )
    assert checks_of(dockerfile, tmp_path) == {"copy-from-stage"}


def test_sh_c_entrypoint_may_use_variables(tmp_path: Path) -> None:
    dockerfile = write(
        tmp_path, HEAD + 'USER app\nENTRYPOINT ["sh", "-c", "exec python -m x --port $PORT"]\n'
    )
    assert checks_of(dockerfile, tmp_path) == set()


def test_healthcheck_exec_form_variable_is_caught(tmp_path: Path) -> None:
    dockerfile = write(
        tmp_path,
        HEAD
        + 'HEALTHCHECK --interval=10s CMD ["curl", "-f", "http://127.0.0.1:$HEALTH_PORT/health"]\n'
        + GOOD_TAIL,
    )
    assert checks_of(dockerfile, tmp_path) == {"exec-form-variable"}


def test_parser_joins_continuations_skips_comments_and_heredocs() -> None:
    text = (
        "# syntax=docker/dockerfile:1\n"
        "FROM base AS b\n"
        "RUN apt-get update \\\n"
        "  # a comment inside the continuation\n"
        "  && apt-get install -y x\n"
        "RUN <<EOF\n"
        "COPY this-is-shell-not-an-instruction /\n"
        "EOF\n"
        "USER app\n"
    )
    instructions = preflight.parse(text)
    assert [(i.line, i.keyword) for i in instructions] == [(2, "FROM"), (3, "RUN"), (6, "RUN"), (9, "USER")]
    assert instructions[1].args == "apt-get update && apt-get install -y x"


def test_runner_preflight_only_fails_with_a_clear_message() -> None:
    broken = Path(__file__).parent / "broken_dockerfiles" / "shell_variable_in_exec_cmd.Dockerfile"
    result = subprocess.run(
        [sys.executable, "-m", "image.image_test", "--preflight-only", "--dockerfile", str(broken)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "[exec-form-variable]" in result.stderr
    assert "nothing was built" in result.stderr
