"""The project's end-to-end test: the same flow as ``make demo``, quietly.

moto in server mode (its own process) stands in for AWS; the upload tool, the four Lambda
handlers, the ASR server (v1, v2, the corrupted model, the wrong-token model its golden-set gate
stops) and the client are the real code started the real way. The narration is kept in memory
and printed only on failure.
"""

from __future__ import annotations

import json
import re

import pytest
from moto import mock_aws

from asr_service.auth import Client, parse_client_tokens
from asr_service.model.wer import edit_distance
from demo.clients import EndpointClients
from demo.flow import short_arn
from demo.models import prepare_inputs
from demo.narration import Narrator
from demo.provision import (
    create_automation_backing,
    create_model_uploaded_rule,
    create_models_bucket,
    create_service,
    publish_names,
)
from demo.resources import StackNames
from demo.steps import DEMO_CLIENT, run_demo

slow = pytest.mark.slow
#: The shipped demo model on the demo clip, through the whole S3 → server → client path.
MAX_DEMO_CER = 0.25  # measured 0.0 with the shipped model; headroom for a retrained one


# ------------------------------------------------------------------ the resource description (fast)
@mock_aws
def test_resource_description_builds_and_routes_only_model_uploads_to_the_rule_target():
    aws = EndpointClients(endpoint_url=None, region="us-east-1")
    names = StackNames()
    stack = create_models_bucket(aws, names)
    publish_names(aws, names)
    create_model_uploaded_rule(aws, stack)
    create_automation_backing(aws, stack)
    create_service(aws, stack, f"s3://{names.models_bucket}/models/a.pt?versionId=v", "0" * 64)

    model = aws.s3.put_object(Bucket=names.models_bucket, Key="models/asr/demo.pt", Body=b"x" * 2048)
    aws.s3.put_object(Bucket=names.models_bucket, Key="notes/readme.txt", Body=b"not a model")
    aws.s3.put_object(Bucket=names.models_bucket, Key="models/README.md", Body=b"not a checkpoint")
    reply = aws.sqs.receive_message(QueueUrl=stack.model_events_queue_url, MaxNumberOfMessages=10)
    delivered = [json.loads(message["Body"]) for message in reply.get("Messages", [])]

    assert [event["detail"]["object"]["key"] for event in delivered] == ["models/asr/demo.pt"]
    assert delivered[0]["detail"]["object"]["version-id"] == model["VersionId"]
    assert (
        aws.ssm.get_parameter(Name=names.ssm_parameter("models-bucket"))["Parameter"]["Value"]
        == names.models_bucket
    )
    service = aws.ecs.describe_services(cluster=names.cluster, services=[names.service])["services"][0]
    assert service["taskDefinition"] == stack.first_task_definition_arn
    # Like Terraform: the tokens come from the secret through `secrets`, never plain environment.
    (container,) = aws.ecs.describe_task_definition(taskDefinition=stack.first_task_definition_arn)[
        "taskDefinition"
    ]["containerDefinitions"]
    assert container["secrets"] == [{"name": "AUTH_TOKENS", "valueFrom": stack.client_tokens_secret_arn}]
    environment = {e["name"]: e["value"] for e in container["environment"]}
    assert environment["REQUIRE_AUTH"] == "true" and "AUTH_TOKENS" not in environment
    assert stack.client_tokens_secret_arn.split(":secret:")[1].startswith(names.client_tokens_secret + "-")
    for function in ("model_rollout", "scan_alert", "night_scaler", "deploy_watch"):
        assert all(stack.lambda_environment(function).values()), function


# ------------------------------------------------------------------ the whole loop (slow)
@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory):
    work_dir = tmp_path_factory.mktemp("demo")
    say = Narrator(out=None)
    try:
        result = run_demo(work_dir, prepare_inputs(work_dir), say)
    except BaseException:
        print("\n".join(say.lines))
        raise
    return result


@slow
def test_demo_stops_every_process_it_started(demo_run):
    assert demo_run.tasks_left_running == 0


