"""The load generator end to end at N=1 (a real server process, real-time paced speech)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import loadgen, plot
from tests.asr_service.helpers import write_checkpoint


def test_percentile_and_table():
    assert loadgen.percentile([3.0, 1.0, 2.0, 4.0], 0.5) == 3.0
    step = loadgen.StepResult(2, 50.0, 120.0, 30.0, 80.0, 4.0, 40.0, 3.0, 500.0, 10.0, 2, 9, [])
    assert step.meets(300) and not step.meets(100)
    assert "| 2 | 50.0 | 120.0 |" in loadgen.table([step], 300)
    assert "| 2 ✗ |" in loadgen.table([step], 100)
    # A result file written before CPU per audio second was measured still renders, with a dash.
    assert "| 40.0 | — | 3.0 | — |" in loadgen.table([step], 300)


@pytest.mark.slow
def test_bench_runs_a_real_server_and_writes_its_table(tmp_path):
    model = tmp_path / "model.pt"
    write_checkpoint(model)
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
    # CPU per second of audio: the server's work on 2 s of speech per stream is real and bounded
    # (the demo-sized model needs a few ms per audio second; a whole core would be 1000).
    assert all(0 < s["server_cpu_ms_per_audio_s"] < 1000 for s in data["steps"])
    assert all(s["loadgen_cpu_ms_per_audio_s"] > 0 for s in data["steps"])
    (png,) = out.glob("*.png")  # the plot lands beside the Markdown, same stamp
    assert png.stem == report.stem and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"


def _result(machine: str, server_args: list[str], steps: list[tuple[int, float, int]]) -> dict:
    return {
        "machine": machine,
        "args": {"server_args": server_args, "seconds": 12.0, "target_ms": 300.0},
        "steps": [
            {
                "streams": n,
                "partial_p50_ms": p95 / 2,
                "partial_p95_ms": p95,
                "final_p50_ms": p95,
                "final_p95_ms": p95 * 2,
                "realtime_streams": ok,
            }
            for n, p95, ok in steps
        ],
    }


def test_a_sweep_run_in_parts_is_one_line_and_worker_counts_are_separate_lines():
    cpu = "2 CPUs (Intel), Linux 6.18, Python 3.11"
    series = plot.group(
        [
            _result(cpu, [], [(1, 30.0, 1), (20, 31.0, 20)]),
            _result(cpu, [], [(20, 35.0, 20), (80, 40.0, 80)]),  # re-measured 20: the later one wins
            _result(cpu, ["--workers", "2"], [(80, 25.0, 80)]),
        ]
    )
    assert [s.label for s in series] == ["2 vCPU: defaults", "2 vCPU: --workers 2"]
    assert [(st["streams"], st["partial_p95_ms"]) for st in series[0].sorted_steps()] == [
        (1, 30.0),
        (20, 35.0),
        (80, 40.0),
    ]
    assert plot.realtime_percent({"streams": 60, "realtime_streams": 57}) == 95.0


def test_the_plot_is_drawn_from_the_checked_in_results(tmp_path):
    import matplotlib.image

    files = sorted(RESULTS.glob("*.json"))
    assert files, "bench/results holds the measured runs"
    out = tmp_path / "bench.png"
    assert plot.main([*map(str, files), "--out", str(out)]) == 0
    image = matplotlib.image.imread(out)
    assert image.shape[0] > 400 and image.shape[1] > 1200  # three panels side by side
    # Every pixel the same would mean nothing was drawn.
    assert image.std() > 0.05
