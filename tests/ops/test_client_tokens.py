"""Client tokens: `python -m ops.tokens` against moto, and the rollout path it shares with models.

What a user notices: the service is rolled onto a revision pinning the new secret version (model
pin kept), the previous token keeps working until retired, tokens are shown once and are found
nowhere else (secret, task definitions, stderr), and a failed deployment is reported, not hidden.
moto cannot show ECS deployment state, so the waiting is tested with a botocore Stubber.
"""

from __future__ import annotations

import json
import shlex
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from ezspeech_common.client_tokens import (
    SecretRef,
    deployment_state,
    roll_out_client_tokens,
    tokens_secret,
    wait_for_deployment,
)
from ezspeech_common.errors import ClientTokensError, DeploymentFailedError
from ezspeech_common.rollout import ModelRef, RolloutSettings, roll_out_model

from asr_service.auth import Client, parse_client_tokens
from ops import tokens as ops_tokens
from tests.functions.helpers import BUCKET, CLUSTER, CONTAINER, SERVICE, Platform, put_model

ROOT = Path(__file__).resolve().parents[2]
NAMES = ["--cluster", CLUSTER, "--service", SERVICE]
SETTINGS = RolloutSettings(cluster=CLUSTER, service=SERVICE, container_name=CONTAINER)
TD_ARN = "arn:aws:ecs:us-east-1:123456789012:task-definition/ezspeech-test-asr:"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ezspeech-test/client-tokens-AbCdEf"


@pytest.fixture
def secured(platform: Platform) -> dict[str, Any]:
    """The stack after `terraform apply`: a secret without a value, read by the task as AUTH_TOKENS."""
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    arn = sm.create_secret(Name="ezspeech-test/client-tokens")["ARN"]
    ecs = platform.clients.ecs
    current = ecs.describe_task_definition(taskDefinition=platform.first_task_definition)["taskDefinition"]
    containers: list[Any] = [
        {**c, "secrets": [{"name": "AUTH_TOKENS", "valueFrom": arn}]} if c["name"] == CONTAINER else c
        for c in current["containerDefinitions"]
    ]
    wired = ecs.register_task_definition(
        family=current["family"],
        taskRoleArn=current["taskRoleArn"],
        executionRoleArn=current["executionRoleArn"],
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="1024",
        memory="4096",
        containerDefinitions=containers,
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.update_service(cluster=CLUSTER, service=SERVICE, taskDefinition=wired)
    return {"sm": sm, "arn": arn, "ecs": ecs}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any], str]:
    capsys.readouterr()
    code = ops_tokens.main([*args, *NAMES, "--no-wait"])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if captured.out.strip() else {}), captured.err


