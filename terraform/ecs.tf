# ECS: the cluster, its capacity (GPU EC2 hosts or Fargate), the first task definition of the
# asr-server container and the service behind the ALB. After creation the automation owns the
# task definition (model rollouts register new revisions) and the desired count (autoscaling,
# night scaler); Terraform ignores drift on both.

locals {
  container_environment = merge(
    {
      SERVER_HOST     = "0.0.0.0"
      SERVER_PORT     = tostring(local.websocket_port)
      HEALTH_PORT     = tostring(local.health_port)
      LOG_LEVEL       = var.log_level
      DEVICE          = local.gpu_mode ? "cuda" : "cpu"
      DRAIN_TIMEOUT_S = tostring(var.drain_timeout_seconds)
      MAX_SESSIONS    = tostring(var.max_sessions_per_task)
      WORKERS         = tostring(local.workers_per_task)
      # The EMF ServiceName dimension must equal the one the ActiveStreams scaling policy reads.
      SERVICE_NAME = local.service_name
      # Never open in AWS: without client tokens (the AUTH_TOKENS secret below) the server exits.
      REQUIRE_AUTH = "true"
      # The root filesystem is read-only; downloads and temp files go to the scratch volume.
      MODEL_CACHE_DIR = "/tmp/asr-models"
      TMPDIR          = "/tmp"
    },
    var.initial_model_uri == "" ? {} : { MODEL_URI = var.initial_model_uri },
    var.initial_model_sha256 == "" ? {} : { MODEL_SHA256 = var.initial_model_sha256 },
    var.extra_environment,
  )

  # Liveness probe run inside the container (same as the Dockerfile HEALTHCHECK): /health
  # answers while the process serves, also during drain, so a draining task is not killed.
  container_health_command = [
    "CMD", "python", "-c",
    "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('HEALTH_PORT', '8080') + '/health', timeout=4)",
  ]

  container_definition = merge(
    {
      name      = local.container_name
      image     = "${aws_ecr_repository.asr.repository_url}:${var.image_tag}"
      essential = true

      portMappings = [
        { name = "websocket", containerPort = local.websocket_port, protocol = "tcp" },
        { name = "health", containerPort = local.health_port, protocol = "tcp" },
      ]

      environment = [for key in sort(keys(local.container_environment)) : {
        name  = key
        value = local.container_environment[key]
      }]

      # ECS reads the secret with the execution role when the task starts. This revision takes the
      # secret's current version; `make rotate-tokens` registers revisions pinned to the version it
      # wrote (valueFrom ARN:::VERSION_ID), so a rollback brings back the tokens of its time.
      secrets = [{ name = "AUTH_TOKENS", valueFrom = local.client_tokens_secret_arn }]

      # SIGTERM, then up to stopTimeout for the server to send finals and close with 1001.
      stopTimeout            = var.stop_timeout_seconds
      readonlyRootFilesystem = true
      mountPoints            = [{ sourceVolume = "scratch", containerPath = "/tmp", readOnly = false }]
      linuxParameters        = { initProcessEnabled = true }
      ulimits                = [{ name = "nofile", softLimit = 65536, hardLimit = 65536 }]

      healthCheck = {
        command     = local.container_health_command
        interval    = 15
        timeout     = 5
        retries     = 3
        startPeriod = 120
      }

      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.asr.name
          awslogs-region        = local.region
          awslogs-stream-prefix = "asr"
          # Never block the event loop on log delivery; a full buffer drops lines instead.
          mode            = "non-blocking"
          max-buffer-size = "25m"
        }
      }
    },
    # GPU mode reserves whole GPUs for the task (the GPU AMI's agent exposes them to it).
    { for key, value in { resourceRequirements = [{ type = "GPU", value = tostring(var.gpus_per_task) }] } : key => value if local.gpu_mode },
  )

  service_name = "${local.name}-asr"

  # Fargate's allowed memory (MiB) per CPU size: [minimum, maximum].
  fargate_memory_range = {
    "256"   = [512, 2048]
    "512"   = [1024, 4096]
    "1024"  = [2048, 8192]
    "2048"  = [4096, 16384]
    "4096"  = [8192, 30720]
    "8192"  = [16384, 61440]
    "16384" = [32768, 122880]
  }
}

