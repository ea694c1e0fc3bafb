"""Demo step: ship new code. `make deploy-image` rolls a pushed, scanned image out to the service
the way a model rollout rolls a model, keeping the model pin; a missing or vulnerable tag is refused."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import urllib.request
from typing import Any

from demo.flow import REPO_ROOT, DemoError, DemoRun, short_arn
from demo.moto_server import environment_without_aws
from demo.resources import CONTAINER_NAME

#: Tags the step pushes: one scanned clean, one with moto's default finding (one HIGH).
CLEAN_TAG, VULNERABLE_TAG, MISSING_TAG = "v2", "v2-cve", "v3-not-pushed"


def _manifest(tag: str) -> str:
    """A schema-2 manifest whose config differs per tag, so each tag is its own digest."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {"tag": tag}}}).encode()
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(config),
                "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
            },
            # moto derives the image digest from the layers: one per tag keeps the digests apart.
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(tag),
                    "digest": "sha256:" + hashlib.sha256(tag.encode()).hexdigest(),
                }
            ],
        }
    )


def _push_and_scan(run: DemoRun, tag: str, counts: dict[str, int] | None) -> str:
    """Push ``tag`` to moto's ECR and scan it; ``counts`` sets the scan's result (None: moto's
    default, one HIGH finding) through moto's own API, as ECR's scanner would report it."""
    repository = run.names.ecr_repository
    ecr = run.clients.ecr
    image = ecr.put_image(repositoryName=repository, imageManifest=_manifest(tag), imageTag=tag)
    digest = str(image["image"]["imageId"]["imageDigest"])
    if counts is not None:
        body = {
            "results": [
                {
                    "repositoryName": repository,
                    "imageId": {"imageDigest": digest},
                    "imageScanStatus": {"status": "COMPLETE", "description": "The scan was completed."},
                    "imageScanFindings": {"findingSeverityCounts": counts, "findings": []},
                }
            ],
            "region": run.names.region,
        }
        request = urllib.request.Request(  # noqa: S310 - moto on 127.0.0.1
            f"{run.moto.endpoint_url}/moto-api/static/ecr/scan-finding-results",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - moto on 127.0.0.1
            pass
    ecr.start_image_scan(repositoryName=repository, imageId={"imageTag": tag})
    return digest


def _deploy_image(run: DemoRun, tag: str) -> tuple[int, dict[str, Any], str]:
    """The real `make deploy-image` path: ``python -m ops.deploy_image`` against moto, names from
    SSM; --no-wait because the demo plays ECS's part (moto runs no deployments)."""
    completed = subprocess.run(  # noqa: S603 - our own interpreter and module
        [
            sys.executable,
            "-m",
            "ops.deploy_image",
            "--env",
            run.names.environment,
            "--tag",
            tag,
            "--notify-topic-arn",
            run.stack.notify_topic_arn,
            "--no-wait",
        ],
        capture_output=True,
        text=True,
        env={**environment_without_aws(), **run.platform_env, "PYTHONPATH": str(REPO_ROOT)},
        cwd=REPO_ROOT,
        timeout=120,
        check=False,
    )
    report = json.loads(completed.stdout) if completed.returncode == 0 else {}
    return completed.returncode, report, completed.stderr.strip().splitlines()[-1] if completed.stderr else ""


def _container(run: DemoRun, arn: str) -> dict[str, Any]:
    definition = run.clients.ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
    return next(c for c in definition["containerDefinitions"] if c["name"] == CONTAINER_NAME)


def step_9_ship_image(run: DemoRun) -> None:
    say, result = run.say, run.result
    say.step(
        9,
        "Ship new code: a new image, the model pin kept",
        "`make build push` puts a new image in ECR; `make deploy-image TAG=...` checks it is there and "
        "scanned clean below the alert threshold (HIGH), then registers a revision of the running one "
        "with only the image changed and updates the service: the model rollout's path.",
    )
    old = run.serving
    if old is None:
        raise DemoError("no task is serving")
    clean_digest = _push_and_scan(run, CLEAN_TAG, {"MEDIUM": 2, "LOW": 5})
    _push_and_scan(run, VULNERABLE_TAG, None)
    say.fact("pushed", f"{CLEAN_TAG} (scan: 2 MEDIUM, 5 LOW), {VULNERABLE_TAG} (scan: 1 HIGH)")
    refusals = {}
    for tag in (MISSING_TAG, VULNERABLE_TAG):
        code, _, why = _deploy_image(run, tag)
        refusals[tag] = (code, why)
        say.fact(f"deploy-image {tag}", f"refused (exit {code}): {why}")
        if code == 0:
            raise DemoError(f"deploy-image shipped {tag}")
    before = run.service_task_definition()
    started = time.monotonic()
    code, report, why = _deploy_image(run, CLEAN_TAG)
    result.timings["deploy-image → new revision"] = time.monotonic() - started
    if code != 0 or report.get("status") != "started":
        raise DemoError(f"deploy-image {CLEAN_TAG} failed (exit {code}): {why}")
    revision = run.service_task_definition()
    was, now = _container(run, before), _container(run, revision)
    say.fact("service task definition", f"{short_arn(before)} → {short_arn(revision)}")
    say.fact("image", f"{was['image'].rsplit('/', 1)[-1]} → {now['image'].rsplit('/', 1)[-1]}")
    env_before = {e["name"]: e["value"] for e in was.get("environment", [])}
    env_now = {e["name"]: e["value"] for e in now.get("environment", [])}
    say.fact("MODEL_URI", f"{env_now.get('MODEL_URI')} (unchanged: {env_now == env_before})")
    same_secrets = was.get("secrets") == now.get("secrets")
    say.fact("secrets", f"{[s['name'] for s in now.get('secrets', [])]} (unchanged: {same_secrets})")
    if (
        revision != report["task_definition_arn"]
        or env_now != env_before
        or was.get("secrets") != now.get("secrets")
    ):
        raise DemoError("deploy-image changed more than the image")
    notices = [a for a in run.read_alerts() if "deploy-image" in a.get("subject", "")]
    for notice in notices:
        say.fact("notification", notice.get("subject", ""))
    new = run.start_task("image-v2", revision)
    ready_s = new.wait_ready()
    result.timings["task start → ready (new image)"] = ready_s
    say.fact("new task ready after", f"{ready_s:.1f} s (pid {new.pid}, the revision's environment)")
    text = run.transcribe(new).text
    say.transcript("new task", text)
    stop = old.stop()
    say.fact("old task", f"SIGTERM: exited {stop.exit_code} after {stop.seconds:.1f} s")
    run.serving = new
    result.image_rollout = {
        "report": report,
        "digest": clean_digest,
        "previous_revision": before,
        "revision": revision,
        "image_before": was["image"],
        "image_after": now["image"],
        "env_unchanged": env_now == env_before,
        "secrets_unchanged": was.get("secrets") == now.get("secrets"),
        "refusals": refusals,
        "notifications": notices,
        "transcript": text,
    }
