"""The eight steps of the demo. ``run_demo`` runs them in order and always cleans up."""

from __future__ import annotations

import json
import re
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from demo import events
from demo.flow import DemoError, DemoResult, DemoRun, ModelVersion, short_arn
from demo.image_step import step_ship_image
from demo.latency import latency_summaries
from demo.narration import Narrator
from demo.resources import (
    CONTAINER_NAME,
    create_automation_backing,
    create_client_tokens_secret,
    create_model_uploaded_rule,
    create_models_bucket,
    create_service,
    model_uploaded_pattern,
    publish_names,
)
from demo.task import LocalTask, TaskStartError

REPO_ROOT = Path(__file__).resolve().parent.parent
#: The demo model reads its own clips without an error (measured WER 0.0); a wrong model reads
#: them at WER ~1.0. 0.1 leaves room for a retrained demo model and none for a broken one.
GOLDEN_MAX_WER = 0.1

#: The demo's one named client (AUTH_TOKENS maps client names to their tokens' SHA-256).
DEMO_CLIENT = "demo-app"


def _masked(token: str) -> str:
    return f"{token[:4]}…({len(token)} characters)"


def _masked_table(text: str) -> str:
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


def _rollout(run: DemoRun, label: str, model: ModelVersion, upload_started: float) -> dict[str, Any]:
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
    say.block(_summarise(invocation.result))
    if revision == before:
        raise DemoError(f"model_rollout did not change the service (still {short_arn(before)})")
    say.fact("service task definition", f"{short_arn(before)} → {short_arn(revision)}")
    for alert in run.read_alerts():
        _show_alert(say, alert)
    rollout: dict[str, Any] = invocation.result
    result.revisions[label] = revision
    return rollout


def _summarise(result: object) -> list[str]:
    """A handler's return value, the fields a reader cares about first."""
    if not isinstance(result, dict):
        return [json.dumps(result, default=str)[:150]]
    keys = ("status", "reason", "duplicate", "task_definition_arn", "model_uri", "sha256")
    return [f"{key}: {result[key]}" for key in keys if result.get(key) not in (None, "")]


def _show_alert(say: Narrator, alert: dict[str, str], lines: int = 3) -> None:
    say.fact("SNS message read back", alert["subject"])
    say.block(alert["message"].splitlines()[:lines], prefix="       │ ")