resource "aws_ecs_cluster" "this" {
  name = local.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_ecs_task_definition" "asr" {
  family                   = "${local.name}-asr"
  network_mode             = "awsvpc"
  requires_compatibilities = [local.gpu_mode ? "EC2" : "FARGATE"]
  cpu                      = tostring(var.task_cpu)
  memory                   = tostring(var.task_memory)
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  container_definitions    = jsonencode([local.container_definition])

  volume {
    name = "scratch"
  }

  dynamic "runtime_platform" {
    for_each = local.gpu_mode ? [] : [1]
    content {
      operating_system_family = "LINUX"
      cpu_architecture        = "X86_64" # the image's torch wheels are x86_64
    }
  }

  dynamic "ephemeral_storage" {
    for_each = local.gpu_mode ? [] : [1]
    content {
      size_in_gib = var.fargate_ephemeral_storage_gib
    }
  }

  lifecycle {
    precondition {
      condition     = var.drain_timeout_seconds < var.stop_timeout_seconds
      error_message = "drain_timeout_seconds must be below stop_timeout_seconds, or SIGKILL cuts the drain short."
    }
    precondition {
      condition = local.gpu_mode || (
        var.task_memory >= local.fargate_memory_range[tostring(var.task_cpu)][0] &&
        var.task_memory <= local.fargate_memory_range[tostring(var.task_cpu)][1]
      )
      error_message = "cpu mode (Fargate): task_memory is outside what Fargate allows for this task_cpu."
    }
  }
}

resource "aws_security_group" "tasks" {
  name        = "${local.name}-tasks"
  description = "asr-server tasks: WebSocket and health ports from the ALB, health port from the VPC"
  vpc_id      = aws_vpc.this.id

  tags = { Name = "${local.name}-tasks" }
}

resource "aws_vpc_security_group_ingress_rule" "tasks_from_alb" {
  for_each = { websocket = local.websocket_port, health = local.health_port }

  security_group_id            = aws_security_group.tasks.id
  description                  = "From the ALB: ${each.key} port"
  ip_protocol                  = "tcp"
  from_port                    = each.value
  to_port                      = each.value
  referenced_security_group_id = aws_security_group.alb.id
}

# /health, /ready and /metrics are for the inside of the VPC (scrapers, operators via SSM).
resource "aws_vpc_security_group_ingress_rule" "tasks_health_from_vpc" {
  security_group_id = aws_security_group.tasks.id
  description       = "Health and metrics port from inside the VPC"
  ip_protocol       = "tcp"
  from_port         = local.health_port
  to_port           = local.health_port
  cidr_ipv4         = aws_vpc.this.cidr_block
}

resource "aws_vpc_security_group_egress_rule" "tasks_https" {
  security_group_id = aws_security_group.tasks.id
  description       = "HTTPS to AWS APIs (S3 via the gateway endpoint, the rest via endpoints or NAT)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_ecs_service" "asr" {
  name                              = local.service_name
  cluster                           = aws_ecs_cluster.this.id
  task_definition                   = aws_ecs_task_definition.asr.arn
  desired_count                     = var.desired_count
  health_check_grace_period_seconds = var.health_check_grace_period_seconds
  enable_ecs_managed_tags           = true
  propagate_tags                    = "SERVICE"
  platform_version                  = local.gpu_mode ? null : "LATEST"

  # A new revision starts beside the old one (200 %) and the old one stays until the new one is
  # healthy (100 %): sessions never lose capacity during a model rollout.
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  dynamic "capacity_provider_strategy" {
    for_each = local.gpu_mode ? { (aws_ecs_capacity_provider.gpu[0].name) = { base = 0, weight = 1 } } : merge(
      { FARGATE = { base = var.fargate_on_demand_base, weight = 1 } },
      var.fargate_spot_weight > 0 ? { FARGATE_SPOT = { base = 0, weight = var.fargate_spot_weight } } : {},
    )
    content {
      capacity_provider = capacity_provider_strategy.key
      base              = capacity_provider_strategy.value.base
      weight            = capacity_provider_strategy.value.weight
    }
  }

  dynamic "ordered_placement_strategy" {
    for_each = local.gpu_mode ? [1] : []
    content {
      type  = "spread"
      field = "attribute:ecs.availability-zone"
    }
  }

  network_configuration {
    subnets          = aws_subnet.private[*].id
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.asr.arn
    container_name   = local.container_name
    container_port   = local.websocket_port
  }

  lifecycle {
    # Owned by the automation after the first apply: model_rollout registers new task
    # definition revisions, autoscaling and night_scaler move the desired count.
    ignore_changes = [task_definition, desired_count]
  }

  depends_on = [
    aws_lb_listener.http,
    aws_lb_listener.https,
    aws_ecs_cluster_capacity_providers.this,
    aws_iam_role_policy.execution,
  ]
}

# --------------------------------------------------------------------------- capacity
resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = local.gpu_mode ? [aws_ecs_capacity_provider.gpu[0].name] : ["FARGATE", "FARGATE_SPOT"]

  default_capacity_provider_strategy {
    capacity_provider = local.gpu_mode ? aws_ecs_capacity_provider.gpu[0].name : "FARGATE"
    weight            = 1
  }
}

