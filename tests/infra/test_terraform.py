"""Static checks of the Terraform core stack, from its parsed HCL (python-hcl2).

These hold without the terraform binary. `terraform validate` and the mocked-provider
`terraform test` (which evaluates the configuration in GPU and CPU mode) run in
test_terraform_cli.py when the binary is available.
"""

from __future__ import annotations

import re

import pytest

from tests.infra.helpers import (
    READ_ONLY_ACTION,
    TERRAFORM_DIR,
    TerraformConfig,
    load_terraform,
    one_block,
    policy_statements,
)


@pytest.fixture(scope="module")
def tf() -> TerraformConfig:
    return load_terraform()


# ------------------------------------------------------------------------------ layout and inputs
def test_layout_follows_conventions() -> None:
    names = {p.name for p in TERRAFORM_DIR.glob("*.tf")}
    expected = {"versions.tf", "variables.tf", "outputs.tf", "main.tf", "network.tf", "alb.tf", "ecs.tf"}
    expected |= {"ecr.tf", "s3.tf", "iam.tf", "autoscaling.tf", "monitoring.tf", "ssm.tf"}
    assert expected <= names
    assert (TERRAFORM_DIR / "terraform.tfvars.example").is_file()


def test_aws_provider_is_version_pinned() -> None:
    text = (TERRAFORM_DIR / "versions.tf").read_text()
    assert re.search(r'source\s*=\s*"hashicorp/aws"', text)
    assert re.search(r'version\s*=\s*"~>\s*5\.100"', text), "pin the provider to the validated release line"


def test_every_variable_has_type_and_description(tf: TerraformConfig) -> None:
    for name, body in tf.variables.items():
        assert "type" in body, f"variable {name} has no type"
        assert len(body.get("description", "")) > 15, f"variable {name} needs a real description"


UNIT_WORDS = ("second", "count", "percent", "GiB", "MiB", "units", "days", "weight", "GPUs", "number of")


def test_numeric_variables_state_units_and_ranges(tf: TerraformConfig) -> None:
    for name, body in tf.variables.items():
        if body["type"] != "${number}":
            continue
        assert any(word in body["description"] for word in UNIT_WORDS), f"{name}: say the unit"
        assert body.get("validation"), f"{name}: numeric variables need a range validation"


@pytest.mark.parametrize("name", ["environment", "capacity_mode", "log_level"])
def test_enum_variables_are_validated(tf: TerraformConfig, name: str) -> None:
    condition = one_block(tf.variables[name], "validation")["condition"]
    assert "contains(" in condition


def test_every_output_is_described(tf: TerraformConfig) -> None:
    for name, body in tf.outputs.items():
        assert len(body.get("description", "")) > 15, f"output {name} needs a description naming its consumer"
    # What the Makefile and the README steps read.
    assert {"alb_dns_name", "ecr_repository_url", "models_bucket", "cluster_name", "service_name"} <= set(
        tf.outputs
    )


def test_accepted_checkov_findings_carry_reasons() -> None:
    for path in TERRAFORM_DIR.glob("*.tf"):
        for line in path.read_text().splitlines():
            if "checkov:skip=" in line:
                match = re.search(r"checkov:skip=(CKV2?_AWS_\d+):\s*(.+)", line)
                assert match and len(match.group(2)) > 20, f"{path.name}: skip without a reason: {line}"


# ------------------------------------------------------------------------------ network
def test_three_zones_with_nat_per_environment_and_endpoints(tf: TerraformConfig) -> None:
    assert tf.variables["az_count"]["default"] == 3
    assert tf.locals["single_nat"] == '${coalesce(var.single_nat_gateway, var.environment == "dev")}'
    assert tf.resource("aws_nat_gateway", "this")["count"] == "${local.nat_gateway_count}"
    assert tf.resource("aws_vpc_endpoint", "s3")["vpc_endpoint_type"] == "Gateway"
    assert tf.locals["interface_endpoints"] == '${toset(["ecr.api", "ecr.dkr", "logs"])}'


# ------------------------------------------------------------------------------ load balancer
def test_alb_idle_timeout_fits_long_websocket_sessions(tf: TerraformConfig) -> None:
    variable = tf.variables["alb_idle_timeout_seconds"]
    assert variable["default"] >= 300
    assert "var.alb_idle_timeout_seconds >= 300" in one_block(variable, "validation")["condition"]
    assert tf.resource("aws_lb", "this")["idle_timeout"] == "${var.alb_idle_timeout_seconds}"


def test_alb_access_logs_and_invalid_headers_dropped(tf: TerraformConfig) -> None:
    alb = tf.resource("aws_lb", "this")
    assert one_block(alb, "access_logs")["enabled"] is True
    assert alb["drop_invalid_header_fields"] is True


