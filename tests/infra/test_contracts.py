"""Contracts between the parts: Terraform ⇄ Dockerfile ⇄ docker-compose ⇄ the server's own
defaults ⇄ the SAM template. Each side is read from its source (HCL, Dockerfile, YAML, the
settings module); the health probes are run for real against the server's health routes."""

from __future__ import annotations

import asyncio
import fnmatch
import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from asr_service import auth
from asr_service import metrics as server_metrics
from asr_service import settings as server_settings
from asr_service.emf import EMF_NAMESPACE
from asr_service.http import HttpServer, add_health_routes
from tests.infra.helpers import TerraformConfig, exec_form, load_terraform, one_block, read_dockerfile

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
SAMCONFIG = ROOT / "samconfig.toml"
ENVIRONMENTS = ("dev", "prod")
# Process-level variables the image or the task sets that are not server settings.
NON_SETTING_ENV = {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "HOME", "TMPDIR"}


@pytest.fixture(scope="module")
def tf() -> TerraformConfig:
    return load_terraform()


@pytest.fixture(scope="module")
def docker_env() -> dict[str, str]:
    dockerfile = read_dockerfile()
    env: dict[str, str] = {}
    for line in dockerfile.final.all("ENV"):
        env.update(dict(pair.split("=", 1) for pair in line.split()))
    return env


@pytest.fixture(scope="module")
def compose_services() -> dict[str, Any]:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert isinstance(services, dict)
    return services


def setting_env_names() -> set[str]:
    return {row[0] for row in server_settings.settings_table()}


def terraform_env_names(tf: TerraformConfig) -> set[str]:
    """Keys of the task definition's environment map (the merge() in ecs.tf)."""
    names = set(re.findall(r"[{,]\s*([A-Z][A-Z0-9_]*) = ", tf.locals["container_environment"]))
    assert {"SERVER_PORT", "HEALTH_PORT", "SERVICE_NAME"} <= names, names
    return names


# ------------------------------------------------------------------------------ ports and names
def test_ports_agree_everywhere(
    tf: TerraformConfig, docker_env: dict[str, str], compose_services: dict[str, Any]
) -> None:
    defaults = server_settings.Settings()
    ws_port, health_port = tf.locals["websocket_port"], tf.locals["health_port"]
    assert (defaults.port, defaults.health_port) == (ws_port, health_port) == (8765, 8080)
    assert (docker_env["SERVER_PORT"], docker_env["HEALTH_PORT"]) == (str(ws_port), str(health_port))
    dockerfile = read_dockerfile()
    assert dockerfile.final.all("EXPOSE") == [f"{ws_port} {health_port}"]
    for name in ("asr-server", "asr-server-gpu"):
        service = compose_services[name]
        assert set(service["ports"]) == {f"{ws_port}:{ws_port}", f"{health_port}:{health_port}"}
        assert (service["environment"]["SERVER_PORT"], service["environment"]["HEALTH_PORT"]) == (
            str(ws_port),
            str(health_port),
        )
    assert f"http://asr:{ws_port}" in (ROOT / "deploy" / "nginx" / "nginx.conf").read_text()


def test_container_name_is_the_design_name(tf: TerraformConfig) -> None:
    assert tf.locals["container_name"] == "asr-server"
    balancer = one_block(tf.resource("aws_ecs_service", "asr"), "load_balancer")
    assert balancer["container_name"] == "${local.container_name}"
    assert balancer["container_port"] == "${local.websocket_port}"


def test_every_env_var_set_for_the_container_is_a_server_setting(
    tf: TerraformConfig, docker_env: dict[str, str], compose_services: dict[str, Any]
) -> None:
    known = setting_env_names() | NON_SETTING_ENV
    assert terraform_env_names(tf) <= known, terraform_env_names(tf) - known
    assert set(docker_env) <= known, set(docker_env) - known
    for service in ("asr-server", "asr-server-gpu"):
        assert set(compose_services[service]["environment"]) <= known