def step_1_stack(run: DemoRun, inputs: DemoInputs) -> None:
    say, names = run.say, run.names
    say.step(
        1,
        "Stand up a stand-in for AWS (moto) with the stack's resources",
        "moto answers the AWS APIs on a loopback port, so the boto3 calls the Lambdas make in AWS run "
        "unchanged here (AWS_ENDPOINT_URL points every process at it). Every resource comes from "
        "demo/resources.py, the one description the tests share.",
    )
    started = time.monotonic()
    run.moto.start()
    run.aws = run.new_clients()
    say.fact("moto endpoint", run.moto.endpoint_url)
    run.stack = create_models_bucket(run.clients, names)
    say.fact("models bucket", f"{names.models_bucket} (versioning on, EventBridge notifications on)")
    publish_names(run.clients, names)
    published = sorted(parameter.rsplit("/", 1)[1] for parameter in names.published_parameters())
    lines = textwrap.wrap(f"{names.ssm_parameter('')}: {', '.join(published)}", 70, break_on_hyphens=False)
    say.fact("SSM parameters", lines[0])
    for line in lines[1:]:
        say.fact("", f"  {line}")
    first = run.upload_model(inputs.first_model, golden=inputs.golden_set, golden_max_wer=GOLDEN_MAX_WER)
    run.result.models["v1"] = first
    say.fact("first model uploaded", f"{first.key} version {first.version_id}")
    say.fact("  its sha256 metadata", f"{first.sha256}  (python -m ops.upload_model)")
    say.fact("  with its golden set", f"{_relative(inputs.golden_set)} → {first.golden_set}")
    create_model_uploaded_rule(run.clients, run.stack)
    create_automation_backing(run.clients, run.stack)
    secret_arn = create_client_tokens_secret(run.clients, run.stack)
    say.fact(
        "client-tokens secret", f"{names.client_tokens_secret} (created without a value, like Terraform)"
    )
    first_clients = run.tokens_tool(
        "add", "--client", DEMO_CLIENT, "--no-rollout", "--secret-arn", secret_arn
    )
    run.token = first_clients["new_tokens"][DEMO_CLIENT]
    run.result.tokens["first"] = run.token
    say.fact(
        "  first client written",
        f"{DEMO_CLIENT}, version {first_clients['secret_version'][:8]}… (make rotate-tokens)",
    )
    say.fact("  its token, shown once", f"{_masked(run.token)}; the secret keeps only its SHA-256")
    golden = {"GOLDEN_SET": first.golden_set, "GOLDEN_MAX_WER": str(GOLDEN_MAX_WER)}
    create_service(run.clients, run.stack, first.uri, first.sha256, golden=golden)
    run.result.revisions["v1"] = run.stack.first_task_definition_arn
    pattern = model_uploaded_pattern(names)
    keys = "|".join(str(rule["wildcard"]) for rule in pattern["detail"]["object"]["key"])
    say.fact("EventBridge rule", names.model_uploaded_rule)
    say.fact("  matches", f"{pattern['source'][0]} '{pattern['detail-type'][0]}' in that bucket, key {keys}")
    say.fact("  its target", f"SQS {names.model_events_queue} (the demo hands each event to model_rollout)")
    say.fact(
        "ECS service", f"{names.cluster}/{names.service} on {short_arn(run.stack.first_task_definition_arn)}"
    )
    say.fact("ECR repository", f"{names.ecr_repository} (scan on push)")
    say.fact("SNS topics", f"{names.notify_topic}, {names.alert_topic}")
    say.fact("  read back through", f"SQS {names.alerts_inbox_queue} (subscribed to both)")
    say.fact("DynamoDB table", f"{names.idempotency_table} (Powertools idempotency, key 'id')")
    say.fact("scalable target", f"{names.scalable_resource_id} {run.capacity()}")
    say.say(
        "The first model was uploaded before the automation's rule existed: Terraform's first task "
        "definition pins it directly (MODEL_URI ends in ?versionId=... and MODEL_SHA256 is set), and "
        "its extra_environment turns the golden-set gate on: GOLDEN_SET (the uploaded demo clips, "
        f"pinned by one version id) and GOLDEN_MAX_WER={GOLDEN_MAX_WER}."
    )
    run.result.timings["stack up (moto + resources + first upload)"] = time.monotonic() - started


def step_2_first_task(run: DemoRun, inputs: DemoInputs) -> LocalTask:
    say = run.say
    say.step(
        2,
        "Start the real ASR server as the service's task",
        "ECS would start the container with the environment of the service's current task definition; "
        "here the same environment starts `python -m asr_service`, which downloads its pinned model "
        "version from the moto bucket and checks its SHA-256 before it turns /ready.",
    )
    revision = run.service_task_definition()
    task = run.start_task("v1", revision)
    say.fact("task definition", short_arn(revision))
    say.fact("MODEL_URI", task.container_env["MODEL_URI"])
    say.fact("MODEL_SHA256", task.container_env["MODEL_SHA256"])
    say.fact("REQUIRE_AUTH", task.container_env["REQUIRE_AUTH"])
    run.result.first_task_auth_tokens = task.container_env["AUTH_TOKENS"]
    say.fact("AUTH_TOKENS (secrets)", _masked_table(task.container_env["AUTH_TOKENS"]))
    ready_s = task.wait_ready()
    run.result.timings["task start → ready (v1)"] = ready_s
    say.fact("ready after", f"{ready_s:.1f} s (pid {task.pid}, ws {task.ws_url})")
    _show_golden_pass(run, task)
    text = run.transcribe(task).text
    run.result.transcripts["v1"] = text
    say.say(
        f"Streamed {inputs.clip.name} through the real client (python -m asr_service.client) with "
        f"{DEMO_CLIENT}'s token:"
    )
    say.transcript("reference", inputs.reference_text)
    say.transcript("transcript (model v1)", text)
    refused = run.try_client(task, None)
    run.result.refused_client = refused
    say.fact("client without a token", f"exit {refused.exit_code}: {(refused.stderr or [''])[0][:100]}")
    run.serving = task
    return task


