# Container logs (the server's JSON lines and its EMF metric lines) and the alarms.

resource "aws_cloudwatch_log_group" "asr" {
  #checkov:skip=CKV_AWS_158: CloudWatch Logs encrypts at rest by default; a customer key adds a key policy and cost without a stated need
  #checkov:skip=CKV_AWS_338: retention is a variable (log_retention_days); a year of streaming-server logs is not required here
  name              = "/ecs/${local.name}/asr-server"
  retention_in_days = var.log_retention_days
}

locals {
  alarm_actions = var.alarm_sns_topic_arn == null ? [] : [var.alarm_sns_topic_arn]
  service_dimensions = {
    ClusterName = aws_ecs_cluster.this.name
    ServiceName = aws_ecs_service.asr.name
  }
  target_dimensions = {
    LoadBalancer = aws_lb.this.arn_suffix
    TargetGroup  = aws_lb_target_group.asr.arn_suffix
  }
}

resource "aws_cloudwatch_metric_alarm" "cpu_high" {
  alarm_name          = "${local.name}-asr-cpu-high"
  alarm_description   = "asr-server CPU above 85 % for 5 minutes: scaling is not keeping up (max_capacity reached?)"
  namespace           = "AWS/ECS"
  metric_name         = "CPUUtilization"
  dimensions          = local.service_dimensions
  statistic           = "Average"
  period              = 60
  evaluation_periods  = 5
  threshold           = 85
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching" # no tasks at night is not an alarm
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "memory_high" {
  alarm_name          = "${local.name}-asr-memory-high"
  alarm_description   = "asr-server memory above 90 % for 5 minutes: close to the OOM kill"
  namespace           = "AWS/ECS"
  metric_name         = "MemoryUtilization"
  dimensions          = local.service_dimensions
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  threshold           = 90
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "http_5xx" {
  alarm_name          = "${local.name}-alb-5xx"
  alarm_description   = "More than ${var.alarm_5xx_per_5min} 5XX responses (ALB + targets) in 5 minutes: failed handshakes or no capacity"
  evaluation_periods  = 1
  threshold           = var.alarm_5xx_per_5min
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "total"
    expression  = "FILL(elb, 0) + FILL(target, 0)"
    label       = "5XX responses"
    return_data = true
  }

  metric_query {
    id = "elb"
    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "HTTPCode_ELB_5XX_Count"
      dimensions  = { LoadBalancer = aws_lb.this.arn_suffix }
      stat        = "Sum"
      period      = 300
    }
  }

  metric_query {
    id = "target"
    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "HTTPCode_Target_5XX_Count"
      dimensions  = local.target_dimensions
      stat        = "Sum"
      period      = 300
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "unhealthy_hosts" {
  alarm_name          = "${local.name}-asr-unhealthy-hosts"
  alarm_description   = "A registered task fails /ready for 5 minutes (model load failure or stuck drain)"
  namespace           = "AWS/ApplicationELB"
  metric_name         = "UnHealthyHostCount"
  dimensions          = local.target_dimensions
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# "No healthy host" only counts while the service wants tasks: at night the night scaler sets the
# desired count to 0 and an empty target group is expected, not an outage.
resource "aws_cloudwatch_metric_alarm" "no_healthy_hosts" {
  alarm_name          = "${local.name}-asr-no-healthy-hosts"
  alarm_description   = "The service wants tasks but none passes /ready: the endpoint is down"
  evaluation_periods  = 3
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "outage"
    expression  = "IF(FILL(desired, 0) > 0 AND FILL(healthy, 0) < 1, 1, 0)"
    label       = "Desired > 0 and no healthy target"
    return_data = true
  }

  metric_query {
    id = "healthy"
    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "HealthyHostCount"
      dimensions  = local.target_dimensions
      stat        = "Minimum"
      period      = 60
    }
  }

  metric_query {
    id = "desired"
    metric {
      namespace   = "ECS/ContainerInsights" # published because the cluster has Container Insights on
      metric_name = "DesiredTaskCount"
      dimensions  = local.service_dimensions
      stat        = "Maximum"
      period      = 60
    }
  }
}

# Recognition latency, from the server's EMF value arrays: the percentile is taken over every
# task's values in the minute, so one slow task shows. Five minutes in a row, so a single
# cold-start minute (first batch on a fresh GPU) does not page. The automation's dead-letter
# queues are alarmed in the SAM stack that owns them (template.yaml DeadLetterAlarm*); the
# dashboard shows their depth.
resource "aws_cloudwatch_metric_alarm" "partial_latency_p95" {
  alarm_name          = "${local.name}-asr-partial-latency-p95"
  alarm_description   = "Partial-result latency p95 above ${var.alarm_partial_latency_p95_ms} ms for 5 minutes: tasks are past real-time capacity (scaling not keeping up, or a slow model/GPU)"
  namespace           = "EzSpeech/ASR"
  metric_name         = "PartialLatency"
  dimensions          = { ServiceName = local.service_name }
  extended_statistic  = "p95"
  unit                = "Milliseconds"
  period              = 60
  evaluation_periods  = 5
  threshold           = var.alarm_partial_latency_p95_ms
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching" # no streams, no latency values: not an alarm
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "final_latency_p95" {
  alarm_name          = "${local.name}-asr-final-latency-p95"
  alarm_description   = "Final-result latency p95 above ${var.alarm_final_latency_p95_ms} ms for 5 minutes: users wait for their transcript at the end of each utterance"
  namespace           = "EzSpeech/ASR"
  metric_name         = "FinalLatency"
  dimensions          = { ServiceName = local.service_name }
  extended_statistic  = "p95"
  unit                = "Milliseconds"
  period              = 60
  evaluation_periods  = 5
  threshold           = var.alarm_final_latency_p95_ms
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}
