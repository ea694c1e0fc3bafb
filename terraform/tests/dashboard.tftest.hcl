# The dashboard rendered with a mocked provider (offline, like core.tftest.hcl): the JSON decodes,
# every widget has a region, and the names it shows resolve to this stack's resources and to the
# SAM stack that samconfig.toml deploys. tests/infra/test_dashboard.py checks each metric against
# its emitter; this file checks what Terraform actually renders.

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
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:us-east-1:123456789012:log-group:/ecs/ezspeech-test/asr-server" }
  }
}

variables {
  image_tag = "0123456789ab"
}

run "dashboard_renders_for_the_stack" {
  command = apply

  variables {
    environment   = "dev"
    capacity_mode = "cpu"
  }

  assert {
    condition     = length(jsondecode(aws_cloudwatch_dashboard.asr.dashboard_body).widgets) >= 12
    error_message = "the dashboard body must decode and hold the widgets"
  }
  assert {
    condition     = alltrue([for w in jsondecode(aws_cloudwatch_dashboard.asr.dashboard_body).widgets : w.properties.region == "us-east-1" if w.type != "text"])
    error_message = "every metric and log widget names the stack's region"
  }
  assert {
    condition     = strcontains(aws_cloudwatch_dashboard.asr.dashboard_body, "\"ActiveStreams\",\"ServiceName\",\"${aws_ecs_service.asr.name}\"")
    error_message = "the service's EMF metrics are shown under the ECS service name (SERVICE_NAME)"
  }
  assert {
    condition     = strcontains(aws_cloudwatch_dashboard.asr.dashboard_body, "\"LoadBalancer\",\"app/ezspeech-test/0123456789abcdef\"")
    error_message = "the ALB widgets must point at the stack's load balancer"
  }
  assert {
    condition     = strcontains(aws_cloudwatch_dashboard.asr.dashboard_body, "\"ezspeech-automation-dev-model-rollout\"") && strcontains(aws_cloudwatch_dashboard.asr.dashboard_body, "\"ezspeech-automation-dev-delivery-dlq\"")
    error_message = "the automation widgets must name the SAM stack's functions and queues"
  }
  assert {
    condition     = strcontains(aws_cloudwatch_dashboard.asr.dashboard_body, "SOURCE '/aws/lambda/ezspeech-automation-dev/model-rollout'")
    error_message = "the rollout table must read the model_rollout log group"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.final_latency_p95.extended_statistic == "p95" && aws_cloudwatch_metric_alarm.final_latency_p95.threshold == 500
    error_message = "the final-latency alarm watches p95 against the default 500 ms"
  }
}

run "automation_stack_name_can_be_overridden" {
  command = apply

  variables {
    environment           = "prod"
    capacity_mode         = "cpu"
    automation_stack_name = "ops-automation"
  }

  assert {
    condition     = strcontains(aws_cloudwatch_dashboard.asr.dashboard_body, "\"ops-automation-function-dlq\"") && !strcontains(aws_cloudwatch_dashboard.asr.dashboard_body, "ezspeech-automation-prod")
    error_message = "automation_stack_name replaces the samconfig default everywhere"
  }
}