def step_3_upload_and_rollout(run: DemoRun, inputs: DemoInputs) -> None:
    say = run.say
    say.step(
        3,
        "Upload a new checkpoint: S3 → EventBridge → model_rollout",
        "`make upload-model` (python -m ops.upload_model) puts the file under the same key with its "
        f"SHA-256 as object metadata; versioning gives it a new version id. {inputs.second_model_note}",
    )
    started = time.monotonic()
    second = run.upload_model(inputs.second_model)
    run.result.models["v2"] = second
    say.fact("uploaded", f"{second.key} version {second.version_id}")
    say.fact("sha256 metadata", second.sha256)
    _rollout(run, "v2", second, started)
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
    _show_golden_pass(run, new)
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
    say.block(_drain_lines(old), prefix="       old task log │ ")
    say.fact("the live user's client", f'exit {code}, final text so far: "{final}"')
    say.block(notes[-1:], prefix="       client │ ")
    run.serving = new
    text = run.transcribe(new).text
    result.transcripts["v2"] = text
    say.transcript("reference", inputs.reference_text)
    say.transcript(f"model v1 ({result.models['v1'].version_id[:8]})", result.transcripts["v1"])
    say.transcript(f"model v2 ({result.models['v2'].version_id[:8]})", text)


def _compact(record: dict[str, object], width: int = 150) -> str:
    """One structured log record as ``event key=value ...`` (without timestamp/level noise)."""
    noise = ("event", "timestamp", "level", "component")
    fields = " ".join(f"{key}={value}" for key, value in record.items() if key not in noise)
    return f"{record.get('event', '?')} {fields}"[:width]


def _drain_lines(task: LocalTask) -> list[str]:
    """The server's own log records about its SIGTERM drain."""
    wanted = ("drain", "stopp", "shutdown", "signal")
    lines = [_compact(r) for r in task.log_events() if any(w in str(r.get("event", "")) for w in wanted)]
    return lines or task.log_tail(3)


def _failure_lines(task: LocalTask) -> list[str]:
    """The server's error records (why it refused to start), or its last raw lines."""
    errors = [r for r in task.log_events() if r.get("level") in ("error", "critical")]
    if not errors:
        return [line[:150] for line in task.log_tail(4)]
    lines = []
    for record in errors:
        lines.append(str(record.get("event", "error")))
        lines.extend(textwrap.wrap(str(record.get("error", "")), 110))
    return lines[:8]


