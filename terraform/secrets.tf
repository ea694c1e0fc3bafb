# Client tokens: the Secrets Manager secret holding the named-client table the server checks
# handshakes against (asr_service/auth.py). ECS reads it with the execution role when a task starts
# and hands it to the asr-server container as AUTH_TOKENS through the task definition's `secrets`
# (ecs.tf), never as plain environment.
#
# Terraform creates the secret (or takes the ARN of an existing one) but never writes its value:
# `make rotate-tokens` (ops/tokens.py) writes each version and rolls the service onto it, so no
# token ever enters the Terraform state, a plan or an output. Until the first version exists, ECS
# cannot start a task (and a task started without clients refuses to run: REQUIRE_AUTH=true).

locals {
  create_client_tokens_secret = var.client_tokens_secret_arn == null
  create_client_tokens_key    = local.create_client_tokens_secret && var.client_tokens_kms_key_arn == null

  client_tokens_secret_arn = (
    local.create_client_tokens_secret ? aws_secretsmanager_secret.client_tokens[0].arn : var.client_tokens_secret_arn
  )
  # null: a given secret encrypted with the AWS managed key (which needs no grant here).
  client_tokens_kms_key_arn = (
    local.create_client_tokens_key ? aws_kms_key.client_tokens[0].arn : var.client_tokens_kms_key_arn
  )
}

# A key of its own, so that reading the tokens needs a grant on this key as well as on the secret
# (the AWS managed aws/secretsmanager key would let any principal with GetSecretValue decrypt).
resource "aws_kms_key" "client_tokens" {
  count = local.create_client_tokens_key ? 1 : 0

  description             = "${local.name}: encrypts the client-tokens secret"
  enable_key_rotation     = true
  deletion_window_in_days = 30

  # The account's IAM policies decide who may use the key (the execution role: iam.tf); without
  # this statement the key could not be managed at all.
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "AccountIamPoliciesGovernThisKey"
      Effect    = "Allow"
      Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
      Action    = "kms:*"
      Resource  = "*"
    }]
  })
}

resource "aws_kms_alias" "client_tokens" {
  count = local.create_client_tokens_key ? 1 : 0

  name          = "alias/${local.name}-client-tokens"
  target_key_id = aws_kms_key.client_tokens[0].key_id
}

resource "aws_secretsmanager_secret" "client_tokens" {
  #checkov:skip=CKV2_AWS_57: bearer tokens held by outside clients cannot be rotated by a Lambda nobody hands the new token to; rotation is `make rotate-tokens`, which keeps the previous token valid and rolls the service
  count = local.create_client_tokens_secret ? 1 : 0

  name        = "${local.name}/client-tokens"
  description = "${local.name}: named client tokens of the asr-server (JSON: {client: sha256:<hex> | [..] | {tokens, max_sessions}}); written by make rotate-tokens"
  kms_key_id  = local.create_client_tokens_key ? aws_kms_key.client_tokens[0].arn : var.client_tokens_kms_key_arn
  # A deleted secret can be restored for a week: deleting it stops every new task from starting.
  recovery_window_in_days = 7
}
