# Each output names its consumer.

output "alb_dns_name" {
  description = "ALB DNS name; clients connect to ws://<this>/ (wss:// with a certificate). Used by the README's client step and SSM alb-dns-name."
  value       = aws_lb.this.dns_name
}

output "websocket_url" {
  description = "WebSocket URL of the service (README client step)."
  value       = "${local.https_enabled ? "wss" : "ws"}://${aws_lb.this.dns_name}/"
}

output "ecr_repository_url" {
  description = "ECR repository URL: `make push` tags and pushes the image here."
  value       = aws_ecr_repository.asr.repository_url
}

output "models_bucket" {
  description = "Models bucket name: `make upload-model` writes checkpoints under models/."
  value       = aws_s3_bucket.models.id
}

output "cluster_name" {
  description = "ECS cluster name (Makefile, SSM cluster-name)."
  value       = aws_ecs_cluster.this.name
}

output "service_name" {
  description = "ECS service name (Makefile, SSM service-name)."
  value       = aws_ecs_service.asr.name
}

output "aws_region" {
  description = "Region of the stack (`make push` logs in to this registry)."
  value       = local.region
}

output "log_group_name" {
  description = "CloudWatch log group of the asr-server container (README operations: `aws logs tail`)."
  value       = aws_cloudwatch_log_group.asr.name
}

output "ssm_parameter_prefix" {
  description = "Prefix of the SSM parameters the SAM stack reads (samconfig.toml parameter overrides)."
  value       = local.ssm_prefix
}

output "dashboard_name" {
  description = "CloudWatch dashboard of the service (README operations: the dashboard; open it in the CloudWatch console under Dashboards)."
  value       = aws_cloudwatch_dashboard.asr.dashboard_name
}

output "client_tokens_secret_arn" {
  description = "ARN of the client-tokens secret (the ARN only, never a value). `make rotate-tokens` finds it in the task definition; README deploy step: write the first clients."
  value       = local.client_tokens_secret_arn
}
