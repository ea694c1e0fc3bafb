"""Step 8: client tokens rotated while a user streams."""

from __future__ import annotations

import time

from demo.flow import DemoError, DemoRun, short_arn
from demo.steps.common import (
    DEMO_CLIENT,
    DemoInputs,
    masked,
    masked_table,
)


def step_8_rotate_tokens(run: DemoRun, inputs: DemoInputs) -> None:
    say, result = run.say, run.result
    say.step(
        8,
        "Rotate the client token without dropping a session",
        "`make rotate-tokens` writes a new version of the secret (the new token's SHA-256 beside the "
        "previous one) and rolls the service like a model: a revision pinning that version, then "
        "UpdateService. ECS starts the new task beside the old one; the old one keeps the tokens it "
        "started with until its open sessions have ended.",
    )
    old, old_token = run.serving, run.token
    if old is None or old_token is None:
        raise DemoError("no task is serving")
    live = run.open_stream(old, inputs.live_clip, old_token)
    deadline = time.monotonic() + 30
    while old.active_sessions() < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    say.say(f"A user is streaming {inputs.live_clip.name} to the serving task with the current token.")
    before = run.service_task_definition()
    rotate_started = time.monotonic()
    report = run.tokens_tool("rotate", "--client", DEMO_CLIENT)
    result.timings["rotate-tokens → new revision"] = time.monotonic() - rotate_started
    new_token = report["new_tokens"][DEMO_CLIENT]
    revision = run.service_task_definition()
    previous = report["rollout"]["previous_version_id"]
    say.fact(
        "secret version the service runs",
        f"{previous[:8] + '…' if previous else 'AWSCURRENT at task start'} → {report['secret_version'][:8]}…",
    )
    say.fact("service task definition", f"{short_arn(before)} → {short_arn(revision)}")
    say.fact("new token, shown once", masked(new_token))
    if revision == before or revision != report["rollout"]["task_definition_arn"]:
        raise DemoError("the token rotation did not move the service to a new revision")
    new = run.start_task("tokens", revision)
    result.token_revision_env = dict(new.container_env)
    say.fact("new task's MODEL_URI", new.container_env["MODEL_URI"])
    say.fact("new task's AUTH_TOKENS", masked_table(new.container_env["AUTH_TOKENS"]))
    ready_s = new.wait_ready()
    result.timings["task start → ready (new tokens)"] = ready_s
    say.fact("new task ready after", f"{ready_s:.1f} s (pid {new.pid})")
    with_new = run.try_client(new, new_token)
    with_old = run.try_client(new, old_token)
    say.fact("new task, new token", f"exit {with_new.exit_code}: {with_new.text!r}")
    say.fact("new task, previous token", f"exit {with_old.exit_code} (valid until retired)")
    # ECS's part: the old task leaves the target group (no new sessions reach it) and the ALB
    # gives open connections the deregistration delay (90 s) to finish; then SIGTERM.
    say.say("ECS deregisters the old task; its open session carries on with the previous token:")
    drain_started = time.monotonic()
    while old.active_sessions() > 0 and time.monotonic() - drain_started < 90:
        time.sleep(0.2)
    code, final, _notes = live.finish()
    stop = old.stop()
    summaries = [
        r for r in old.log_events() if r.get("event") == "session_summary" and r.get("client") == DEMO_CLIENT
    ]
    live_summary = summaries[-1] if summaries else {}
    say.fact("the live user's session", f'exit {code}, final text: "{final}"')
    say.fact(
        "  its session_summary",
        f"client={live_summary.get('client')} close_code={live_summary.get('close_code')} "
        f"audio_seconds={live_summary.get('audio_seconds')}",
    )
    say.fact("old task", f"then SIGTERM: exited {stop.exit_code} after {stop.seconds:.1f} s")
    result.rotation = {
        "report": report,
        "new_token_on_new_task": with_new,
        "old_token_on_new_task": with_old,
        "old_task_exit": stop.exit_code,
        "live_exit": code,
        "live_final": final,
        "live_summary": live_summary,
        "revision": revision,
        "previous_revision": before,
    }
    result.tokens["rotated"] = new_token
    run.token, run.serving = new_token, new
    say.say(
        "Once every client uses its new token: `make rotate-tokens ENV=... RETIRE=1` drops the previous "
        "one the same way (a new version, a new revision, a drained old task)."
    )
