# `terraform test` runs these offline: the AWS provider is mocked, so `apply` here creates
# nothing and needs no credentials, but the whole configuration is evaluated with real
# variable validation, preconditions, counts and expressions. tests/infra/test_terraform.py runs
# it whenever the terraform binary and the provider are available.

mock_provider "aws" {
  mock_data "aws_availability_zones" {
    defaults = { names = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"] }
  }
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_region" {
    defaults = { name = "us-east-1" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_elb_service_account" {
    defaults = { arn = "arn:aws:iam::127311923021:root" }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_data "aws_ssm_parameter" {
    defaults = { value = "ami-0123456789abcdef0" }
  }
  mock_resource "aws_ecr_repository" {
    defaults = {
      arn            = "arn:aws:ecr:us-east-1:123456789012:repository/ezspeech-test/asr-server"
      repository_url = "123456789012.dkr.ecr.us-east-1.amazonaws.com/ezspeech-test/asr-server"
    }
  }
  mock_resource "aws_lb" {
    defaults = {
      arn        = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/ezspeech-test/0123456789abcdef"
      arn_suffix = "app/ezspeech-test/0123456789abcdef"
      dns_name   = "ezspeech-test-123.us-east-1.elb.amazonaws.com"
    }
  }
  mock_resource "aws_lb_listener" {
    defaults = { arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/ezspeech-test/0123456789abcdef/0123456789abcdef" }
  }
  mock_resource "aws_lb_target_group" {
    defaults = {
      arn        = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/ezspeech-test/0123456789abcdef"
      arn_suffix = "targetgroup/ezspeech-test/0123456789abcdef"
    }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/ezspeech-test" }
  }
  mock_resource "aws_iam_instance_profile" {
    defaults = { arn = "arn:aws:iam::123456789012:instance-profile/ezspeech-test" }
  }
  mock_resource "aws_launch_template" {
    defaults = { id = "lt-0123456789abcdef0" }
  }
  mock_resource "aws_autoscaling_group" {
    defaults = { arn = "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:0:autoScalingGroupName/ezspeech-test" }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::ezspeech-test-bucket" }
  }
  mock_resource "aws_secretsmanager_secret" {
    defaults = { arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ezspeech-test/client-tokens-AbCdEf" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000001" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:us-east-1:123456789012:log-group:/ecs/ezspeech-test/asr-server" }
  }
}

variables {
  image_tag = "0123456789ab"
}

run "gpu_mode_prod" {
  command = apply

  variables {
    environment         = "prod"
    capacity_mode       = "gpu"
    acm_certificate_arn = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
  }

  assert {
    condition     = jsondecode(aws_ecs_task_definition.asr.container_definitions)[0].resourceRequirements == [{ type = "GPU", value = "1" }]
    error_message = "gpu mode must reserve one GPU for the asr-server container"
  }
  assert {
    condition     = aws_ecs_task_definition.asr.requires_compatibilities == toset(["EC2"])
    error_message = "gpu mode runs on EC2 capacity"
  }
  assert {
    condition     = aws_autoscaling_group.gpu[0].min_size == 0 && aws_autoscaling_group.gpu[0].protect_from_scale_in
    error_message = "GPU hosts must scale to zero and be protected while running tasks"
  }
  assert {
    condition     = aws_ecs_capacity_provider.gpu[0].auto_scaling_group_provider[0].managed_scaling[0].status == "ENABLED"
    error_message = "the GPU capacity provider must use managed scaling"
  }
  assert {
    condition     = one([for s in aws_ecs_service.asr.capacity_provider_strategy : s.capacity_provider]) == aws_ecs_capacity_provider.gpu[0].name
    error_message = "the service must place tasks on the GPU capacity provider"
  }
  assert {
    condition     = length(aws_nat_gateway.this) == 3 && length(aws_subnet.private) == 3
    error_message = "prod has three zones with a NAT gateway each"
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.asr.container_definitions)[0].environment[index(jsondecode(aws_ecs_task_definition.asr.container_definitions)[0].environment[*].name, "DEVICE")].value == "cuda"
    error_message = "gpu mode must run the model on cuda"
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.asr.container_definitions)[0].environment[index(jsondecode(aws_ecs_task_definition.asr.container_definitions)[0].environment[*].name, "WORKERS")].value == "1"
    error_message = "gpu mode runs one worker per task unless workers_per_task says otherwise"
  }
  assert {
    condition     = aws_lb_listener.http.default_action[0].type == "redirect" && aws_lb_listener.https[0].default_action[0].type == "forward"
    error_message = "with a certificate, HTTP redirects and HTTPS forwards"
  }
  assert {
    condition     = aws_lb_listener_rule.deny_internal_paths.listener_arn == aws_lb_listener.https[0].arn
    error_message = "the internal paths must be refused on the listener that serves traffic"
  }
}

run "cpu_mode_dev" {
  command = apply

  variables {
    environment         = "dev"
    capacity_mode       = "cpu"
    fargate_spot_weight = 3
  }

  assert {
    condition     = !contains(keys(jsondecode(aws_ecs_task_definition.asr.container_definitions)[0]), "resourceRequirements")
    error_message = "cpu mode must not ask for GPUs"
  }
  assert {
    condition     = aws_ecs_task_definition.asr.requires_compatibilities == toset(["FARGATE"])
    error_message = "cpu mode runs on Fargate"
  }
  assert {
    condition     = length(aws_autoscaling_group.gpu) == 0 && length(aws_ecs_capacity_provider.gpu) == 0
    error_message = "cpu mode creates no GPU hosts"
  }
  assert {
    condition     = toset([for s in aws_ecs_service.asr.capacity_provider_strategy : s.capacity_provider]) == toset(["FARGATE", "FARGATE_SPOT"])
    error_message = "a Spot weight adds FARGATE_SPOT beside FARGATE"
  }
  assert {
    condition     = length(aws_nat_gateway.this) == 1 && length(aws_subnet.public) == 3
    error_message = "dev shares one NAT gateway across three zones"
  }
  assert {
    condition     = aws_lb_listener.http.default_action[0].type == "forward" && length(aws_lb_listener.https) == 0
    error_message = "without a certificate, HTTP forwards to the service"
  }
  assert {
    condition     = aws_lb_listener_rule.deny_internal_paths.listener_arn == aws_lb_listener.http.arn
    error_message = "the internal paths must be refused on the HTTP listener when it serves traffic"
  }
  assert {
    condition     = aws_lb_target_group.asr.deregistration_delay == "90" && jsondecode(aws_ecs_task_definition.asr.container_definitions)[0].stopTimeout == 120
    error_message = "deregistration delay follows the drain budget, stop timeout is 120 s"
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.asr.container_definitions)[0].environment[index(jsondecode(aws_ecs_task_definition.asr.container_definitions)[0].environment[*].name, "WORKERS")].value == "2"
    error_message = "cpu mode runs one worker per vCPU (task_cpu 2048: two)"
  }
  assert {
    condition     = aws_ssm_parameter.names["cluster-name"].name == "/ezspeech/dev/cluster-name"
    error_message = "SSM names live under /<project>/<environment>/"
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.asr.container_definitions)[0].secrets == [{ name = "AUTH_TOKENS", valueFrom = aws_secretsmanager_secret.client_tokens[0].arn }]
    error_message = "AUTH_TOKENS must come from the created client-tokens secret through `secrets`"
  }
  assert {
    condition = (
      !contains(jsondecode(aws_ecs_task_definition.asr.container_definitions)[0].environment[*].name, "AUTH_TOKENS") &&
      jsondecode(aws_ecs_task_definition.asr.container_definitions)[0].environment[index(jsondecode(aws_ecs_task_definition.asr.container_definitions)[0].environment[*].name, "REQUIRE_AUTH")].value == "true"
    )
    error_message = "tokens never in plain environment; REQUIRE_AUTH=true"
  }
  assert {
    condition     = aws_secretsmanager_secret.client_tokens[0].name == "ezspeech-dev/client-tokens" && aws_secretsmanager_secret.client_tokens[0].kms_key_id == aws_kms_key.client_tokens[0].arn
    error_message = "the created secret is <project>-<env>/client-tokens, encrypted with its own key"
  }
  assert {
    condition     = output.client_tokens_secret_arn == aws_secretsmanager_secret.client_tokens[0].arn
    error_message = "the output names the secret's ARN"
  }
}

