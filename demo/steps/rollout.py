"""Steps 3-4: an upload rolls out through the real event path; the new task replaces the old one."""

from __future__ import annotations

import time

from demo.flow import DemoError, DemoRun, short_arn
from demo.steps.common import (
    DemoInputs,
    deliver_and_roll_out,
    drain_lines,
    show_golden_pass,
    upload,
)


def step_3_upload_and_rollout(run: DemoRun, inputs: DemoInputs) -> None:
    say = run.say
    say.step(
        3,
        "Upload a new checkpoint: S3 → EventBridge → model_rollout",
        "`make upload-model` (python -m ops.upload_model) puts the file under the same key with its "
        f"SHA-256 as object metadata; versioning gives it a new version id. {inputs.second_model_note}",
    )
    second, started = upload(run, "v2", inputs.second_model)
    say.fact("uploaded", f"{second.key} version {second.version_id}")
    say.fact("sha256 metadata", second.sha256)
    deliver_and_roll_out(run, "v2", second, started)
    revision = run.result.revisions["v2"]
    say.say("EventBridge delivers at least once, so the same event is handed over a second time:")
    families = run.clients.ecs.list_task_definitions(familyPrefix=run.names.task_family)["taskDefinitionArns"]
    run.invoke("model_rollout", run.last_event)
    families_after = run.clients.ecs.list_task_definitions(familyPrefix=run.names.task_family)[
        "taskDefinitionArns"
    ]
    run.result.duplicate_event_deployed_once = (
        families_after == families and run.service_task_definition() == revision
    )
    say.fact(
        "duplicate event",
        "no new revision, service unchanged (Powertools idempotency)"
        if run.result.duplicate_event_deployed_once
        else f"DEPLOYED AGAIN: {len(families)} → {len(families_after)} revisions",
    )


def step_4_replace_task(run: DemoRun, inputs: DemoInputs) -> None:
    say, result = run.say, run.result
    say.step(
        4,
        "Replace the task with one from the new revision",
        "ECS starts a task of the new revision beside the old one, waits for its health check, then "
        "sends the old one SIGTERM: it stops taking sessions (/ready 503), finishes open ones and exits.",
    )
    revision = result.revisions["v2"]
    old = run.serving
    if old is None:
        raise DemoError("no task is serving")
    new = run.start_task("v2", revision)
    result.revision_env["v2"] = dict(new.container_env)
    say.fact("task definition", short_arn(revision))
    say.fact("MODEL_URI", new.container_env["MODEL_URI"])
    say.fact("MODEL_SHA256", new.container_env["MODEL_SHA256"])
    say.fact("GOLDEN_SET (carried over)", new.container_env.get("GOLDEN_SET", "MISSING"))
    ready_s = new.wait_ready()
    result.timings["task start → ready (v2)"] = ready_s
    say.fact("new task ready after", f"{ready_s:.1f} s (pid {new.pid})")
    show_golden_pass(run, new)
    live = run.open_stream(old, inputs.live_clip)
    deadline = time.monotonic() + 30
    while old.active_sessions() < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2.0)  # let a couple of seconds of audio flow, so the session has words to finalise
    say.say(f"A user is streaming {inputs.live_clip.name} to the old task at real-time pace; now SIGTERM:")
    stop = old.stop()
    result.old_task_stop = stop
    code, final, notes = live.finish()
    result.live_stream_final = final
    drained = [r for r in old.log_events() if r.get("event") == "drain_finished"]
    result.drained_sessions = int(drained[-1].get("drained_sessions", 0)) if drained else 0
    say.fact("old task (v1)", f"exited {stop.exit_code} after {stop.seconds:.1f} s")
    result.timings["SIGTERM → old task exited (1 open stream)"] = stop.seconds
    say.block(drain_lines(old), prefix="       old task log │ ")
    say.fact("the live user's client", f'exit {code}, final text so far: "{final}"')
    say.block(notes[-1:], prefix="       client │ ")
    run.serving = new
    text = run.transcribe(new).text
    result.transcripts["v2"] = text
    say.transcript("reference", inputs.reference_text)
    say.transcript(f"model v1 ({result.models['v1'].version_id[:8]})", result.transcripts["v1"])
    say.transcript(f"model v2 ({result.models['v2'].version_id[:8]})", text)
