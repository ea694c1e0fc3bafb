# The names the SAM stack reads through AWS::SSM::Parameter::Value<String> parameters (and the
# Makefile through `aws ssm get-parameter`). tests/infra/test_contracts.py checks that every
# parameter template.yaml reads is written here.

locals {
  ssm_parameters = {
    "cluster-name"        = aws_ecs_cluster.this.name
    "service-name"        = aws_ecs_service.asr.name
    "container-name"      = local.container_name
    "models-bucket"       = aws_s3_bucket.models.id
    "ecr-repository-name" = aws_ecr_repository.asr.name
    "ecr-repository-url"  = aws_ecr_repository.asr.repository_url
    "alb-dns-name"        = aws_lb.this.dns_name
    "log-group-name"      = aws_cloudwatch_log_group.asr.name
    "task-family"         = aws_ecs_task_definition.asr.family
  }
}

resource "aws_ssm_parameter" "names" {
  #checkov:skip=CKV2_AWS_34: resource names, not secrets; CloudFormation's Parameter::Value<String> cannot read SecureString
  for_each = local.ssm_parameters

  name        = "${local.ssm_prefix}/${each.key}"
  description = "${local.name}: ${each.key} (written by Terraform, read by the SAM stack)"
  type        = "String"
  value       = each.value
}
