"""Steps 1-2: both stacks in moto, then the first task serving the first model."""

from __future__ import annotations

import textwrap
import time

from demo.flow import DemoRun, short_arn
from demo.provision import (
    create_automation_backing,
    create_client_tokens_secret,
    create_model_uploaded_rule,
    create_models_bucket,
    create_service,
    publish_names,
)
from demo.resources import model_uploaded_pattern
from demo.steps.common import (
    DEMO_CLIENT,
    GOLDEN_MAX_WER,
    DemoInputs,
    masked,
    masked_table,
    relative,
    show_golden_pass,
)
from demo.task import LocalTask


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
    say.fact("  with its golden set", f"{relative(inputs.golden_set)} → {first.golden_set}")
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
    say.fact("  its token, shown once", f"{masked(run.token)}; the secret keeps only its SHA-256")
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
    say.fact("AUTH_TOKENS (secrets)", masked_table(task.container_env["AUTH_TOKENS"]))
    ready_s = task.wait_ready()
    run.result.timings["task start → ready (v1)"] = ready_s
    say.fact("ready after", f"{ready_s:.1f} s (pid {task.pid}, ws {task.ws_url})")
    show_golden_pass(run, task)
    text = run.transcribe(task).text
    run.result.transcripts["v1"] = text
    say.say(
        f"Streamed {inputs.clip.name} through the real client (python -m asr_client) with "
        f"{DEMO_CLIENT}'s token:"
    )
    say.transcript("reference", inputs.reference_text)
    say.transcript("transcript (model v1)", text)
    refused = run.try_client(task, None)
    run.result.refused_client = refused
    say.fact("client without a token", f"exit {refused.exit_code}: {(refused.stderr or [''])[0][:100]}")
    run.serving = task
    return task