data "aws_ssm_parameter" "gpu_ami" {
  count = local.gpu_mode ? 1 : 0

  name = var.gpu_ami_ssm_parameter
}

resource "aws_security_group" "gpu_instances" {
  count = local.gpu_mode ? 1 : 0

  name        = "${local.name}-gpu-instances"
  description = "GPU container instances: no inbound; HTTPS out for the ECS agent and image pulls"
  vpc_id      = aws_vpc.this.id

  tags = { Name = "${local.name}-gpu-instances" }
}

resource "aws_vpc_security_group_egress_rule" "gpu_instances_https" {
  count = local.gpu_mode ? 1 : 0

  security_group_id = aws_security_group.gpu_instances[0].id
  description       = "HTTPS to the ECS, ECR, S3 and SSM endpoints"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_launch_template" "gpu" {
  count = local.gpu_mode ? 1 : 0

  name_prefix            = "${local.name}-gpu-"
  image_id               = data.aws_ssm_parameter.gpu_ami[0].value
  instance_type          = var.gpu_instance_type
  update_default_version = true
  vpc_security_group_ids = [aws_security_group.gpu_instances[0].id]

  iam_instance_profile {
    arn = aws_iam_instance_profile.gpu_instance[0].arn
  }

  # The agent joins this cluster; awsvpc tasks may not reach the instance metadata (and so the
  # host role's credentials); the stop timeout of the task definition is honoured up to 120 s.
  user_data = base64encode(<<-EOT
    #!/bin/bash
    cat >> /etc/ecs/ecs.config <<'CONFIG'
    ECS_CLUSTER=${aws_ecs_cluster.this.name}
    ECS_ENABLE_GPU_SUPPORT=true
    ECS_AWSVPC_BLOCK_IMDS=true
    ECS_CONTAINER_STOP_TIMEOUT=${var.stop_timeout_seconds}s
    ECS_ENABLE_CONTAINER_METADATA=true
    CONFIG
  EOT
  )

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  monitoring {
    enabled = true
  }

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_size           = var.gpu_instance_volume_gib
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = "${local.name}-gpu" })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(local.tags, { Name = "${local.name}-gpu" })
  }
}

resource "aws_autoscaling_group" "gpu" {
  count = local.gpu_mode ? 1 : 0

  name_prefix         = "${local.name}-gpu-"
  vpc_zone_identifier = aws_subnet.private[*].id
  # min 0: with no task to place (night mode) the capacity provider scales the hosts away.
  min_size              = 0
  max_size              = var.gpu_asg_max_size
  protect_from_scale_in = true # managed termination protection: never remove a host running tasks
  health_check_type     = "EC2"
  # `terraform destroy` would otherwise wait forever on scale-in-protected hosts.
  force_delete = true

  launch_template {
    id      = aws_launch_template.gpu[0].id
    version = aws_launch_template.gpu[0].latest_version
  }

  instance_refresh {
    strategy = "Rolling"
    preferences {
      min_healthy_percentage = 50
    }
  }

  # ECS managed scaling sets this tag itself; declaring it keeps Terraform from removing it.
  tag {
    key                 = "AmazonECSManaged"
    value               = "true"
    propagate_at_launch = true
  }

  dynamic "tag" {
    for_each = local.tags
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  lifecycle {
    ignore_changes = [desired_capacity] # the capacity provider owns it
  }
}

resource "aws_ecs_capacity_provider" "gpu" {
  count = local.gpu_mode ? 1 : 0

  name = "${local.name}-gpu"

  auto_scaling_group_provider {
    auto_scaling_group_arn         = aws_autoscaling_group.gpu[0].arn
    managed_termination_protection = "ENABLED"
    managed_draining               = "ENABLED"

    managed_scaling {
      status                    = "ENABLED"
      target_capacity           = 100 # no idle GPU host: scale out only for tasks waiting to be placed
      minimum_scaling_step_size = 1
      maximum_scaling_step_size = 2
      instance_warmup_period    = 300
    }
  }
}