def service_definition(ecs: Any) -> dict[str, Any]:
    arn = ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]["taskDefinition"]
    return dict(ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"])


def resolved_auth_tokens(secured: dict[str, Any]) -> str:
    """AUTH_TOKENS as ECS would hand it to a new task of the service's revision."""
    ref = tokens_secret(service_definition(secured["ecs"]), CONTAINER)
    return str(secured["sm"].get_secret_value(SecretId=ref.arn, VersionId=ref.version_id)["SecretString"])


def test_add_then_rotate_pins_each_version_and_keeps_the_previous_token_until_retired(
    secured: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code, added, _ = run(capsys, "add", "--client", "web", "--max-sessions", "3")
    assert code == 0 and added["rollout"]["status"] == "started"
    first = added["new_tokens"]["web"]
    definition = service_definition(secured["ecs"])
    assert tokens_secret(definition, CONTAINER) == SecretRef(secured["arn"], added["secret_version"])
    assert parse_client_tokens(resolved_auth_tokens(secured)).match(first) == Client("web", 3)

    code, rotated, _ = run(capsys, "rotate")
    second = rotated["new_tokens"]["web"]
    assert code == 0 and second != first
    table = parse_client_tokens(resolved_auth_tokens(secured))
    # Both valid on the new tasks: clients switch over at their own pace.
    assert table.match(second) == table.match(first) == Client("web", 3)
    assert rotated["clients"] == {"web": {"valid_tokens": 2, "max_sessions": 3}}

    code, retired, _ = run(capsys, "retire-previous")
    table = parse_client_tokens(resolved_auth_tokens(secured))
    assert code == 0 and "new_tokens" not in retired
    assert table.match(second) == Client("web", 3) and table.match(first) is None
    # Every step was its own revision, each pinning its own version.
    assert len({added["rollout"]["task_definition_arn"], rotated["rollout"]["task_definition_arn"]}) == 2


def test_revoke_previous_invalidates_the_old_token_at_once_and_other_clients_keep_theirs(
    secured: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    _, web, _ = run(capsys, "add", "--client", "web")
    _, batch, _ = run(capsys, "add", "--client", "batch")
    _, rotated, _ = run(capsys, "rotate", "--client", "web", "--revoke-previous")
    table = parse_client_tokens(resolved_auth_tokens(secured))
    assert table.match(web["new_tokens"]["web"]) is None
    assert table.match(rotated["new_tokens"]["web"]) == Client("web")
    assert table.match(batch["new_tokens"]["batch"]) == Client("batch")
    assert set(rotated["new_tokens"]) == {"web"}


def test_a_token_is_shown_once_and_stored_nowhere(
    secured: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    capsys.readouterr()
    out = tmp_path / "tokens.json"
    assert ops_tokens.main(["add", "--client", "web", *NAMES, "--no-wait", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    token = json.loads(out.read_text())["web"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    _, rotated, err = run(capsys, "rotate")
    shown = rotated["new_tokens"]["web"]
    ecs, sm = secured["ecs"], secured["sm"]
    family = service_definition(ecs)["family"]
    definitions = [
        json.dumps(ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"], default=str)
        for arn in ecs.list_task_definitions(familyPrefix=family)["taskDefinitionArns"]
    ]
    versions = sm.list_secret_version_ids(SecretId=secured["arn"])["Versions"]
    stored = [
        sm.get_secret_value(SecretId=secured["arn"], VersionId=v["VersionId"])["SecretString"]
        for v in versions
    ]
    assert len(stored) == 2
    for secret in (token, shown):
        assert secret not in captured.out + captured.err + err
        assert not any(secret in text for text in stored + definitions)
    assert all("sha256:" in text for text in stored)


def test_model_and_token_rollouts_keep_each_others_pin(
    secured: dict[str, Any], platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "add", "--client", "web")
    uploaded = put_model(platform, "models/asr.pt")
    roll_out_model(
        platform.clients.s3,
        secured["ecs"],
        SETTINGS,
        ModelRef(BUCKET, "models/asr.pt", uploaded["version_id"]),
    )
    pinned_tokens = tokens_secret(service_definition(secured["ecs"]), CONTAINER)
    assert pinned_tokens.version_id  # the model rollout copied the token pin
    _, rotated, _ = run(capsys, "rotate")
    definition = service_definition(secured["ecs"])
    container = next(c for c in definition["containerDefinitions"] if c["name"] == CONTAINER)
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert env["MODEL_URI"].endswith(f"?versionId={uploaded['version_id']}")  # the token rollout kept it
    assert tokens_secret(definition, CONTAINER).version_id == rotated["secret_version"]
    assert rotated["rollout"]["previous_version_id"] == pinned_tokens.version_id


def test_refusals_and_no_ops_write_nothing(
    secured: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "add", "--client", "web")
    before = len(secured["sm"].list_secret_version_ids(SecretId=secured["arn"])["Versions"])
    for args, message in [
        (["remove", "--client", "web"], "no client would be left"),
        (["rotate", "--client", "nobody"], "unknown client(s) nobody"),
        (["add", "--client", "web"], "client web exists"),
        (["add", "--client", "bad name"], "client name 'bad name'"),
        (["rotate", "--secret-arn", SECRET], "the service reads its tokens from"),
    ]:
        code, _, err = run(capsys, *args)
        assert code == 1 and message in err, (args, err)
    # Nothing to retire: no version, no rollout.
    code, report, err = run(capsys, "retire-previous")
    assert code == 0 and report["deployment"] == "unchanged" and "nothing to change" in err
    assert report["rollout"] is None
    assert len(secured["sm"].list_secret_version_ids(SecretId=secured["arn"])["Versions"]) == before


def test_rotating_before_any_client_exists_says_to_add_one(
    secured: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "rotate")
    assert code == 1 and "no client yet: add one first" in err


def test_a_service_without_the_secret_entry_is_refused_clearly(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "add", "--client", "web")
    assert code == 1 and "no AUTH_TOKENS secret: apply Terraform" in err


def test_list_shows_names_limits_and_versions_never_tokens(
    secured: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    _, added, _ = run(capsys, "add", "--client", "web", "--max-sessions", "2")
    capsys.readouterr()
    assert ops_tokens.main(["list", *NAMES]) == 0
    listed = capsys.readouterr().out
    assert added["new_tokens"]["web"] not in listed and "sha256" not in listed
    report = json.loads(listed)
    assert report["clients"] == {"web": {"valid_tokens": 1, "max_sessions": 2}}
    assert report["service_runs_version"] == report["awscurrent_version"] == added["secret_version"]


def test_first_clients_can_be_written_before_the_service_exists(capsys: pytest.CaptureFixture[str]) -> None:
    from moto import mock_aws

    with mock_aws():
        sm = boto3.client("secretsmanager", region_name="us-east-1")
        arn = sm.create_secret(Name="fresh/client-tokens")["ARN"]
        assert ops_tokens.main(["add", "--client", "web", "--no-rollout", "--secret-arn", arn]) == 0
        report = json.loads(capsys.readouterr().out)
        value = sm.get_secret_value(SecretId=arn)["SecretString"]  # AWSCURRENT: what a new task reads
    assert report["deployment"] == "not rolled out"
    assert parse_client_tokens(value).match(report["new_tokens"]["web"]) == Client("web")


# ------------------------------------------------------------------ deployment state (Stubber)
def _definition(revision: int, value_from: str) -> dict[str, Any]:
    return {
        "taskDefinitionArn": f"{TD_ARN}{revision}",
        "family": "ezspeech-test-asr",
        "revision": revision,
        "status": "ACTIVE",
        "containerDefinitions": [
            {
                "name": CONTAINER,
                "image": "asr:v1",
                "environment": [{"name": "MODEL_URI", "value": "s3://b/models/a.pt?versionId=1"}],
                "secrets": [{"name": "AUTH_TOKENS", "valueFrom": value_from}],
            }
        ],
    }


def _service(task_definition: str, deployments: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "services": [
            {
                "serviceName": SERVICE,
                "status": "ACTIVE",
                "taskDefinition": task_definition,
                "deployments": deployments,
            }
        ]
    }


def test_a_rotation_during_a_rollout_supersedes_it_and_pins_the_version() -> None:
    ecs = boto3.client("ecs", region_name="us-east-1")
    current = _definition(7, f"{SECRET}:::v-old")
    deployments = [
        {
            "id": "ecs-svc/2",
            "status": "PRIMARY",
            "taskDefinition": f"{TD_ARN}7",
            "rolloutState": "IN_PROGRESS",
        },
        {"id": "ecs-svc/1", "status": "ACTIVE", "taskDefinition": f"{TD_ARN}6", "rolloutState": "COMPLETED"},
    ]
    with Stubber(ecs) as stub:
        stub.add_response("describe_services", _service(f"{TD_ARN}7", deployments))
        stub.add_response("describe_task_definition", {"taskDefinition": current, "tags": []})
        expected = _definition(7, f"{SECRET}:::v-new")["containerDefinitions"]
        stub.add_response(
            "register_task_definition",
            {"taskDefinition": {"taskDefinitionArn": f"{TD_ARN}8"}},
            {"family": "ezspeech-test-asr", "containerDefinitions": expected, "tags": ANY},
        )
        stub.add_response(
            "update_service",
            {
                "service": {
                    "deployments": [{"id": "ecs-svc/3", "status": "PRIMARY", "taskDefinition": f"{TD_ARN}8"}]
                }
            },
            {"cluster": CLUSTER, "service": SERVICE, "taskDefinition": f"{TD_ARN}8"},
        )
        result = roll_out_client_tokens(ecs, SETTINGS, "v-new", secret_arn=SECRET)
        stub.assert_no_pending_responses()
    assert (result.status, result.reason) == ("started", "superseded_in_progress_rollout")
    assert result.superseded_deployment_ids == ["ecs-svc/1"] and result.previous_version_id == "v-old"


def test_waiting_returns_only_once_the_old_tasks_are_gone() -> None:
    ecs = boto3.client("ecs", region_name="us-east-1")
    new = f"{TD_ARN}8"
    primary = {"id": "ecs-svc/3", "status": "PRIMARY", "taskDefinition": new}
    draining = {"id": "ecs-svc/2", "status": "ACTIVE", "taskDefinition": f"{TD_ARN}7"}
    naps: list[float] = []
    with Stubber(ecs) as stub:
        stub.add_response(
            "describe_services", _service(new, [{**primary, "rolloutState": "IN_PROGRESS"}, draining])
        )
        # ECS may call the new deployment COMPLETED while old tasks still drain: keep waiting.
        stub.add_response(
            "describe_services", _service(new, [{**primary, "rolloutState": "COMPLETED"}, draining])
        )
        stub.add_response("describe_services", _service(new, [{**primary, "rolloutState": "COMPLETED"}]))
        wait_for_deployment(ecs, SETTINGS, new, timeout_s=100, poll_s=5, sleep=naps.append, clock=lambda: 0.0)
        stub.assert_no_pending_responses()
    assert naps == [5, 5]


@pytest.mark.parametrize(
    ("service_td", "deployment", "message"),
    [
        (
            f"{TD_ARN}8",
            {"status": "PRIMARY", "rolloutState": "FAILED", "rolloutStateReason": "tasks failed"},
            "FAILED",
        ),
        (f"{TD_ARN}7", None, "rolled back"),
    ],
    ids=["failed", "rolled-back"],
)
def test_a_failed_or_rolled_back_deployment_is_an_error(
    service_td: str, deployment: dict[str, Any] | None, message: str
) -> None:
    ecs = boto3.client("ecs", region_name="us-east-1")
    deployments = [{"id": "ecs-svc/3", "taskDefinition": f"{TD_ARN}8", **deployment}] if deployment else []
    deployments.append(
        {"id": "ecs-svc/2", "status": "ACTIVE" if deployment else "PRIMARY", "taskDefinition": f"{TD_ARN}7"}
    )
    with Stubber(ecs) as stub:
        stub.add_response("describe_services", _service(service_td, deployments))
        with pytest.raises(DeploymentFailedError, match=message):
            deployment_state(ecs, SETTINGS, f"{TD_ARN}8")


def test_timeout_while_waiting_says_so() -> None:
    ecs = boto3.client("ecs", region_name="us-east-1")
    new = f"{TD_ARN}8"
    ticks = iter([0.0, 50.0, 101.0])
    with Stubber(ecs) as stub:
        for _ in range(2):
            stub.add_response(
                "describe_services",
                _service(
                    new,
                    [{"id": "d", "status": "PRIMARY", "taskDefinition": new, "rolloutState": "IN_PROGRESS"}],
                ),
            )
        with pytest.raises(DeploymentFailedError, match="did not complete within 100 s"):
            wait_for_deployment(
                ecs, SETTINGS, new, timeout_s=100, poll_s=1, sleep=lambda _s: None, clock=lambda: next(ticks)
            )


def test_value_from_forms() -> None:
    assert SecretRef.parse(SECRET) == SecretRef(SECRET)
    assert SecretRef.parse(f"{SECRET}:::v1") == SecretRef(SECRET, "v1")
    assert SecretRef(SECRET, "v1").value_from == f"{SECRET}:::v1"
    for bad in (f"{SECRET}:web::", f"{SECRET}::AWSPREVIOUS:", "arn:aws:ssm:us-east-1:1:parameter/x"):
        with pytest.raises(ClientTokensError):
            SecretRef.parse(bad)


def test_a_deployment_that_does_not_complete_still_shows_the_new_token_and_fails(
    secured: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def rolled_back(*_args: Any, **_kwargs: Any) -> None:
        raise DeploymentFailedError("the deployment was rolled back (circuit breaker)")

    monkeypatch.setattr(ops_tokens, "wait_for_deployment", rolled_back)
    capsys.readouterr()
    assert ops_tokens.main(["add", "--client", "web", *NAMES]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["deployment"].startswith("not completed: the deployment was rolled back")
    # The version is written; its token must not be lost with the deployment.
    value = secured["sm"].get_secret_value(SecretId=secured["arn"])["SecretString"]
    assert parse_client_tokens(value).match(report["new_tokens"]["web"]) == Client("web")


def _make_tokens_command(*variables: str) -> list[str]:
    """The ``python -m ops.tokens`` arguments `make rotate-tokens` would run (``make -n``)."""
    completed = subprocess.run(
        ["make", "-s", "-n", "rotate-tokens", "ENV=dev", "TOKENS_ARGS=--no-wait", *variables],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    joined = completed.stdout.replace("\\\n", " ")
    (line,) = [line for line in joined.splitlines() if "-m ops.tokens" in line]
    return shlex.split(line.split("-m ops.tokens", 1)[1])


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_the_make_targets_arguments_drive_the_tool(
    secured: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    add = _make_tokens_command("ADD=web", "MAX_SESSIONS=4")
    assert add[:3] == ["add", "--client", "web"] and "--no-wait" in add
    capsys.readouterr()
    assert ops_tokens.main([*add, *NAMES]) == 0
    first = json.loads(capsys.readouterr().out)["new_tokens"]["web"]
    assert ops_tokens.main([*_make_tokens_command("CLIENT=web", "REVOKE=1"), *NAMES]) == 0
    second = json.loads(capsys.readouterr().out)["new_tokens"]["web"]
    table = parse_client_tokens(resolved_auth_tokens(secured))
    assert table.match(second) == Client("web", 4) and table.match(first) is None
    assert _make_tokens_command("RETIRE=1")[0] == "retire-previous"