def test_target_group_checks_readiness_on_the_health_port(tf: TerraformConfig) -> None:
    group = tf.resource("aws_lb_target_group", "asr")
    assert group["target_type"] == "ip"
    assert group["port"] == "${local.websocket_port}"
    check = one_block(group, "health_check")
    assert check["path"] == "${local.ready_path}"
    assert check["port"] == "${tostring(local.health_port)}"
    assert group["deregistration_delay"] == "${var.drain_timeout_seconds}"


def test_https_listener_and_redirect_follow_the_certificate(tf: TerraformConfig) -> None:
    assert tf.locals["https_enabled"] == "${var.acm_certificate_arn != null}"
    assert tf.resource("aws_lb_listener", "https")["count"] == "${local.https_enabled ? 1 : 0}"
    action = one_block(tf.resource("aws_lb_listener", "http"), "default_action")
    assert action["type"] == '${local.https_enabled ? "redirect" : "forward"}'


def test_internal_paths_are_not_published(tf: TerraformConfig) -> None:
    rule = tf.resource("aws_lb_listener_rule", "deny_internal_paths")
    assert rule["listener_arn"] == "${local.serving_listener_arn}"
    assert one_block(one_block(rule, "action"), "fixed_response")["status_code"] == "404"
    paths = one_block(one_block(rule, "condition"), "path_pattern")["values"]
    assert paths == "${local.internal_paths}"
    assert {"/health", "/metrics"} <= set(tf.locals["internal_paths"])


def test_waf_is_optional(tf: TerraformConfig) -> None:
    association = tf.resource("aws_wafv2_web_acl_association", "alb")
    assert association["count"] == "${var.waf_web_acl_arn == null ? 0 : 1}"


# ------------------------------------------------------------------------------ ECS
def test_cluster_has_container_insights(tf: TerraformConfig) -> None:
    setting = one_block(tf.resource("aws_ecs_cluster", "this"), "setting")
    assert setting == {"name": "containerInsights", "value": "enabled"}


def test_service_rolls_back_failed_deployments_and_leaves_automation_alone(tf: TerraformConfig) -> None:
    service = tf.resource("aws_ecs_service", "asr")
    breaker = one_block(service, "deployment_circuit_breaker")
    assert breaker == {"enable": True, "rollback": True}
    assert service["deployment_minimum_healthy_percent"] == 100
    assert service["deployment_maximum_percent"] == 200
    lifecycle = one_block(service, "lifecycle")
    assert set(lifecycle["ignore_changes"]) == {"task_definition", "desired_count"}


def test_gpu_mode_requests_gpus_and_scales_hosts_from_zero(tf: TerraformConfig) -> None:
    definition = tf.locals["container_definition"]
    assert 'resourceRequirements = [{type = "GPU", value = tostring(var.gpus_per_task)}]' in definition
    assert "if local.gpu_mode" in definition
    asg = tf.resource("aws_autoscaling_group", "gpu")
    assert asg["min_size"] == 0
    provider = one_block(tf.resource("aws_ecs_capacity_provider", "gpu"), "auto_scaling_group_provider")
    assert one_block(provider, "managed_scaling")["status"] == "ENABLED"
    ami = tf.data["aws_ssm_parameter"]["gpu_ami"]
    assert ami["name"] == "${var.gpu_ami_ssm_parameter}"
    assert "/gpu/" in tf.variables["gpu_ami_ssm_parameter"]["default"]


def test_task_definition_stop_timeout_covers_the_drain(tf: TerraformConfig) -> None:
    assert tf.variables["stop_timeout_seconds"]["default"] == 120
    assert tf.variables["drain_timeout_seconds"]["default"] < tf.variables["stop_timeout_seconds"]["default"]
    definition = tf.locals["container_definition"]
    assert "stopTimeout = var.stop_timeout_seconds" in definition
    assert 'logDriver = "awslogs"' in definition
    assert "healthCheck = {command = local.container_health_command" in definition


# ------------------------------------------------------------------------------ ECR and S3
def test_ecr_scans_on_push_with_immutable_tags_and_lifecycle(tf: TerraformConfig) -> None:
    repository = tf.resource("aws_ecr_repository", "asr")
    assert one_block(repository, "image_scanning_configuration")["scan_on_push"] is True
    assert repository["image_tag_mutability"] == "IMMUTABLE"
    assert "aws_ecr_lifecycle_policy" in tf.resources
    enhanced = tf.resource("aws_ecr_registry_scanning_configuration", "enhanced")
    assert enhanced["count"] == "${var.ecr_enhanced_scanning ? 1 : 0}"


