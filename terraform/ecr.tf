# The asr-server image repository. Tags are immutable (a git revision always means the same
# bytes, which is what makes a rollback to an old task definition safe), every push is scanned,
# and the scan result is an EventBridge event the SAM stack's scan_alert Lambda turns into alerts.

resource "aws_ecr_repository" "asr" {
  name                 = "${local.name}/asr-server"
  image_tag_mutability = "IMMUTABLE"
  force_delete         = var.environment == "dev"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS" # the AWS-managed aws/ecr key
  }

  tags = { Name = "${local.name}/asr-server" }
}

resource "aws_ecr_lifecycle_policy" "asr" {
  repository = aws_ecr_repository.asr.name

  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Drop untagged layers left by failed or replaced pushes after a day"
        selection = {
          tagStatus   = "untagged"
          countType   = "sinceImagePushed"
          countUnit   = "days"
          countNumber = 1
        }
        action = { type = "expire" }
      },
      {
        rulePriority = 2
        description  = "Keep the newest ${var.ecr_images_kept} tagged images (rollback depth)"
        selection = {
          tagStatus   = "any"
          countType   = "imageCountMoreThan"
          countNumber = var.ecr_images_kept
        }
        action = { type = "expire" }
      },
    ]
  })
}

# Enhanced scanning (Amazon Inspector) rescans images when new CVEs appear, not only on push.
# It is a registry-wide, per-region setting, so it is opt-in: it replaces the account's filters.
resource "aws_ecr_registry_scanning_configuration" "enhanced" {
  count = var.ecr_enhanced_scanning ? 1 : 0

  scan_type = "ENHANCED"

  rule {
    scan_frequency = "CONTINUOUS_SCAN"

    repository_filter {
      filter      = aws_ecr_repository.asr.name
      filter_type = "WILDCARD"
    }
  }
}
