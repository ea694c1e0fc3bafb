"""scripts/import_cycles.py: finds a cycle built on purpose, names it as a chain, passes the tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from scripts.import_cycles import DEFAULT_PACKAGES, ROOT, find_cycles, import_graph

SCRIPT = ROOT / "scripts" / "import_cycles.py"


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False, timeout=60
    )


def test_a_cycle_through_three_modules_is_reported_as_a_chain_and_fails(tmp_path):
    write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/engine.py": "from pkg.strategies import fast\n",
            "pkg/strategies/__init__.py": "",
            # A lazy, relative import still closes the loop for a reader.
            "pkg/strategies/fast.py": "def f():\n    from ..results import Segment\n",
            "pkg/results.py": "import pkg.engine\n",
            "pkg/leaf.py": "from pkg import results\n",
        },
    )
    result = run("--root", str(tmp_path), "pkg")
    assert result.returncode == 1
    assert "import cycle: pkg.engine -> pkg.strategies.fast -> pkg.results -> pkg.engine" in result.stdout
    assert "1 cycle(s)" in result.stdout


def test_imports_of_names_and_of_outside_packages_make_no_cycle(tmp_path):
    write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.a import A\n",  # a package re-exporting its submodule
            "pkg/a.py": "import json\nfrom pkg.b import helper\nA = 1\n",
            "pkg/b.py": "from typing import Any\nhelper: Any = None\n",
        },
    )
    result = run("--root", str(tmp_path), "pkg")
    assert result.returncode == 0, result.stdout
    assert "0 cycle(s)" in result.stdout


def test_the_project_has_no_import_cycle():
    graph = import_graph(ROOT, DEFAULT_PACKAGES)
    assert "asr_service.engine" in graph and "ezspeech_common" in graph  # the tree was really read
    assert find_cycles(graph) == []
