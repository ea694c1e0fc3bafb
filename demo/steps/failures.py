"""Steps 6-7: a corrupt checkpoint and a wrong one never take traffic."""

from __future__ import annotations

import time

from demo import events
from demo.flow import DemoError, DemoRun, short_arn
from demo.steps.common import (
    DemoInputs,
    deliver_and_roll_out,
    failure_lines,
    ship_task_log,
    show_alert,
    upload,
)
from demo.task import TaskStartError


def deployment_id_of(revision: str) -> str:
    """The id the demo gives the deployment of ``revision`` (moto keeps no deployments to ask)."""
    return f"ecs-svc/demo-{short_arn(revision).rsplit(':', 1)[-1]}"


def still_serving(run: DemoRun, ready_label: str) -> tuple[bool, str]:
    """The serving task after a failed rollout: whether it is still ready, and what it transcribes."""
    serving = run.serving
    if serving is None:
        raise DemoError("no task is serving")
    ready = serving.is_ready()
    text = run.transcribe(serving).text
    run.say.fact(ready_label, "200" if ready else "NOT READY")
    run.say.transcript("still transcribing", text)
    return ready, text


def report_failed_deployment(run: DemoRun, deployment_id: str, lines: int) -> list[dict[str, str]]:
    """ECS's SERVICE_DEPLOYMENT_FAILED event for the deployment, handed to deploy_watch; its alerts."""
    names = run.names
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
    for alert in alerts:
        show_alert(run.say, alert, lines=lines)
    return alerts


def step_6_corrupt_model(run: DemoRun, inputs: DemoInputs) -> None:
    say, result, names = run.say, run.result, run.names
    say.step(
        6,
        "A corrupted checkpoint never reaches service",
        "The upload below is a truncated checkpoint. The rollout still makes a revision (the Lambda "
        "only pins what was uploaded), but a task of that revision refuses to turn ready, so traffic "
        "stays on the healthy task.",
    )
    corrupt, started = upload(run, "corrupt", inputs.corrupt_model)
    say.fact(
        "uploaded",
        f"{corrupt.key} version {corrupt.version_id} ({inputs.corrupt_model.stat().st_size} bytes)",
    )
    deliver_and_roll_out(run, "corrupt", corrupt, started)
    revision = result.revisions["corrupt"]
    task = run.start_task("corrupt", revision)
    try:
        ready_s = task.wait_ready()
    except TaskStartError as refused:
        result.corrupt_task_exit_code = refused.exit_code
        result.corrupt_task_log = refused.log_tail
        say.fact("new task", f"refused to start: exit code {refused.exit_code}")
        say.block(failure_lines(task), prefix="       new task log │ ")
    else:
        raise DemoError(f"the task with the corrupted model turned ready after {ready_s:.1f} s")
    result.serving_after_corrupt_rollout, text = still_serving(run, "serving task (v2) /ready")
    result.transcripts["v2 after corrupt upload"] = text
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
    result.alerts["deployment"] = report_failed_deployment(run, deployment_id_of(revision), lines=4)


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
    wrong, started = upload(run, "wrong", inputs.wrong_model)
    say.fact(
        "uploaded", f"{wrong.key} version {wrong.version_id} (no golden set given: the pin carries over)"
    )
    deliver_and_roll_out(run, "wrong", wrong, started)
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
    result.serving_after_wrong_rollout, text = still_serving(run, "serving task /ready")
    result.transcripts["after wrong upload"] = text
    if text != result.transcripts["v2"]:
        raise DemoError(f"the serving task's transcript changed: {text!r} != {result.transcripts['v2']!r}")
    say.say(
        "ECS's part, played by the demo: the stopped task keeps its record (run_task/stop_task in moto, "
        "startedBy = the deployment id), awslogs has shipped its stdout to the service's log group, the "
        "circuit breaker rolls the service back and emits SERVICE_DEPLOYMENT_FAILED. deploy_watch reads "
        "the stopped task and its golden_set_failed line. (moto reports every container's exit code as 0; "
        "in AWS the task reads exit 3, which alone already names the gate.)"
    )
    deployment_id = deployment_id_of(revision)
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
    ship_task_log(run, task, moto_task["taskArn"].rsplit("/", 1)[-1])
    ecs.stop_task(
        cluster=names.cluster, task=moto_task["taskArn"], reason="Essential container in task exited"
    )
    ecs.update_service(cluster=names.cluster, service=names.service, taskDefinition=result.revisions["v2"])
    result.service_revision_after_gate_rollback = run.service_task_definition()
    say.fact(
        "service rolled back",
        f"{short_arn(revision)} → {short_arn(result.service_revision_after_gate_rollback)}",
    )
    alerts = report_failed_deployment(run, deployment_id, lines=8)
    result.alerts["gate"] = alerts
    if not any("golden-set gate" in alert["subject"] for alert in alerts):
        raise DemoError("deploy_watch's alert does not name the golden-set gate")