run "given_client_tokens_secret" {
  command = apply

  variables {
    environment               = "dev"
    capacity_mode             = "cpu"
    client_tokens_secret_arn  = "arn:aws:secretsmanager:us-east-1:123456789012:secret:shared/asr-clients-Zx9Yw8"
    client_tokens_kms_key_arn = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
  }

  assert {
    condition     = length(aws_secretsmanager_secret.client_tokens) == 0 && length(aws_kms_key.client_tokens) == 0
    error_message = "a given secret is used as is: Terraform creates neither a secret nor a key"
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.asr.container_definitions)[0].secrets[0].valueFrom == var.client_tokens_secret_arn
    error_message = "the task reads the given secret"
  }
}

run "tokens_in_extra_environment_are_rejected" {
  command = plan

  variables {
    environment       = "dev"
    extra_environment = { AUTH_TOKENS = "plain-text-token" }
  }

  expect_failures = [var.extra_environment]
}

run "workers_per_task_is_passed_as_workers" {
  command = apply

  variables {
    environment      = "dev"
    capacity_mode    = "cpu"
    workers_per_task = 3
  }

  assert {
    condition     = jsondecode(aws_ecs_task_definition.asr.container_definitions)[0].environment[index(jsondecode(aws_ecs_task_definition.asr.container_definitions)[0].environment[*].name, "WORKERS")].value == "3"
    error_message = "an explicit workers_per_task becomes the container's WORKERS"
  }
}

run "fractional_workers_per_task_is_rejected" {
  command = plan

  variables {
    environment      = "dev"
    workers_per_task = 1.5
  }

  expect_failures = [var.workers_per_task]
}

run "idle_timeout_below_300_is_rejected" {
  command = plan

  variables {
    environment              = "dev"
    alb_idle_timeout_seconds = 120
  }

  expect_failures = [var.alb_idle_timeout_seconds]
}

run "drain_not_below_stop_timeout_is_rejected" {
  command = plan

  variables {
    environment           = "dev"
    capacity_mode         = "cpu"
    stop_timeout_seconds  = 60
    drain_timeout_seconds = 60
  }

  expect_failures = [aws_ecs_task_definition.asr]
}

run "fargate_memory_outside_the_cpu_size_is_rejected" {
  command = plan

  variables {
    environment   = "dev"
    capacity_mode = "cpu"
    task_cpu      = 1024
    task_memory   = 16384
  }

  expect_failures = [aws_ecs_task_definition.asr]
}