@slow
def test_upload_event_is_delivered_by_moto_and_rolls_out_a_pinned_revision(demo_run):
    v2 = demo_run.models["v2"]
    assert demo_run.event_was_delivered_by_moto
    assert demo_run.revisions["v2"] != demo_run.revisions["v1"]
    assert short_arn(demo_run.revisions["v2"]).startswith(StackNames().task_family + ":")
    env = demo_run.revision_env["v2"]
    assert env["MODEL_URI"] == v2.uri
    assert f"?versionId={v2.version_id}" in env["MODEL_URI"]
    assert env["MODEL_SHA256"] == v2.sha256
    assert v2.version_id != demo_run.models["v1"].version_id


@slow
def test_duplicate_upload_event_deploys_once(demo_run):
    assert demo_run.duplicate_event_deployed_once


def character_error_rate(hypothesis: str, reference: str) -> float:
    """Levenshtein distance over characters, divided by the reference length."""
    return edit_distance(list(reference), list(hypothesis)) / max(1, len(reference))


def test_character_error_rate():
    assert character_error_rate("the cat", "the cat") == 0
    assert character_error_rate("the bat", "the cat") == 1 / 7
    assert character_error_rate("", "abc") == 1


@slow
def test_both_models_transcribe_the_clip_close_to_its_reference(demo_run):
    # v2 holds v1's weights (a re-release), so both must read the clip the same way, and well.
    assert demo_run.transcripts["v2"] == demo_run.transcripts["v1"]
    assert character_error_rate(demo_run.transcripts["v2"], demo_run.reference_text) <= MAX_DEMO_CER


@slow
def test_old_task_drains_and_exits_cleanly_on_sigterm(demo_run):
    assert demo_run.old_task_stop is not None
    assert demo_run.old_task_stop.exit_code == 0
    # A live stream was open on it: the drain finished that session instead of cutting it.
    assert demo_run.drained_sessions == 1
    assert demo_run.live_stream_final.strip()


@slow
def test_corrupted_model_never_serves_and_old_task_keeps_serving(demo_run):
    assert demo_run.revisions["corrupt"] not in (demo_run.revisions["v1"], demo_run.revisions["v2"])
    assert demo_run.corrupt_task_exit_code not in (None, 0)
    assert demo_run.serving_after_corrupt_rollout
    # Same model, same clip: the healthy task answers exactly as before.
    assert demo_run.transcripts["v2 after corrupt upload"] == demo_run.transcripts["v2"]
    assert demo_run.service_revision_after_rollback == demo_run.revisions["v2"]


@slow
def test_scan_finding_and_failed_deployment_raise_alerts(demo_run):
    assert demo_run.alerts["scan"], "scan_alert published nothing for moto's HIGH finding"
    assert demo_run.alerts["deployment"], "deploy_watch published nothing for SERVICE_DEPLOYMENT_FAILED"


@slow
def test_night_mode_scales_to_zero_and_morning_restores(demo_run):
    day, night, morning = (demo_run.capacity[k] for k in ("before night", "night", "morning"))
    assert (night.min, night.max, night.desired) == (0, 0, 0)
    assert morning == day
    # The demo played ECS: the task stopped for the night and a new one served in the morning.
    assert "task start → ready (morning)" in demo_run.timings


@slow
def test_the_summary_shows_the_latency_the_serving_task_measured(demo_run):
    # Step 4 transcribed the clip on the v2 task: it measured partials and at least one final.
    partial, final = demo_run.latency["partial"], demo_run.latency["final"]
    assert partial.count > 0 and final.count > 0
    for summary in (partial, final):
        assert 0 < summary.p50_ms <= summary.p95_ms < 5000


@slow
def test_a_valid_but_wrong_model_fails_its_golden_gate_and_the_alert_names_it(demo_run):
    # The gate was on from the first revision and ran on every task that turned ready.
    assert demo_run.golden_wer["v1"] == demo_run.golden_wer["v2"] <= 0.1
    assert demo_run.revision_env["v2"]["GOLDEN_SET"] == demo_run.models["v1"].golden_set != ""
    # The wrong-token checkpoint loaded, then failed the gate: exit 3, one line, never ready.
    assert demo_run.wrong_task_exit_code == 3
    assert demo_run.wrong_task_gate_line["wer"] > demo_run.wrong_task_gate_line["max_wer"]
    assert demo_run.wrong_task_gate_line["model_sha256"] == demo_run.models["wrong"].sha256
    # The old model keeps serving, word for word.
    assert demo_run.serving_after_wrong_rollout
    assert demo_run.transcripts["after wrong upload"] == demo_run.transcripts["v2"]
    assert demo_run.service_revision_after_gate_rollback == demo_run.revisions["v2"]
    (alert,) = demo_run.alerts["gate"]
    # A wrong token list turns nearly every word wrong (a phoneme model may still hit a short one).
    subject = re.search(r"golden-set gate, WER (\d\.\d\d) > 0\.1", alert["subject"])
    assert subject is not None and float(subject.group(1)) >= 0.8
    message = re.search(r"golden gate:   FAILED, WER (\d\.\d{3}) above GOLDEN_MAX_WER 0\.1", alert["message"])
    assert message is not None
    assert float(message.group(1)) == pytest.approx(float(subject.group(1)), abs=0.005)


