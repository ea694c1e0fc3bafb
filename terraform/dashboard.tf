# The operator's single page: streams and capacity against the scaling target, recognition latency
# (p50/p95 from the server's EMF value arrays), rejects and errors, the ALB, ECS CPU/memory and the
# GPU, the automation Lambdas and their dead-letter queues, and the last rollouts.
#
# Widgets are plain data in local.dashboard_widgets (no for-expressions) so that
# tests/infra/test_dashboard.py can read every metric they show and check it against what the
# server writes (asr_service/metrics.py), what the SAM template names, and the ALB/ECS resources here.

locals {
  # The SAM stack (samconfig.toml: ezspeech-automation-<env>) pins its function, queue and log
  # group names on its stack name; the dashboard finds them through it.
  automation_stack            = coalesce(var.automation_stack_name, "${var.project}-automation-${var.environment}")
  automation_log_group_prefix = "/aws/lambda/${local.automation_stack}"

  dashboard_widgets = [
    {
      type = "text", x = 0, y = 0, width = 24, height = 2
      properties = {
        markdown = "## ${local.service_name}\nStreams and latency come from the server's EMF lines (namespace EzSpeech/ASR, ServiceName ${local.service_name}); latency percentiles are taken over every task's values. Night mode empties the service on purpose: flat lines at night are expected. Metric names and units: README, \"Metrics\"."
      }
    },
    # ------------------------------------------------------------------ streams and capacity
    {
      type = "metric", x = 0, y = 2, width = 8, height = 6
      properties = {
        title  = "Streams per task vs scaling target"
        region = local.region
        view   = "timeSeries"
        period = 60
        stat   = "Average"
        metrics = [
          ["EzSpeech/ASR", "ActiveStreams", "ServiceName", local.service_name, { stat = "Average", label = "average per task (scaling signal)" }],
          ["EzSpeech/ASR", "ActiveStreams", "ServiceName", local.service_name, { stat = "Maximum", label = "busiest task" }],
        ]
        annotations = {
          horizontal = [
            { label = "target per task", value = var.active_streams_target_per_task },
            { label = "MAX_SESSIONS (refused above)", value = var.max_sessions_per_task, color = "#d62728" },
          ]
        }
        yAxis = { left = { min = 0 } }
      }
    },
    {
      type = "metric", x = 8, y = 2, width = 8, height = 6
      properties = {
        title  = "Tasks: desired and running"
        region = local.region
        view   = "timeSeries"
        period = 60
        stat   = "Maximum"
        metrics = [
          ["ECS/ContainerInsights", "DesiredTaskCount", "ClusterName", aws_ecs_cluster.this.name, "ServiceName", aws_ecs_service.asr.name, { label = "desired" }],
          ["ECS/ContainerInsights", "RunningTaskCount", "ClusterName", aws_ecs_cluster.this.name, "ServiceName", aws_ecs_service.asr.name, { label = "running" }],
        ]
        annotations = {
          horizontal = [{ label = "max_capacity", value = var.max_capacity, color = "#d62728" }]
        }
        yAxis = { left = { min = 0 } }
      }
    },
    {
      type = "metric", x = 16, y = 2, width = 8, height = 6
      properties = {
        title  = "Open streams and audio recognised (all tasks)"
        region = local.region
        view   = "timeSeries"
        period = 60
        stat   = "Sum"
        metrics = [
          # One ActiveStreams datapoint per task per minute: the minute's Sum is the service total.
          ["EzSpeech/ASR", "ActiveStreams", "ServiceName", local.service_name, { stat = "Sum", label = "open streams" }],
          ["EzSpeech/ASR", "AudioSecondsProcessed", "ServiceName", local.service_name, { stat = "Sum", label = "audio seconds per minute", yAxis = "right" }],
        ]
        yAxis = { left = { min = 0 }, right = { min = 0 } }
      }
    },
    # ------------------------------------------------------------------ latency and the engine
    {
      type = "metric", x = 0, y = 8, width = 8, height = 6
      properties = {
        title  = "Partial latency (ms): audio chunk at the server → partial sent"
        region = local.region
        view   = "timeSeries"
        period = 60
        stat   = "p95"
        metrics = [
          ["EzSpeech/ASR", "PartialLatency", "ServiceName", local.service_name, { stat = "p50", label = "p50" }],
          ["EzSpeech/ASR", "PartialLatency", "ServiceName", local.service_name, { stat = "p95", label = "p95" }],
        ]
        annotations = {
          horizontal = [{ label = "p95 alarm", value = var.alarm_partial_latency_p95_ms, color = "#d62728" }]
        }
        yAxis = { left = { min = 0 } }
      }
    },
    {
      type = "metric", x = 8, y = 8, width = 8, height = 6
      properties = {
        title  = "Final latency (ms): end of speech at the server → final sent"
        region = local.region
        view   = "timeSeries"
        period = 60
        stat   = "p95"
        metrics = [
          ["EzSpeech/ASR", "FinalLatency", "ServiceName", local.service_name, { stat = "p50", label = "p50" }],
          ["EzSpeech/ASR", "FinalLatency", "ServiceName", local.service_name, { stat = "p95", label = "p95" }],
        ]
        annotations = {
          horizontal = [{ label = "p95 alarm", value = var.alarm_final_latency_p95_ms, color = "#d62728" }]
        }
        yAxis = { left = { min = 0 } }
      }
    },
    {
      type = "metric", x = 16, y = 8, width = 8, height = 6
      properties = {
        title  = "Engine: streams per batch and step time"
        region = local.region
        view   = "timeSeries"
        period = 60
        stat   = "p50"
        metrics = [
          ["EzSpeech/ASR", "EngineBatchSize", "ServiceName", local.service_name, { stat = "p50", label = "batch size p50" }],
          ["EzSpeech/ASR", "EngineBatchSize", "ServiceName", local.service_name, { stat = "Maximum", label = "batch size max" }],
          ["EzSpeech/ASR", "EngineStepTime", "ServiceName", local.service_name, { stat = "p95", label = "step time p95 (ms)", yAxis = "right" }],
        ]
        yAxis = { left = { min = 0 }, right = { min = 0 } }
      }
    },
    # ------------------------------------------------------------------ errors, rejects, the ALB
    {
      type = "metric", x = 0, y = 14, width = 8, height = 6
      properties = {
        title  = "Refused sessions by reason"
        region = local.region
        view   = "timeSeries"
        period = 60
        stat   = "Sum"
        metrics = [
          [{ id = "by_reason", expression = "SEARCH('{EzSpeech/ASR,Reason,ServiceName} MetricName=\"RejectedSessions\" ServiceName=\"${local.service_name}\"', 'Sum', 60)" }],
          ["EzSpeech/ASR", "RejectedSessions", "ServiceName", local.service_name, { stat = "Sum", label = "all reasons" }],
        ]
        yAxis = { left = { min = 0 } }
      }
    },
    {
      type = "metric", x = 8, y = 14, width = 8, height = 6
      properties = {
        title  = "ALB: 5XX and connection errors"
        region = local.region
        view   = "timeSeries"
        period = 60
        stat   = "Sum"
        metrics = [
          ["AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", "LoadBalancer", aws_lb.this.arn_suffix, { label = "ALB 5XX (no target, timeouts)" }],
          ["AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", "LoadBalancer", aws_lb.this.arn_suffix, "TargetGroup", aws_lb_target_group.asr.arn_suffix, { label = "target 5XX (503 = full or draining)" }],
          ["AWS/ApplicationELB", "TargetConnectionErrorCount", "LoadBalancer", aws_lb.this.arn_suffix, "TargetGroup", aws_lb_target_group.asr.arn_suffix, { label = "target connection errors" }],
          ["AWS/ApplicationELB", "RejectedConnectionCount", "LoadBalancer", aws_lb.this.arn_suffix, { label = "ALB rejected connections" }],
        ]
        yAxis = { left = { min = 0 } }
      }
    },
    {
      type = "metric", x = 16, y = 14, width = 8, height = 6
      properties = {
        title  = "ALB: connections and healthy tasks"
        region = local.region
        view   = "timeSeries"
        period = 60
        metrics = [
          ["AWS/ApplicationELB", "ActiveConnectionCount", "LoadBalancer", aws_lb.this.arn_suffix, { stat = "Sum", label = "active connections" }],
          ["AWS/ApplicationELB", "NewConnectionCount", "LoadBalancer", aws_lb.this.arn_suffix, { stat = "Sum", label = "new connections" }],
          ["AWS/ApplicationELB", "HealthyHostCount", "LoadBalancer", aws_lb.this.arn_suffix, "TargetGroup", aws_lb_target_group.asr.arn_suffix, { stat = "Minimum", label = "healthy tasks", yAxis = "right" }],
          ["AWS/ApplicationELB", "UnHealthyHostCount", "LoadBalancer", aws_lb.this.arn_suffix, "TargetGroup", aws_lb_target_group.asr.arn_suffix, { stat = "Maximum", label = "unhealthy tasks", yAxis = "right" }],
        ]
        yAxis = { left = { min = 0 }, right = { min = 0 } }
      }
    },
    # ------------------------------------------------------------------ ECS and the GPU
    {
      type = "metric", x = 0, y = 20, width = 12, height = 6
      properties = {
        title  = "ECS service CPU and memory (%)"
        region = local.region
        view   = "timeSeries"
        period = 60
        stat   = "Average"
        metrics = [
          ["AWS/ECS", "CPUUtilization", "ClusterName", aws_ecs_cluster.this.name, "ServiceName", aws_ecs_service.asr.name, { label = "CPU average" }],
          ["AWS/ECS", "CPUUtilization", "ClusterName", aws_ecs_cluster.this.name, "ServiceName", aws_ecs_service.asr.name, { stat = "Maximum", label = "CPU busiest task" }],
          ["AWS/ECS", "MemoryUtilization", "ClusterName", aws_ecs_cluster.this.name, "ServiceName", aws_ecs_service.asr.name, { stat = "Maximum", label = "memory busiest task" }],
        ]
        annotations = {
          horizontal = [
            { label = "CPU scaling target", value = var.cpu_target_percent },
            { label = "memory scaling target", value = var.memory_target_percent },
          ]
        }
        yAxis = { left = { min = 0, max = 100 } }
      }
    },
    {
      type = "metric", x = 12, y = 20, width = 12, height = 6
      properties = {
        title  = "GPU (gpu mode; empty on Fargate)"
        region = local.region
        view   = "timeSeries"
        period = 60
        stat   = "Average"
        metrics = [
          ["EzSpeech/ASR", "GpuUtilization", "ServiceName", local.service_name, { stat = "Average", label = "utilisation % (average)" }],
          ["EzSpeech/ASR", "GpuUtilization", "ServiceName", local.service_name, { stat = "Maximum", label = "utilisation % (busiest)" }],
          ["EzSpeech/ASR", "GpuMemoryUtilization", "ServiceName", local.service_name, { stat = "Maximum", label = "memory used % (fullest)" }],
        ]
        yAxis = { left = { min = 0, max = 100 } }
      }
    },
    # ------------------------------------------------------------------ automation (SAM stack)
    {
      type = "metric", x = 0, y = 26, width = 12, height = 6
      properties = {
        title  = "Automation Lambdas: invocations and errors"
        region = local.region
        view   = "timeSeries"
        period = 300
        stat   = "Sum"
        metrics = [
          ["AWS/Lambda", "Invocations", "FunctionName", "${local.automation_stack}-model-rollout", { label = "model-rollout invocations" }],
          ["AWS/Lambda", "Errors", "FunctionName", "${local.automation_stack}-model-rollout", { label = "model-rollout errors" }],
          ["AWS/Lambda", "Invocations", "FunctionName", "${local.automation_stack}-scan-alert", { label = "scan-alert invocations" }],
          ["AWS/Lambda", "Errors", "FunctionName", "${local.automation_stack}-scan-alert", { label = "scan-alert errors" }],
          ["AWS/Lambda", "Invocations", "FunctionName", "${local.automation_stack}-night-scaler", { label = "night-scaler invocations" }],
          ["AWS/Lambda", "Errors", "FunctionName", "${local.automation_stack}-night-scaler", { label = "night-scaler errors" }],
          ["AWS/Lambda", "Invocations", "FunctionName", "${local.automation_stack}-deploy-watch", { label = "deploy-watch invocations" }],
          ["AWS/Lambda", "Errors", "FunctionName", "${local.automation_stack}-deploy-watch", { label = "deploy-watch errors" }],
        ]
        yAxis = { left = { min = 0 } }
      }
    },
    {
      type = "metric", x = 12, y = 26, width = 12, height = 6
      properties = {
        title  = "Dead-letter queues: events that failed for good"
        region = local.region
        view   = "timeSeries"
        period = 300
        stat   = "Maximum"
        metrics = [
          ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "${local.automation_stack}-function-dlq", { label = "function DLQ (failed after retries)" }],
          ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "${local.automation_stack}-delivery-dlq", { label = "delivery DLQ (never reached a function)" }],
        ]
        yAxis = { left = { min = 0 } }
      }
    },
    # ------------------------------------------------------------------ what is deployed
    {
      type = "log", x = 0, y = 32, width = 12, height = 6
      properties = {
        title  = "Last rollouts (model_rollout Lambda)"
        region = local.region
        view   = "table"
        query  = "SOURCE '${local.automation_log_group_prefix}/model-rollout' | fields @timestamp, message, key, version_id, sha256, deployment_id | filter message like /^rollout_/ | sort @timestamp desc | limit 10"
      }
    },
    {
      type = "log", x = 12, y = 32, width = 12, height = 6
      properties = {
        title  = "Models the tasks loaded (server_ready)"
        region = local.region
        view   = "table"
        query  = "SOURCE '${aws_cloudwatch_log_group.asr.name}' | fields @timestamp, model_source, model_sha256, decode_strategy, device | filter event = \"server_ready\" | sort @timestamp desc | limit 10"
      }
    },
  ]
}

resource "aws_cloudwatch_dashboard" "asr" {
  dashboard_name = local.name
  dashboard_body = jsonencode({ start = "-PT6H", periodOverride = "inherit", widgets = local.dashboard_widgets })
}
