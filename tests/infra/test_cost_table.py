"""scripts/cost_table.py: the README's cost tables are what the script computes from the bench results."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
README_COMMAND = re.compile(r'make cost-table RESULTS="([^"]+)"', re.S)


@pytest.fixture(scope="module")
def cost() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cost_table", ROOT / "scripts/cost_table.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["cost_table"] = module
    spec.loader.exec_module(module)
    return module


def _readme_files() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    (files,) = README_COMMAND.findall(readme)
    return files.replace("\\\n", " ").split()


def test_the_readme_table_is_the_scripts_output_for_the_documented_results(cost, capsys):
    assert cost.main([str(ROOT / f) for f in _readme_files()]) == 0
    generated = capsys.readouterr().out.strip()
    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- cost-table:start")
    body = readme[readme.index("\n", start) + 1 : readme.index("<!-- cost-table:end -->")].strip()
    assert body == generated, "README cost table is stale: run the make cost-table command above it"


def test_task_hour_prices_add_up(cost):
    # 2 vCPU, 4 GiB, 40 GiB ephemeral storage (20 GiB beyond the included 20).
    assert cost.fargate_task_hour(2048, 4096, 40) == pytest.approx(2 * 0.04048 + 4 * 0.004445 + 20 * 0.000111)
    assert cost.fargate_task_hour(1024, 2048, 20) == pytest.approx(0.04048 + 2 * 0.004445)
    assert cost.gpu_host_hour("g4dn.xlarge", 100) == pytest.approx(0.526 + 100 * 0.08 / 730)
    assert cost.per_1000_stream_hours(0.5, 200) == "$2.50" and cost.per_1000_stream_hours(1.0, 0) == "n/a"


def test_capacity_is_the_benchmarks_own_criterion_over_a_split_sweep(cost):
    import json

    from bench.loadgen import StepResult
    from bench.plot import group

    results = [json.loads((ROOT / f).read_text()) for f in _readme_files()]
    for series in group(results):
        meets = [n for n, step in series.steps.items() if StepResult(**step).meets(series.target_ms)]
        assert cost.capacity(series) == max(meets)
    assert sorted(cost.capacity(s) for s in group(results)) == [80, 200]


def test_the_night_is_read_from_the_sam_schedule(cost):
    stack = cost.read_stack()
    assert stack.schedule[:2] == ("cron(0/30 22-23 ? * * *)", "cron(0 7 ? * * *)")
    assert stack.night_hours == 9
    assert cost._first_run_hour("cron(30 6 ? * * *)") == 6.5
    assert set(stack.envs) == {"dev", "prod"} and stack.envs["prod"]["capacity_mode"] == "gpu"
    # Every GPU type the Terraform names has a price, the default included.
    assert stack.defaults["gpu_instance_type"] in stack.gpu_instance_types
    assert set(stack.gpu_instance_types) <= set(cost.EC2_HOUR)


def test_one_cpu_and_one_gpu_configuration_are_required(cost, capsys):
    only_cpu = [str(ROOT / f) for f in _readme_files() if "h200" not in f]
    assert cost.main(only_cpu) == 1
    assert "one CPU and one GPU" in capsys.readouterr().err