@slow
def test_the_task_gets_its_tokens_from_the_secret_and_a_client_without_one_is_refused(demo_run):
    table = parse_client_tokens(demo_run.first_task_auth_tokens)
    assert table.names == (DEMO_CLIENT,)
    assert table.match(demo_run.tokens["first"]) == Client(DEMO_CLIENT)
    assert demo_run.tokens["first"] not in demo_run.first_task_auth_tokens  # only its SHA-256
    refused = demo_run.refused_client
    assert refused is not None and refused.exit_code == 1
    assert any("unauthorized" in line for line in refused.stderr)
    assert demo_run.transcripts["v1"]  # the client with the token transcribed


@slow
def test_token_rotation_keeps_the_open_session_and_accepts_both_tokens_on_the_new_task(demo_run):
    rotation = demo_run.rotation
    assert rotation["revision"] != rotation["previous_revision"]
    assert rotation["report"]["rollout"]["status"] == "started"
    # The new task pins the new version, still serves model v2, and accepts both tokens.
    env = demo_run.token_revision_env
    assert env["MODEL_URI"] == demo_run.models["v2"].uri
    table = parse_client_tokens(env["AUTH_TOKENS"])
    for token in (demo_run.tokens["rotated"], demo_run.tokens["first"]):
        assert table.match(token) == Client(DEMO_CLIENT)
    assert rotation["new_token_on_new_task"].exit_code == 0
    assert rotation["new_token_on_new_task"].text == demo_run.transcripts["v1"]
    assert rotation["old_token_on_new_task"].exit_code == 0
    # The session opened with the previous token on the old task ran to its end: done, 1000.
    assert rotation["live_exit"] == 0 and rotation["live_final"].strip()
    assert rotation["live_summary"]["close_code"] == 1000
    assert rotation["live_summary"]["client"] == DEMO_CLIENT
    assert rotation["old_task_exit"] == 0


@slow
def test_no_token_reaches_a_task_log_or_moto(demo_run):
    """Every log the demo kept (each task's JSON lines, moto's) is free of the tokens it used."""
    logs = [path for path in demo_run.work_dir.rglob("*.log") if path.is_file()]
    assert any(path.parent.name == "task-tokens" for path in logs)
    tokens = (demo_run.tokens["first"], demo_run.tokens["rotated"])
    for path in logs:
        text = path.read_text(errors="replace")
        assert not any(token in text for token in tokens), path
    task_log = (demo_run.work_dir / "task-tokens" / "task.log").read_text()
    assert f'"client": "{DEMO_CLIENT}"' in task_log


@slow
def test_deploy_image_ships_a_clean_tag_keeping_the_model_pin_and_refuses_bad_ones(demo_run):
    shipped = demo_run.image_rollout
    assert shipped["image_before"].endswith(":v1") and shipped["image_after"].endswith(":v2")
    assert shipped["env_unchanged"] and shipped["secrets_unchanged"]
    assert shipped["report"]["model_uri"] == demo_run.token_revision_env["MODEL_URI"]
    assert shipped["revision"] != shipped["previous_revision"]
    (code_missing, why_missing), (code_cve, why_cve) = shipped["refusals"].values()
    assert code_missing == 1 and "is not in ECR" in why_missing
    assert code_cve == 1 and "at or above HIGH" in why_cve
    assert [n["subject"].split(":")[0] for n in shipped["notifications"]] == [
        "[ezspeech] rollout deploy-image"
    ]
    assert shipped["transcript"]  # the task of the new revision serves
