"""Step 5: an image-scan alert, then night mode down and up."""

from __future__ import annotations

import json

from demo import events
from demo.flow import DemoError, DemoRun, short_arn
from demo.steps.common import (
    show_alert,
)


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
        show_alert(say, alert, lines=6)
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
    if result.capacity["night"].desired == 0 and serving is not None:
        # ECS's part: desired 0 stops the service's tasks (SIGTERM, drain, exit).
        stop = serving.stop()
        say.fact(
            "ECS stops the task", f"exited {stop.exit_code} after {stop.seconds:.1f} s: nothing runs at night"
        )
        run.serving = None
    run.invoke("night_scaler", events.night_schedule("scale_up"))
    result.capacity["morning"] = run.capacity()
    say.fact("after scale_up (morning)", result.capacity["morning"])
    if run.serving is None and result.capacity["morning"].desired > 0:
        # ECS's part again: desired 1 starts a task of the service's current revision.
        revision = run.service_task_definition()
        task = run.start_task("morning", revision)
        ready_s = task.wait_ready()
        result.timings["task start → ready (morning)"] = ready_s
        say.fact("ECS starts a task", f"{short_arn(revision)}, ready after {ready_s:.1f} s")
        run.serving = task
