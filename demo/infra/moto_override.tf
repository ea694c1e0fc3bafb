# The rehearsal overlay: copied next to terraform/*.tf in a temp directory (never into terraform/)
# by `make rehearse-infra`. Terraform merges *_override.tf files into the configuration, so the
# real files run unchanged apart from what is listed here. Each entry names the moto gap that
# forces it; nothing else may go in this file. (moto 5.2.5, provider 5.100.0)

provider "aws" {
  access_key                  = "rehearsal"
  secret_key                  = "rehearsal"
  skip_credentials_validation = true
  skip_requesting_account_id  = false
  skip_metadata_api_check     = true
  s3_use_path_style           = true
  # moto's server answers some concurrent calls of one service with a thread race; retries cover it.
  max_retries = 3

  # MOTO_ENDPOINT is replaced by the moto server's URL when the file is copied (an override file
  # cannot declare a variable).
  endpoints {
    acm                    = "MOTO_ENDPOINT"
    applicationautoscaling = "MOTO_ENDPOINT"
    autoscaling            = "MOTO_ENDPOINT"
    cloudwatch             = "MOTO_ENDPOINT"
    ec2                    = "MOTO_ENDPOINT"
    ecr                    = "MOTO_ENDPOINT"
    ecs                    = "MOTO_ENDPOINT"
    elbv2                  = "MOTO_ENDPOINT"
    iam                    = "MOTO_ENDPOINT"
    kms                    = "MOTO_ENDPOINT"
    logs                   = "MOTO_ENDPOINT"
    s3                     = "MOTO_ENDPOINT"
    secretsmanager         = "MOTO_ENDPOINT"
    ssm                    = "MOTO_ENDPOINT"
    sts                    = "MOTO_ENDPOINT"
    wafv2                  = "MOTO_ENDPOINT"
  }
}

# moto has no ListTagsForResource for Application Auto Scaling: the provider retries reading the
# target's tags until it times out (23 min measured). The target and its policies are left out.
resource "aws_appautoscaling_target" "asr" {
  count = 0
}

resource "aws_appautoscaling_policy" "active_streams" {
  count              = 0
  service_namespace  = "ecs"
  resource_id        = "left-out"
  scalable_dimension = "ecs:service:DesiredCount"
}

resource "aws_appautoscaling_policy" "cpu" {
  count              = 0
  service_namespace  = "ecs"
  resource_id        = "left-out"
  scalable_dimension = "ecs:service:DesiredCount"
}

resource "aws_appautoscaling_policy" "memory" {
  count              = 0
  service_namespace  = "ecs"
  resource_id        = "left-out"
  scalable_dimension = "ecs:service:DesiredCount"
}

# moto drops NewerNoncurrentVersions from the lifecycle rule it stores: the provider waits for the
# rule it sent to read back and times out.
resource "aws_s3_bucket_lifecycle_configuration" "models" {
  count = 0
}

# moto checks the log target's bucket policy and does not accept its `Principal: "*"` deny
# statement (TLS only) as the policy it looks for, so PutBucketLogging is refused.
resource "aws_s3_bucket_logging" "models" {
  count = 0
}

# moto misreads an S3 destination ARN with a folder ("arn:aws:s3:::bucket/vpc-flow-logs/") as a
# bucket name, and refuses the flow log.
resource "aws_flow_log" "vpc" {
  count = 0
}

# moto echoes back less than was sent, so a second plan would show changes that are not real.
# ECS: moto does not return the service's capacity provider strategy, availability-zone
# rebalancing, managed tags, health-check grace period or (prod) ordered placement strategy. (task_definition and desired_count are
# ecs.tf's own ignore_changes: an override replaces the list, so they are repeated.)
resource "aws_ecs_service" "asr" {
  lifecycle {
    ignore_changes = [
      task_definition,
      desired_count,
      capacity_provider_strategy,
      availability_zone_rebalancing,
      enable_ecs_managed_tags,
      health_check_grace_period_seconds,
      ordered_placement_strategy,
    ]
  }
}

# EC2 (prod): moto returns a "launch-template" tag specification filled from default_tags that
# was never sent; the plan would remove it and bump the template version (and so the ASG's).
resource "aws_launch_template" "gpu" {
  lifecycle {
    ignore_changes = [tag_specifications]
  }
}

# EC2: moto drops the description of a security-group rule that references another group.
resource "aws_vpc_security_group_egress_rule" "alb_to_tasks" {
  lifecycle {
    ignore_changes = [description]
  }
}

resource "aws_vpc_security_group_ingress_rule" "tasks_from_alb" {
  lifecycle {
    ignore_changes = [description]
  }
}

# moto does not return the EventBridge setting of a bucket's notification configuration.
resource "aws_s3_bucket_notification" "models" {
  lifecycle {
    ignore_changes = [eventbridge]
  }
}

# Not a moto gap: prod turns on ALB deletion protection, which would stop the rehearsal's destroy.
resource "aws_lb" "this" {
  enable_deletion_protection = false
}