def _resolve(expression: str, tf: TerraformConfig, gpu: bool) -> str:
    """Value of one entry of the environment map, for the variables' defaults."""
    expression = expression.strip()
    if re.fullmatch(r'"[^"]*"', expression):
        return expression[1:-1]
    inner = re.fullmatch(r"tostring\((.+)\)", expression)
    if inner:
        return _resolve(inner.group(1), tf, gpu)
    if expression.startswith("var."):
        return str(tf.variables[expression[4:]]["default"])
    if expression == 'local.gpu_mode ? "cuda" : "cpu"':
        return "cuda" if gpu else "cpu"
    if expression == "local.workers_per_task":  # the default: one per vCPU on Fargate, one on a GPU
        return "1" if gpu else str(max(1, int(tf.variables["task_cpu"]["default"]) // 1024))
    if expression == "local.service_name":
        return f"{tf.variables['project']['default']}-dev-asr"
    if expression.startswith("local."):
        return str(tf.locals[expression[6:]])
    raise AssertionError(f"extend _resolve for {expression!r}")


@pytest.mark.parametrize("gpu", [False, True], ids=["cpu", "gpu"])
def test_the_task_definition_environment_passes_the_server_validation(tf: TerraformConfig, gpu: bool) -> None:
    first_map = re.match(r"\$\{merge\(\{(.*?)\}, ", tf.locals["container_environment"])
    assert first_map, "ecs.tf: container_environment must start with the literal map"
    entries = re.findall(r"([A-Z][A-Z0-9_]*) = (.+?)(?=, [A-Z][A-Z0-9_]* = |$)", first_map.group(1))
    environ = {name: _resolve(value, tf, gpu) for name, value in entries}
    assert environ["DEVICE"] == ("cuda" if gpu else "cpu")
    # Without the secret's value the task must not start: the service is never open in AWS.
    with pytest.raises(server_settings.SettingsError, match="REQUIRE_AUTH is true"):
        server_settings.load_settings([], environ=environ)
    # With it (what ECS resolves from the `secrets` entry: the secret's JSON text) it starts.
    environ["AUTH_TOKENS"] = json.dumps({"web": auth.hash_token("t0ken"), "batch": {"tokens": ["raw"]}})
    settings = server_settings.load_settings([], environ=environ)
    assert settings.auth_tokens.names == ("web", "batch") and settings.require_auth
    assert (settings.port, settings.health_port) == (tf.locals["websocket_port"], tf.locals["health_port"])
    assert settings.drain_timeout_s == tf.variables["drain_timeout_seconds"]["default"]
    assert settings.service_name == environ["SERVICE_NAME"]
    assert settings.workers == ("1" if gpu else "2")


def test_drain_budget_fits_the_stop_timeout(tf: TerraformConfig, compose_services: dict[str, Any]) -> None:
    stop_timeout = tf.variables["stop_timeout_seconds"]["default"]
    assert server_settings.DEFAULT_DRAIN_TIMEOUT_S < stop_timeout <= 120
    assert tf.variables["drain_timeout_seconds"]["default"] == server_settings.DEFAULT_DRAIN_TIMEOUT_S
    assert "DRAIN_TIMEOUT_S = tostring(var.drain_timeout_seconds)" in tf.locals["container_environment"]
    assert compose_services["asr-server"]["stop_grace_period"] == f"{stop_timeout}s"


def test_model_cache_is_on_the_writable_scratch_volume(
    tf: TerraformConfig, docker_env: dict[str, str]
) -> None:
    assert server_settings.Settings().model_cache_dir.startswith("/tmp/")
    assert docker_env["MODEL_CACHE_DIR"].startswith("/tmp/")
    assert 'MODEL_CACHE_DIR = "/tmp/asr-models"' in tf.locals["container_environment"]
    assert (
        'mountPoints = [{sourceVolume = "scratch", containerPath = "/tmp"'
        in tf.locals["container_definition"]
    )


# ------------------------------------------------------------------------------ client tokens
def test_client_tokens_reach_the_container_only_through_the_secrets_entry(tf: TerraformConfig) -> None:
    definition = tf.locals["container_definition"]
    assert 'secrets = [{name = "AUTH_TOKENS", valueFrom = local.client_tokens_secret_arn}]' in definition
    assert "AUTH_TOKENS" not in terraform_env_names(tf)
    assert 'REQUIRE_AUTH = "true"' in tf.locals["container_environment"]
    assert {"AUTH_TOKENS", "REQUIRE_AUTH"} <= setting_env_names()
    # Nothing can put tokens into the plain environment or switch auth off.
    guards = [v["condition"] for v in tf.variables["extra_environment"]["validation"]]
    assert any('"AUTH_TOKENS"' in g and '"REQUIRE_AUTH"' in g for g in guards)
    # The ARN comes from the created secret unless one is given.
    assert tf.locals["client_tokens_secret_arn"] == (
        "${(local.create_client_tokens_secret ? aws_secretsmanager_secret.client_tokens[0].arn"
        " : var.client_tokens_secret_arn)}"
    )


def test_the_secret_is_named_after_the_stack_and_encrypted_with_its_own_key(tf: TerraformConfig) -> None:
    secret = tf.resource("aws_secretsmanager_secret", "client_tokens")
    assert secret["name"] == "${local.name}/client-tokens"
    assert secret["count"] == "${local.create_client_tokens_secret ? 1 : 0}"
    assert "aws_kms_key.client_tokens[0].arn" in secret["kms_key_id"]
    assert tf.resource("aws_kms_key", "client_tokens")["enable_key_rotation"] is True
    resources = pytest.importorskip("demo.resources")
    names = resources.StackNames(environment="dev")
    assert secret["name"].replace("${local.name}", names.name) == names.client_tokens_secret


def test_only_the_execution_role_may_read_the_secret_and_only_that_one(tf: TerraformConfig) -> None:
    documents = tf.data["aws_iam_policy_document"]
    execution = documents["execution"]
    reads = [s for s in execution["statement"] if any(a.startswith("secretsmanager:") for a in s["actions"])]
    assert [(s["actions"], s["resources"]) for s in reads] == [
        (["secretsmanager:GetSecretValue"], ["${local.client_tokens_secret_arn}"])
    ]
    (dynamic,) = [block["statement"] for block in execution["dynamic"]]
    assert dynamic["for_each"] == (
        "${local.client_tokens_kms_key_arn == null ? [] : [local.client_tokens_kms_key_arn]}"
    )
    (decrypt,) = dynamic["content"]
    assert decrypt["actions"] == ["kms:Decrypt"] and decrypt["resources"] == ["${statement.value}"]
    assert decrypt["condition"] == [
        {
            "test": "StringEquals",
            "variable": "kms:ViaService",
            "values": ["secretsmanager.${local.region}.amazonaws.com"],
        }
    ]
    # No other policy (the task role included: the server never calls Secrets Manager) touches it.
    for name, document in documents.items():
        if name == "execution":
            continue
        for statement in document.get("statement", []):
            assert not any(a.startswith(("secretsmanager:", "kms:")) for a in statement["actions"]), name


def test_terraform_never_holds_a_token(tf: TerraformConfig) -> None:
    """The secret's value is written by `make rotate-tokens`, never by Terraform: so no token is in
    the state, a plan or an output."""
    assert "aws_secretsmanager_secret_version" not in tf.resources
    output_text = json.dumps(tf.outputs)
    assert "secret_string" not in output_text and "secret_version" not in output_text
    assert tf.outputs["client_tokens_secret_arn"]["value"] == "${local.client_tokens_secret_arn}"


# ------------------------------------------------------------------------------ metrics
def test_scaling_policy_reads_the_metric_the_server_writes(tf: TerraformConfig) -> None:
    record = json.loads(server_metrics.ServiceMetrics().emf_line("svc", now=0))
    (directive,) = record["_aws"]["CloudWatchMetrics"]
    written = {metric["Name"] for metric in directive["Metrics"]}
    config = one_block(
        tf.resource("aws_appautoscaling_policy", "active_streams"),
        "target_tracking_scaling_policy_configuration",
    )
    metric = one_block(config, "customized_metric_specification")
    dimension = one_block(metric, "dimensions")
    assert metric["namespace"] == directive["Namespace"] == EMF_NAMESPACE
    assert metric["metric_name"] in written
    assert directive["Dimensions"] == [[dimension["name"]]]
    assert record[dimension["name"]] == "svc"
    # The server labels its lines with SERVICE_NAME; the task sets it to the same value the
    # policy's dimension filters on.
    assert dimension["value"] == "${local.service_name}"
    assert "SERVICE_NAME = local.service_name" in tf.locals["container_environment"]
    assert "SERVICE_NAME" in setting_env_names()


# ------------------------------------------------------------------------------ health probes, run for real
class _Status:
    """Just enough of the server for the health routes."""

    def __init__(self, ready: bool) -> None:
        self.ready = ready
        self.metrics = server_metrics.ServiceMetrics()

    def is_ready(self) -> bool:
        return self.ready

    def readiness(self) -> dict[str, Any]:
        return {"ready": self.ready}

    def metrics_json(self) -> dict[str, Any]:
        return {}


async def _get_status(port: int, path: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    return int(status_line.split()[1])


async def _probe(argv: list[str], health_port: int) -> int:
    """Run a container health command (exec form, `python` = this interpreter)."""
    assert argv[0] == "python"
    process = await asyncio.create_subprocess_exec(
        sys.executable, *argv[1:], env={"HEALTH_PORT": str(health_port)}
    )
    return await asyncio.wait_for(process.wait(), 30)


def test_alb_readiness_path_is_served_by_the_health_port(tf: TerraformConfig) -> None:
    async def scenario() -> tuple[int, int]:
        codes = []
        for ready in (True, False):
            http = HttpServer()
            add_health_routes(http, _Status(ready))
            port = await http.start("127.0.0.1", 0)
            try:
                codes.append(await _get_status(port, tf.locals["ready_path"]))
            finally:
                await http.stop()
        return codes[0], codes[1]

    assert asyncio.run(scenario()) == (200, 503)


def test_container_health_commands_pass_against_a_live_server_and_fail_without_one(
    tf: TerraformConfig,
) -> None:
    dockerfile = read_dockerfile()
    (healthcheck,) = dockerfile.final.all("HEALTHCHECK")
    docker_argv = exec_form(healthcheck.partition(" CMD ")[2])
    ecs_command = tf.locals["container_health_command"]
    assert ecs_command[0] == "CMD"
    commands = {"Dockerfile": docker_argv, "task definition": ecs_command[1:]}

    async def scenario() -> dict[str, tuple[int, int]]:
        http = HttpServer()
        add_health_routes(http, _Status(ready=False))  # alive but not ready: liveness must pass
        port = await http.start("127.0.0.1", 0)
        try:
            alive = {name: await _probe(argv, port) for name, argv in commands.items()}
        finally:
            await http.stop()
        dead = {name: await _probe(argv, port) for name, argv in commands.items()}
        return {name: (alive[name], dead[name]) for name in commands}

    for name, (alive, dead) in asyncio.run(scenario()).items():
        assert alive == 0, f"{name} health command fails against a live server"
        assert dead != 0, f"{name} health command passes with nothing listening"


# ------------------------------------------------------------------------------ SAM ⇄ Terraform
class _CloudFormationLoader(yaml.SafeLoader):
    """SafeLoader that reads !Ref, !Sub, !GetAtt ... as plain values."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    assert isinstance(node, yaml.MappingNode)
    return {suffix: loader.construct_mapping(node, deep=True)}


_CloudFormationLoader.add_multi_constructor("!", _construct_tag)


def terraform_ssm_names(tf: TerraformConfig) -> set[str]:
    project = tf.variables["project"]["default"]
    keys = set(tf.locals["ssm_parameters"])
    return {f"/{project}/{env}/{key}" for env in ENVIRONMENTS for key in keys}


def samconfig_overrides() -> dict[str, dict[str, str]]:
    """``sam deploy`` parameter overrides per config environment (samconfig.toml), if any."""
    if not SAMCONFIG.exists():
        return {}
    config = tomllib.loads(SAMCONFIG.read_text())
    overrides: dict[str, dict[str, str]] = {}
    for env, section in config.items():
        if not isinstance(section, dict):
            continue  # `version = 0.1`
        raw = section.get("deploy", {}).get("parameters", {}).get("parameter_overrides", "")
        text = " ".join(raw) if isinstance(raw, list) else str(raw)
        overrides[env] = dict(re.findall(r'([A-Za-z0-9]+)="?([^" ]*)"?', text))
    return overrides


def sam_ssm_names() -> set[str]:
    template = _load_template()
    names = set()
    ssm_parameters = []
    for name, parameter in template.get("Parameters", {}).items():
        if parameter.get("Type") == "AWS::SSM::Parameter::Value<String>":
            assert "Default" in parameter, f"{name} has no default SSM name"
            names.add(parameter["Default"])
            ssm_parameters.append(name)
    for values in samconfig_overrides().values():  # per-environment overrides of those parameters
        names.update(values[name] for name in ssm_parameters if name in values)
    return names


def test_every_ssm_parameter_the_sam_stack_reads_is_written_by_terraform(tf: TerraformConfig) -> None:
    read = sam_ssm_names()
    assert read, "template.yaml reads no SSM parameter: the automation cannot find the core stack"
    missing = read - terraform_ssm_names(tf)
    assert not missing, f"SAM reads SSM parameters Terraform never writes: {sorted(missing)}"


def _load_template() -> dict[str, Any]:
    if not TEMPLATE.exists():
        pytest.skip("template.yaml not written yet (the SAM issue)")
    template = yaml.load(TEMPLATE.read_text(), Loader=_CloudFormationLoader)  # noqa: S506 - a SafeLoader
    assert isinstance(template, dict)
    return template


def _function_env_values(template: dict[str, Any], variable: str) -> set[str]:
    """Values the functions get for ``variable``, with !Ref to a parameter resolved to its default."""
    values = set()
    for resource in template["Resources"].values():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        env = resource.get("Properties", {}).get("Environment", {}).get("Variables", {})
        if variable in env:
            value = env[variable]
            if isinstance(value, dict) and "Ref" in value:
                value = template["Parameters"][value["Ref"]]["Default"]
            values.add(str(value))
    return values


def test_sam_and_terraform_agree_on_container_name_and_model_prefix(tf: TerraformConfig) -> None:
    template = _load_template()
    assert _function_env_values(template, "CONTAINER_NAME") == {tf.locals["container_name"]}
    (prefix,) = _function_env_values(template, "MODEL_KEY_PREFIX")
    statements = tf.data["aws_iam_policy_document"]["task"]["statement"]
    readable = {resource for statement in statements for resource in statement["resources"]}
    assert f"${{aws_s3_bucket.models.arn}}/{prefix}*" in readable


def test_rollout_may_pass_the_roles_terraform_creates(tf: TerraformConfig) -> None:
    """model_rollout registers task definitions naming Terraform's roles; SAM scopes PassRole by name."""
    template = _load_template()
    parameter = template["Parameters"].get("TaskRoleNamePattern")
    if parameter is None:
        pytest.skip("template.yaml scopes no task-role pattern")
    patterns = {"dev": parameter["Default"]}
    for env, values in samconfig_overrides().items():
        if env in ENVIRONMENTS and "TaskRoleNamePattern" in values:
            patterns[env] = values["TaskRoleNamePattern"]
    for env, pattern in patterns.items():
        name = f"{tf.variables['project']['default']}-{env}"
        for role in ("execution", "task"):
            role_name = tf.resource("aws_iam_role", role)["name"].replace("${local.name}", name)
            assert fnmatch.fnmatchcase(role_name, pattern), (env, role_name, pattern)


def test_terraform_and_sam_never_write_the_same_ssm_parameter(tf: TerraformConfig) -> None:
    template = _load_template()
    owned_by_sam = set()
    for resource in template["Resources"].values():
        if resource.get("Type") == "AWS::SSM::Parameter":
            name = resource["Properties"]["Name"]
            text = name["Sub"] if isinstance(name, dict) else name
            for env in ENVIRONMENTS:
                owned_by_sam.add(text.replace("${Environment}", env))
    assert not owned_by_sam & terraform_ssm_names(tf)


# ------------------------------------------------------------------------------ demo ⇄ Terraform
def test_the_demo_rehearses_terraforms_names(tf: TerraformConfig) -> None:
    """`make demo` stands up Terraform's resources in moto under the same names (demo/resources.py)."""
    resources = pytest.importorskip("demo.resources")
    names = resources.StackNames(environment="dev")

    def terraform_value(template: str) -> str:
        return template.replace("${local.name}", names.name).replace("${local.account_id}", names.account_id)

    assert terraform_value(tf.resource("aws_ecs_cluster", "this")["name"]) == names.cluster
    assert terraform_value(tf.locals["service_name"]) == names.service
    assert terraform_value(tf.resource("aws_ecs_task_definition", "asr")["family"]) == names.task_family
    assert terraform_value(tf.resource("aws_ecr_repository", "asr")["name"]) == names.ecr_repository
    assert terraform_value(tf.locals["models_bucket_name"]) == names.models_bucket
    published = names.published_parameters()
    assert set(published) == {f"/{names.project}/dev/{key}" for key in tf.locals["ssm_parameters"]}
    log_group = terraform_value(tf.resource("aws_cloudwatch_log_group", "asr")["name"])
    assert published[f"/{names.project}/dev/log-group-name"] == log_group
    assert (
        tf.locals["websocket_port"],
        tf.locals["health_port"],
    ) == (resources.SERVER_PORT, resources.HEALTH_PORT)
    assert tf.locals["container_name"] == resources.CONTAINER_NAME