def step_5_alerts_and_night(run: DemoRun) -> None:
    say, names, result = run.say, run.names, run.result
    say.step(
        5,
        "Image-scan alert and night mode",
        "An image pushed to ECR is scanned; EventBridge sends 'ECR Image Scan' to scan_alert, which "
        "publishes findings at or above HIGH to SNS. At night EventBridge Scheduler sends "
        "{'action': 'scale_down'} to night_scaler, which saves the day capacity in SSM and sets it to "
        "0, so ECS stops the tasks; 'scale_up' in the morning restores it (the demo plays ECS).",
    )
    ecr = run.clients.ecr
    manifest = json.dumps(events.docker_manifest())
    ecr.put_image(repositoryName=names.ecr_repository, imageManifest=manifest, imageTag="v1")
    ecr.start_image_scan(repositoryName=names.ecr_repository, imageId={"imageTag": "v1"})
    findings = ecr.describe_image_scan_findings(
        repositoryName=names.ecr_repository, imageId={"imageTag": "v1"}
    )
    counts = findings["imageScanFindings"]["findingSeverityCounts"]
    say.fact("pushed image", f"{names.ecr_repository}:v1 {findings['imageId']['imageDigest'][:19]}…")
    say.fact(
        "scan findings (moto's)", f"{counts} e.g. {findings['imageScanFindings']['findings'][0]['name']}"
    )
    say.say(
        "moto does not emit ECR scan events, so the demo builds the documented 'ECR Image Scan' event "
        "from the findings moto returned and hands it to scan_alert."
    )
    run.invoke("scan_alert", events.ecr_image_scan(findings, names.region))
    alerts = run.read_alerts()
    result.alerts["scan"] = alerts
    for alert in alerts:
        _show_alert(say, alert, lines=6)
    if not alerts:
        raise DemoError("scan_alert published nothing for a HIGH finding")

    result.capacity["before night"] = run.capacity()
    say.fact("capacity (day)", result.capacity["before night"])
    run.invoke("night_scaler", events.night_schedule("scale_down"))
    result.capacity["night"] = run.capacity()
    saved = run.clients.ssm.get_parameter(Name=names.capacity_parameter)["Parameter"]["Value"]
    say.fact("after scale_down (night)", result.capacity["night"])
    say.fact("saved in SSM", f"{names.capacity_parameter} = {saved}")
    serving = run.serving
    if result.capacity["night"].desired_count == 0 and serving is not None:
        # ECS's part: desired 0 stops the service's tasks (SIGTERM, drain, exit).
        stop = serving.stop()
        say.fact(
            "ECS stops the task", f"exited {stop.exit_code} after {stop.seconds:.1f} s: nothing runs at night"
        )
        run.serving = None
    run.invoke("night_scaler", events.night_schedule("scale_up"))
    result.capacity["morning"] = run.capacity()
    say.fact("after scale_up (morning)", result.capacity["morning"])
    if run.serving is None and result.capacity["morning"].desired_count > 0:
        # ECS's part again: desired 1 starts a task of the service's current revision.
        revision = run.service_task_definition()
        task = run.start_task("morning", revision)
        ready_s = task.wait_ready()
        result.timings["task start → ready (morning)"] = ready_s
        say.fact("ECS starts a task", f"{short_arn(revision)}, ready after {ready_s:.1f} s")
        run.serving = task


def step_6_corrupt_model(run: DemoRun, inputs: DemoInputs) -> None:
    say, result, names = run.say, run.result, run.names
    say.step(
        6,
        "A corrupted checkpoint never reaches service",
        "The upload below is a truncated checkpoint. The rollout still makes a revision (the Lambda "
        "only pins what was uploaded), but a task of that revision refuses to turn ready, so traffic "
        "stays on the healthy task.",
    )
    started = time.monotonic()
    corrupt = run.upload_model(inputs.corrupt_model)
    result.models["corrupt"] = corrupt
    say.fact(
        "uploaded",
        f"{corrupt.key} version {corrupt.version_id} ({inputs.corrupt_model.stat().st_size} bytes)",
    )
    _rollout(run, "corrupt", corrupt, started)
    revision = result.revisions["corrupt"]
    task = run.start_task("corrupt", revision)
    try:
        ready_s = task.wait_ready()
    except TaskStartError as refused:
        result.corrupt_task_exit_code = refused.exit_code
        result.corrupt_task_log = refused.log_tail
        say.fact("new task", f"refused to start: exit code {refused.exit_code}")
        say.block(_failure_lines(task), prefix="       new task log │ ")
    else:
        raise DemoError(f"the task with the corrupted model turned ready after {ready_s:.1f} s")
    serving = run.serving
    if serving is None:
        raise DemoError("no task is serving")
    result.serving_after_corrupt_rollout = serving.is_ready()
    text = run.transcribe(serving).text
    result.transcripts["v2 after corrupt upload"] = text
    say.fact("serving task (v2) /ready", "200" if result.serving_after_corrupt_rollout else "NOT READY")
    say.transcript("still transcribing", text)
    say.say(
        "In AWS: the service's deployment circuit breaker (enabled with rollback in Terraform) counts "
        "the failed task launches; past its threshold it marks the deployment FAILED, rolls the service "
        "back to the last completed revision and emits 'ECS Deployment State Change' "
        "SERVICE_DEPLOYMENT_FAILED. Here the demo plays ECS's part: it rolls the service back and "
        "hands that (documented, built here: moto emits no ECS events) event to deploy_watch."
    )
    run.clients.ecs.update_service(
        cluster=names.cluster, service=names.service, taskDefinition=result.revisions["v2"]
    )
    result.service_revision_after_rollback = run.service_task_definition()
    rolled_back = f"{short_arn(revision)} → {short_arn(result.service_revision_after_rollback)}"
    say.fact("service rolled back", rolled_back)
    say.say(
        "moto keeps one deployment per service and drops the service's deploymentConfiguration (it does "
        "not model ECS deployments), so deploy_watch can neither name the failed revision nor see that the "
        "breaker rolls back: it reports FAILED and the revision the service is back on. In AWS the alert "
        "reads 'FAILED, rolled back' and names both."
    )
    run.invoke(
        "deploy_watch",
        events.ecs_deployment_state_change(
            run.describe_service()["serviceArn"],
            f"ecs-svc/demo-{short_arn(revision).rsplit(':', 1)[-1]}",
            "SERVICE_DEPLOYMENT_FAILED",
            "ECS deployment circuit breaker: task failed to start.",
            names.region,
            names.account_id,
        ),
    )
    alerts = run.read_alerts()
    result.alerts["deployment"] = alerts
    for alert in alerts:
        _show_alert(say, alert, lines=4)


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _show_golden_pass(run: DemoRun, task: LocalTask) -> None:
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