def test_models_bucket_is_versioned_private_encrypted_and_emits_events(tf: TerraformConfig) -> None:
    versioning = one_block(tf.resource("aws_s3_bucket_versioning", "models"), "versioning_configuration")
    assert versioning["status"] == "Enabled"
    assert tf.resource("aws_s3_bucket_notification", "models")["eventbridge"] is True
    block = tf.resource("aws_s3_bucket_public_access_block", "models")
    assert all(block[key] is True for key in ("block_public_acls", "block_public_policy"))
    assert all(block[key] is True for key in ("ignore_public_acls", "restrict_public_buckets"))
    sse = one_block(tf.resource("aws_s3_bucket_server_side_encryption_configuration", "models"), "rule")
    assert one_block(sse, "apply_server_side_encryption_by_default")["sse_algorithm"] == "aws:kms"
    rule = one_block(tf.resource("aws_s3_bucket_lifecycle_configuration", "models"), "rule")
    assert "noncurrent_version_expiration" in rule


@pytest.mark.parametrize("document", ["models_bucket", "access_logs_bucket"])
def test_buckets_refuse_plain_http(tf: TerraformConfig, document: str) -> None:
    statements = tf.data["aws_iam_policy_document"][document]["statement"]
    deny = next(s for s in statements if s.get("effect") == "Deny")
    condition = one_block(deny, "condition")
    assert condition == {"test": "Bool", "variable": "aws:SecureTransport", "values": ["false"]}


# ------------------------------------------------------------------------------ IAM
def test_no_allow_statement_grants_a_mutating_action_on_every_resource(tf: TerraformConfig) -> None:
    checked = 0
    for document, statement in policy_statements(tf):
        if statement.get("effect", "Allow") != "Allow":
            continue
        actions = statement.get("actions", [])
        assert all("*" not in action for action in actions), f"{document}: wildcard action {actions}"
        if "*" in statement.get("resources", []):
            mutating = [a for a in actions if not READ_ONLY_ACTION.match(a)]
            assert not mutating, f"{document}: {mutating} allowed on every resource"
        checked += 1
    assert checked >= 8  # the policies exist and were read


def test_task_role_only_reads_the_models_bucket(tf: TerraformConfig) -> None:
    statements = tf.data["aws_iam_policy_document"]["task"]["statement"]
    actions = {action for statement in statements for action in statement["actions"]}
    assert actions == {"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket"}
    resources = {resource for statement in statements for resource in statement["resources"]}
    assert resources == {"${aws_s3_bucket.models.arn}/models/*", "${aws_s3_bucket.models.arn}"}


def test_task_roles_carry_no_managed_policies(tf: TerraformConfig) -> None:
    for attachment in tf.resources.get("aws_iam_role_policy_attachment", {}).values():
        assert attachment["role"].startswith("${aws_iam_role.gpu_instance"), attachment


# ------------------------------------------------------------------------------ scaling, alarms, SSM
def test_scaling_tracks_active_streams_and_scales_out_faster_than_in(tf: TerraformConfig) -> None:
    policy = tf.resource("aws_appautoscaling_policy", "active_streams")
    config = one_block(policy, "target_tracking_scaling_policy_configuration")
    metric = one_block(config, "customized_metric_specification")
    assert (metric["namespace"], metric["metric_name"]) == ("EzSpeech/ASR", "ActiveStreams")
    assert one_block(metric, "dimensions") == {"name": "ServiceName", "value": "${local.service_name}"}
    assert {"cpu", "memory", "active_streams"} <= set(tf.resources["aws_appautoscaling_policy"])
    cooldown = {name: tf.variables[f"scale_{name}_cooldown_seconds"]["default"] for name in ("out", "in")}
    assert cooldown["out"] < cooldown["in"]


def test_alarms_cover_cpu_memory_5xx_and_host_health(tf: TerraformConfig) -> None:
    alarms = set(tf.resources["aws_cloudwatch_metric_alarm"])
    assert {"cpu_high", "memory_high", "http_5xx", "unhealthy_hosts", "no_healthy_hosts"} <= alarms


def test_ssm_parameters_cover_the_names_the_automation_reads(tf: TerraformConfig) -> None:
    parameter = tf.resource("aws_ssm_parameter", "names")
    assert parameter["for_each"] == "${local.ssm_parameters}"
    assert parameter["name"] == "${local.ssm_prefix}/${each.key}"
    assert tf.locals["ssm_prefix"] == "/${var.project}/${var.environment}"
    required = {"cluster-name", "service-name", "models-bucket", "ecr-repository-name", "alb-dns-name"}
    assert required <= set(tf.locals["ssm_parameters"])
