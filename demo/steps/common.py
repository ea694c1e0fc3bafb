"""What several steps share: the demo's inputs, its client, and how a step shows a rollout, a
handler's result, an alert or a task's log."""

from __future__ import annotations

import json
import re
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from demo.flow import DemoError, DemoRun, ModelVersion, short_arn
from demo.narration import Narrator
from demo.resources import (
    CONTAINER_NAME,
)
from demo.task import LocalTask

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The demo model reads its own clips without an error (measured WER 0.0); a wrong model reads
#: them at WER ~1.0. 0.1 leaves room for a retrained demo model and none for a broken one.
GOLDEN_MAX_WER = 0.1

#: The demo's one named client (AUTH_TOKENS maps client names to their tokens' SHA-256).
DEMO_CLIENT = "demo-app"


def masked(token: str) -> str:
    return f"{token[:4]}…({len(token)} characters)"


def masked_table(text: str) -> str:
    """AUTH_TOKENS as a task got it, digests shortened (it holds no usable token anyway)."""
    return re.sub(r"(sha256:[0-9a-f]{8})[0-9a-f]{56}", r"\1…", json.dumps(json.loads(text)))


@dataclass(frozen=True)
class DemoInputs:
    """The checkpoints and the clip the demo uses (see demo/models.py for where they come from)."""

    first_model: Path
    second_model: Path
    second_model_note: str
    corrupt_model: Path
    #: Loads fine, transcribes badly (token list rotated): what the golden-set gate is for.
    wrong_model: Path
    #: The demo model's golden set: its demo clips (transcripts.json beside the WAVs).
    golden_set: Path
    clip: Path
    reference_text: str
    #: A longer clip a "live user" streams at real-time pace while the old task drains.
    live_clip: Path


def upload(run: DemoRun, label: str, path: Path) -> tuple[ModelVersion, float]:
    """Upload a checkpoint the `make upload-model` way; the version and when the upload started
    (upload → new revision is timed from there)."""
    started = time.monotonic()
    model = run.upload_model(path)
    run.result.models[label] = model
    return model, started


def deliver_and_roll_out(
    run: DemoRun, label: str, model: ModelVersion, upload_started: float
) -> dict[str, Any]:
    """Feed the delivered event for ``model`` to model_rollout; returns the handler's result."""
    say, result = run.say, run.result
    event = run.wait_for_model_event(model.version_id)
    delivered = time.monotonic()
    result.event_was_delivered_by_moto = True
    detail = event["detail"]
    say.say("moto emitted the S3 event to EventBridge; the rule matched it and delivered it to SQS:")
    say.fact("detail-type / source", f"{event['detail-type']} / {event['source']}")
    say.fact("object key", detail["object"]["key"])
    say.fact("version-id", detail["object"]["version-id"])
    say.fact("etag / sequencer", f"{detail['object']['eTag']} / {detail['object']['sequencer']}")
    before = run.service_task_definition()
    invocation = run.invoke("model_rollout", event)
    revision = run.service_task_definition()
    result.timings[f"upload → new revision ({label})"] = time.monotonic() - upload_started
    result.timings[f"event delivered → handler done ({label})"] = time.monotonic() - delivered
    say.say(f"model_rollout handler ran ({invocation.seconds:.1f} s, cold start included) and returned:")
    say.block(summarise(invocation.result))
    if revision == before:
        raise DemoError(f"model_rollout did not change the service (still {short_arn(before)})")
    say.fact("service task definition", f"{short_arn(before)} → {short_arn(revision)}")
    for alert in run.read_alerts():
        show_alert(say, alert)
    outcome: dict[str, Any] = invocation.result
    result.revisions[label] = revision
    return outcome


def summarise(result: object) -> list[str]:
    """A handler's return value, the fields a reader cares about first."""
    if not isinstance(result, dict):
        return [json.dumps(result, default=str)[:150]]
    keys = ("status", "reason", "duplicate", "task_definition_arn", "model_uri", "sha256")
    return [f"{key}: {result[key]}" for key in keys if result.get(key) not in (None, "", False)]


def show_alert(say: Narrator, alert: dict[str, str], lines: int = 3) -> None:
    say.fact("SNS message read back", alert["subject"])
    say.block(alert["message"].splitlines()[:lines], prefix="       │ ")


def compact(record: dict[str, object], width: int = 150) -> str:
    """One structured log record as ``event key=value ...`` (without timestamp/level noise)."""
    noise = ("event", "timestamp", "level", "component")
    fields = " ".join(f"{key}={value}" for key, value in record.items() if key not in noise)
    return f"{record.get('event', '?')} {fields}"[:width]


def drain_lines(task: LocalTask) -> list[str]:
    """The server's own log records about its SIGTERM drain."""
    wanted = ("drain", "stopp", "shutdown", "signal")
    lines = [compact(r) for r in task.log_events() if any(w in str(r.get("event", "")) for w in wanted)]
    return lines or task.log_tail(3)


def failure_lines(task: LocalTask) -> list[str]:
    """The server's error records (why it refused to start), or its last raw lines."""
    errors = [r for r in task.log_events() if r.get("level") in ("error", "critical")]
    if not errors:
        return [line[:150] for line in task.log_tail(4)]
    lines = []
    for record in errors:
        lines.append(str(record.get("event", "error")))
        lines.extend(textwrap.wrap(str(record.get("error", "")), 110))
    return lines[:8]


def relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def show_golden_pass(run: DemoRun, task: LocalTask) -> None:
    """The task's golden_set_passed line: the gate ran and what it measured."""
    passed = [r for r in task.log_events() if r.get("event") == "golden_set_passed"]
    if not passed:
        raise DemoError(f"task {task.label} turned ready without running its golden-set gate")
    record = passed[-1]
    run.result.golden_wer[task.label] = float(record["golden_wer"])
    run.say.fact(
        "golden-set gate",
        f"passed: WER {record['golden_wer']:.3f} <= {record['golden_max_wer']} on {record['golden_clips']} "
        f"clips ({record['golden_audio_s']} s of audio, {record['golden_gate_s']} s)",
    )


def ship_task_log(run: DemoRun, task: LocalTask, task_id: str) -> None:
    """awslogs' part: the container's stdout into <group>/asr/asr-server/<task id> (moto's Logs)."""
    names = run.names
    stream = f"asr/{CONTAINER_NAME}/{task_id}"
    run.clients.logs.create_log_stream(logGroupName=names.log_group, logStreamName=stream)
    now = int(time.time() * 1000)
    lines = [line for line in task.log_path.read_text(errors="replace").splitlines() if line.strip()]
    run.clients.logs.put_log_events(
        logGroupName=names.log_group,
        logStreamName=stream,
        logEvents=[{"timestamp": now + i, "message": line} for i, line in enumerate(lines)],
    )