def _ship_task_log(run: DemoRun, task: LocalTask, task_id: str) -> None:
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


def step_7_wrong_model(run: DemoRun, inputs: DemoInputs) -> None:
    say, result, names = run.say, run.result, run.names
    say.step(
        7,
        "A checkpoint that loads but is wrong never takes traffic: the golden-set gate",
        "This upload is v2 exported with a wrong token list (rotated by one): it loads, verifies its "
        "SHA-256 and warms up like a good model, and it transcribes garbage. The rollout carries the "
        "service's GOLDEN_SET pin to the new revision; before /ready the task transcribes the golden "
        "set through its own streaming engine, finds the WER above GOLDEN_MAX_WER and exits 3.",
    )
    started = time.monotonic()
    wrong = run.upload_model(inputs.wrong_model)
    result.models["wrong"] = wrong
    say.fact(
        "uploaded", f"{wrong.key} version {wrong.version_id} (no golden set given: the pin carries over)"
    )
    _rollout(run, "wrong", wrong, started)
    revision = result.revisions["wrong"]
    task = run.start_task("wrong", revision)
    say.fact("GOLDEN_SET of the revision", task.container_env.get("GOLDEN_SET", "MISSING"))
    try:
        ready_s = task.wait_ready()
    except TaskStartError as refused:
        result.wrong_task_exit_code = refused.exit_code
        result.timings["task start → exit 3 (golden gate)"] = time.monotonic() - task.started_at
        say.fact("new task", f"never turned ready: exit code {refused.exit_code}")
    else:
        raise DemoError(f"the task with the wrong-token model turned ready after {ready_s:.1f} s")
    gate = [r for r in task.log_events() if r.get("event") == "golden_set_failed"]
    if len(gate) != 1:
        raise DemoError(f"expected one golden_set_failed line, found {len(gate)}")
    result.wrong_task_gate_line = gate[0]
    worst = gate[0]["worst"][0]
    say.block(
        [
            f"golden_set_failed wer={gate[0]['wer']} max_wer={gate[0]['max_wer']} "
            f"model_sha256={str(gate[0]['model_sha256'])[:16]}…",
            f"  clips: {gate[0]['clips']}"[:140],
            f'  worst: {worst["clip"]}: heard "{worst["hypothesis"]}"'[:140],
            f'         for "{worst["reference"]}"',
        ],
        prefix="       new task log │ ",
    )
    serving = run.serving
    if serving is None:
        raise DemoError("no task is serving")
    result.serving_after_wrong_rollout = serving.is_ready()
    text = run.transcribe(serving).text
    result.transcripts["after wrong upload"] = text
    say.fact("serving task /ready", "200" if result.serving_after_wrong_rollout else "NOT READY")
    say.transcript("still transcribing", text)
    if text != result.transcripts["v2"]:
        raise DemoError(f"the serving task's transcript changed: {text!r} != {result.transcripts['v2']!r}")
    say.say(
        "ECS's part, played by the demo: the stopped task keeps its record (run_task/stop_task in moto, "
        "startedBy = the deployment id), awslogs has shipped its stdout to the service's log group, the "
        "circuit breaker rolls the service back and emits SERVICE_DEPLOYMENT_FAILED. deploy_watch reads "
        "the stopped task and its golden_set_failed line. (moto reports every container's exit code as 0; "
        "in AWS the task reads exit 3, which alone already names the gate.)"
    )
    deployment_id = f"ecs-svc/demo-{short_arn(revision).rsplit(':', 1)[-1]}"
    ecs = run.clients.ecs
    moto_task = ecs.run_task(
        cluster=names.cluster,
        taskDefinition=revision,
        startedBy=deployment_id,
        launchType="FARGATE",
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": [run.stack.extra["task_subnet"]],
                "securityGroups": [run.stack.extra["task_security_group"]],
            }
        },
    )["tasks"][0]
    _ship_task_log(run, task, moto_task["taskArn"].rsplit("/", 1)[-1])
    ecs.stop_task(
        cluster=names.cluster, task=moto_task["taskArn"], reason="Essential container in task exited"
    )
    ecs.update_service(cluster=names.cluster, service=names.service, taskDefinition=result.revisions["v2"])
    result.service_revision_after_gate_rollback = run.service_task_definition()
    say.fact(
        "service rolled back",
        f"{short_arn(revision)} → {short_arn(result.service_revision_after_gate_rollback)}",
    )
    run.invoke(
        "deploy_watch",
        events.ecs_deployment_state_change(
            run.describe_service()["serviceArn"],
            deployment_id,
            "SERVICE_DEPLOYMENT_FAILED",
            "ECS deployment circuit breaker: task failed to start.",
            names.region,
            names.account_id,
        ),
    )
    alerts = run.read_alerts()
    result.alerts["gate"] = alerts
    for alert in alerts:
        _show_alert(say, alert, lines=8)
    if not any("golden-set gate" in alert["subject"] for alert in alerts):
        raise DemoError("deploy_watch's alert does not name the golden-set gate")


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
    say.fact("new token, shown once", _masked(new_token))
    if revision == before or revision != report["rollout"]["task_definition_arn"]:
        raise DemoError("the token rotation did not move the service to a new revision")
    new = run.start_task("tokens", revision)
    result.token_revision_env = dict(new.container_env)
    say.fact("new task's MODEL_URI", new.container_env["MODEL_URI"])
    say.fact("new task's AUTH_TOKENS", _masked_table(new.container_env["AUTH_TOKENS"]))
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


def step_9_cleanup(run: DemoRun) -> None:
    say, result = run.say, run.result
    say.step(10, "Clean up and summary", "Every process the demo started is stopped.")
    if run.serving is not None and run.serving.running():
        # What an operator's scraper (and, as EMF, CloudWatch) sees: read back before the stop.
        result.latency = latency_summaries(run.serving.prometheus_text())
        say.say("Latency the serving task measured itself (GET /metrics histograms, server side):")
        for kind in ("partial", "final"):
            say.fact(f"  {kind}", result.latency.get(kind, "not reported"))
        stop = run.serving.stop()
        say.fact("serving task (v2) SIGTERM", f"exited {stop.exit_code} after {stop.seconds:.1f} s")
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
        step_ship_image(run, 9)
        run.result.timings["whole demo"] = time.monotonic() - started
        step_9_cleanup(run)
    finally:
        run.close()
    return run.result
