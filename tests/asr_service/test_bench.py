"""The load generator end to end at N=1 (a real server process, real-time paced speech)."""

from __future__ import annotations

import json

import pytest

from bench import loadgen
from tests.asr_service.test_server_real_model import _write_checkpoint


def test_percentile_and_table():
    assert loadgen.percentile([3.0, 1.0, 2.0, 4.0], 0.5) == 3.0
    step = loadgen.StepResult(2, 50.0, 120.0, 30.0, 80.0, 4.0, 40.0, 3.0, 500.0, 10.0, 2, 9, [])
    assert step.meets(300) and not step.meets(100)
    assert "| 2 | 50.0 | 120.0 |" in loadgen.table([step], 300)
    assert "| 2 ✗ |" in loadgen.table([step], 100)


@pytest.mark.slow
def test_bench_runs_a_real_server_and_writes_its_table(tmp_path):
    model = tmp_path / "model.pt"
    _write_checkpoint(model)
    out = tmp_path / "results"
    assert (
        loadgen.main(
            ["--streams", "1,2", "--seconds", "2", "--out", str(out), "--", "--model-path", str(model)]
        )
        == 0
    )
    (report,) = out.glob("*.md")
    text = report.read_text()
    assert "| streams | partial p50 ms |" in text and "Capacity:" in text
    data = json.loads(next(out.glob("*.json")).read_text())
    assert [s["streams"] for s in data["steps"]] == [1, 2]
    assert all(s["partials"] > 0 and s["server_rss_mb"] > 0 for s in data["steps"])
