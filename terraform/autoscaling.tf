# Target tracking on three signals; whichever asks for the most tasks wins, and scale-in happens
# only when all three agree. Scale-out reacts within a minute; scale-in waits much longer
# because every removed task drains live sessions.

resource "aws_appautoscaling_target" "asr" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.asr.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  # The night scaler (SAM) lowers these at night and restores them in the morning; an apply at
  # night therefore restores the day values until the next scheduled scale_down.
  min_capacity = var.min_capacity
  max_capacity = var.max_capacity

  lifecycle {
    precondition {
      condition     = var.min_capacity <= var.max_capacity
      error_message = "min_capacity must not exceed max_capacity."
    }
    precondition {
      condition     = var.scale_in_cooldown_seconds > var.scale_out_cooldown_seconds
      error_message = "scale_in_cooldown_seconds must exceed scale_out_cooldown_seconds (scale out faster than in)."
    }
  }
}

# The ASR-shaped signal: open streams per task. Each task writes one EMF datapoint of
# ActiveStreams per minute under the service's ServiceName dimension, so the Average statistic
# over a minute is the mean number of streams per task.
resource "aws_appautoscaling_policy" "active_streams" {
  name               = "${local.name}-active-streams-per-task"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.asr.service_namespace
  resource_id        = aws_appautoscaling_target.asr.resource_id
  scalable_dimension = aws_appautoscaling_target.asr.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.active_streams_target_per_task
    scale_out_cooldown = var.scale_out_cooldown_seconds
    scale_in_cooldown  = var.scale_in_cooldown_seconds

    customized_metric_specification {
      namespace   = "EzSpeech/ASR"
      metric_name = "ActiveStreams"
      statistic   = "Average"
      unit        = "Count"

      dimensions {
        name  = "ServiceName"
        value = local.service_name
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.active_streams_target_per_task < var.max_sessions_per_task
      error_message = "active_streams_target_per_task must be below max_sessions_per_task, or tasks refuse sessions before scaling out."
    }
  }
}

resource "aws_appautoscaling_policy" "cpu" {
  name               = "${local.name}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.asr.service_namespace
  resource_id        = aws_appautoscaling_target.asr.resource_id
  scalable_dimension = aws_appautoscaling_target.asr.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.cpu_target_percent
    scale_out_cooldown = var.scale_out_cooldown_seconds
    scale_in_cooldown  = var.scale_in_cooldown_seconds

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

resource "aws_appautoscaling_policy" "memory" {
  name               = "${local.name}-memory"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.asr.service_namespace
  resource_id        = aws_appautoscaling_target.asr.resource_id
  scalable_dimension = aws_appautoscaling_target.asr.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.memory_target_percent
    scale_out_cooldown = var.scale_out_cooldown_seconds
    scale_in_cooldown  = var.scale_in_cooldown_seconds

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageMemoryUtilization"
    }
  }
}
