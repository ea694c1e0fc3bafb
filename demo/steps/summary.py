"""Step 9: every process stopped, then the summary."""

from __future__ import annotations

from demo.flow import DemoRun, short_arn
from demo.latency import latency_summaries


def step_10_cleanup(run: DemoRun) -> None:
    say, result = run.say, run.result
    say.step(10, "Clean up and summary", "Every process the demo started is stopped.")
    if run.serving is not None and run.serving.running():
        # What an operator's scraper (and, as EMF, CloudWatch) sees: read back before the stop.
        result.latency = latency_summaries(run.serving.prometheus_text())
        say.say("Latency the serving task measured itself (GET /metrics histograms, server side):")
        for kind in ("partial", "final"):
            say.fact(f"  {kind}", result.latency.get(kind, "not reported"))
        stop = run.serving.stop()
        say.fact("serving task SIGTERM", f"exited {stop.exit_code} after {stop.seconds:.1f} s")
    run.close()
    say.fact("moto", "stopped")
    say.fact("processes left running", result.tasks_left_running)
    say.say("Model versions:")
    for label, model in result.models.items():
        revision = result.revisions.get(label, "")
        say.fact(f"  {label}", f"{model.version_id}  sha256 {model.sha256[:16]}…  → {short_arn(revision)}")
    say.say("Timings:")
    say.block(
        [f"{label:<50} {seconds:6.1f} s" for label, seconds in result.timings.items()], prefix="       "
    )
