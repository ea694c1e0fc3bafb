"""The demo's steps, one module per group. ``run_demo`` runs them in order and always cleans up."""

from __future__ import annotations

import time
from pathlib import Path

from demo.flow import DemoResult, DemoRun
from demo.narration import Narrator
from demo.steps.alerts import step_5_alerts_and_night
from demo.steps.common import DEMO_CLIENT, DemoInputs
from demo.steps.failures import step_6_corrupt_model, step_7_wrong_model
from demo.steps.image import step_9_ship_image
from demo.steps.rollout import step_3_upload_and_rollout, step_4_replace_task
from demo.steps.stack import step_1_stack, step_2_first_task
from demo.steps.summary import step_10_cleanup
from demo.steps.tokens import step_8_rotate_tokens

__all__ = ["DEMO_CLIENT", "DemoInputs", "run_demo"]


def run_demo(work_dir: Path, inputs: DemoInputs, say: Narrator) -> DemoResult:
    """The whole loop; always stops moto and every task, also when a step fails."""
    run = DemoRun(work_dir, say)
    run.result.clip = inputs.clip
    run.result.work_dir = work_dir
    run.result.reference_text = inputs.reference_text
    started = time.monotonic()
    try:
        step_1_stack(run, inputs)
        step_2_first_task(run, inputs)
        step_3_upload_and_rollout(run, inputs)
        step_4_replace_task(run, inputs)
        step_5_alerts_and_night(run)
        step_6_corrupt_model(run, inputs)
        step_7_wrong_model(run, inputs)
        step_8_rotate_tokens(run, inputs)
        step_9_ship_image(run)
        run.result.timings["whole demo"] = time.monotonic() - started
        step_10_cleanup(run)
    finally:
        run.close()
    return run.result
