provider "aws" {
  region = var.aws_region

  # Every taggable resource gets local.tags through the provider; resources add a Name on top.
  # (The Auto Scaling group does not take default_tags, ecs.tf tags it explicitly.)
  default_tags {
    tags = local.tags
  }
}

data "aws_availability_zones" "available" {
  #checkov:skip=CKV_AWS_394: only the first az_count names are used (locals.azs); zones AWS adds later sort after them, so the choice does not move
  state = "available"

  filter {
    name   = "opt-in-status"
    values = ["opt-in-not-required"]
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  name = "${var.project}-${var.environment}"

  tags = merge(var.tags, {
    Project     = var.project
    Environment = var.environment
    ManagedBy   = "terraform"
  })

  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  gpu_mode = var.capacity_mode == "gpu"
  # Worker processes per task (README "Worker processes"): one per vCPU on Fargate, one per GPU
  # task unless measured otherwise. Explicit rather than WORKERS=auto: a Fargate task may see
  # more cores than it pays for.
  workers_per_task = coalesce(var.workers_per_task, local.gpu_mode ? 1 : max(1, floor(var.task_cpu / 1024)))

  # The container contract of DESIGN.md: one name, two ports, the health paths.
  container_name = "asr-server"
  websocket_port = 8765
  health_port    = 8080
  ready_path     = "/ready"
  # Paths of the health listener that must never be published through the ALB.
  internal_paths = ["/health", "/health/*", "/metrics", "/metrics/*", "/ready"]

  azs        = slice(data.aws_availability_zones.available.names, 0, var.az_count)
  single_nat = coalesce(var.single_nat_gateway, var.environment == "dev")

  # The names the SAM stack and the Makefile read back (ssm.tf publishes them).
  ssm_prefix = "/${var.project}/${var.environment}"
}
