# Least privilege, with every policy written out here (no AWS managed policy on the task roles):
# - execution role: what the ECS agent needs to start the task (pull this repository's image,
#   write this log group, read the client-tokens secret and decrypt it with its key);
# - task role: what the server itself does (read model checkpoints under models/);
# - GPU host role (gpu mode): the ECS container agent on the instances.
# The server publishes its metrics as EMF lines on stdout, so no role needs cloudwatch:PutMetricData.

# The task role: only ECS tasks of this account may assume it (the confused-deputy guard ECS
# documents for task roles).
data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:ecs:${local.region}:${local.account_id}:*"]
    }
  }
}

# The execution role is assumed by the ECS agent before the task exists; it keeps the plain
# service trust that ECS documents for it.
data "aws_iam_policy_document" "ecs_execution_assume" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

# --------------------------------------------------------------------------- execution role
resource "aws_iam_role" "execution" {
  name               = "${local.name}-task-execution"
  description        = "ECS agent for ${local.name}: pull the asr-server image, write its logs, read its client tokens"
  assume_role_policy = data.aws_iam_policy_document.ecs_execution_assume.json
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid = "EcrAuthToken"
    # GetAuthorizationToken has no resource-level permissions: "*" is the only valid resource.
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid = "PullAsrImage"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
    ]
    resources = [aws_ecr_repository.asr.arn]
  }

  statement {
    sid       = "WriteContainerLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.asr.arn}:*"]
  }

  # The `secrets` entry of the task definition: this one secret, any of its versions.
  statement {
    sid       = "ReadClientTokens"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [local.client_tokens_secret_arn]
  }

  dynamic "statement" {
    for_each = local.client_tokens_kms_key_arn == null ? [] : [local.client_tokens_kms_key_arn]
    content {
      sid       = "DecryptClientTokens"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${local.region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "pull-image-write-logs"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# --------------------------------------------------------------------------- task role
resource "aws_iam_role" "task" {
  name               = "${local.name}-task"
  description        = "asr-server container of ${local.name}: read model checkpoints"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "task" {
  statement {
    sid = "ReadModelCheckpoints"
    # GetObjectVersion: the rollout pins MODEL_URI?versionId=..., so the server reads versions.
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = ["${aws_s3_bucket.models.arn}/models/*"]
  }

  statement {
    sid = "ListModelKeys"
    # Lets a missing key answer 404 (a clear "no such model") instead of 403.
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.models.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["models/*"]
    }
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "read-models"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}

# --------------------------------------------------------------------------- GPU hosts
data "aws_iam_policy_document" "ec2_assume" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "gpu_instance" {
  count = local.gpu_mode ? 1 : 0

  name               = "${local.name}-gpu-instance"
  description        = "ECS container agent on the GPU hosts of ${local.name}"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
}

# The agent's registration and telemetry calls are the AWS-maintained set for ECS container
# instances; writing them out by hand would only drift from what new agent versions call.
resource "aws_iam_role_policy_attachment" "gpu_instance_ecs" {
  count = local.gpu_mode ? 1 : 0

  role       = aws_iam_role.gpu_instance[0].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"
}

# Session Manager instead of SSH: no key pairs, no inbound port on the hosts.
resource "aws_iam_role_policy_attachment" "gpu_instance_ssm" {
  count = local.gpu_mode ? 1 : 0

  role       = aws_iam_role.gpu_instance[0].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "gpu_instance" {
  count = local.gpu_mode ? 1 : 0

  name = "${local.name}-gpu-instance"
  role = aws_iam_role.gpu_instance[0].name
}
