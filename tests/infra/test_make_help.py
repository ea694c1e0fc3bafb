"""`make help`: every documented target is listed once, under a group of what a user does."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GROUPS = ("run", "test", "deploy", "operate", "model", "develop", "other")
TARGET = re.compile(r"^([a-zA-Z0-9_.-]+):.*## ", re.MULTILINE)

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def documented_targets() -> set[str]:
    files = [ROOT / "Makefile", *sorted((ROOT / "mk").glob("*.mk"))]
    return {name for path in files for name in TARGET.findall(path.read_text(encoding="utf-8"))}


def listing(text: str) -> dict[str, str]:
    """target -> the group heading it is printed under."""
    found: dict[str, str] = {}
    group = None
    for line in text.splitlines():
        if line and not line.startswith(" "):
            group = line.rstrip(":")
        elif line.strip():
            target = line.split()[0]
            assert target not in found, f"{target} listed twice"
            assert group is not None, f"{target} listed before any group heading"
            found[target] = group
    return found


def test_every_documented_target_is_listed_under_a_known_group():
    result = subprocess.run(
        ["make", "--no-print-directory", "help"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    listed = listing(result.stdout)
    assert set(listed) == documented_targets()
    assert set(listed.values()) <= set(GROUPS), set(listed.values()) - set(GROUPS)
    # The everyday front doors sit where a newcomer looks for them.
    assert listed["demo"] == "run" and listed["test"] == "test" and listed["sam-deploy"] == "deploy"
    headings = [line.rstrip(":") for line in result.stdout.splitlines() if line and line[0] != " "]
    assert headings == [g for g in GROUPS if g in headings]  # groups in the documented order


def test_a_target_with_no_group_marker_lands_in_other(tmp_path):
    (tmp_path / "Makefile").write_text("##@ run\nserve: ## Serve\n", encoding="utf-8")
    (tmp_path / "new.mk").write_text("fresh: dep ## A part someone just added\n", encoding="utf-8")
    result = subprocess.run(
        ["awk", "-f", str(ROOT / "mk" / "help.awk"), "Makefile", "new.mk"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert listing(result.stdout) == {"serve": "run", "fresh": "other"}
    assert result.stdout.index("run:") < result.stdout.index("other:")
