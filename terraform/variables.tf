# Inputs of the core stack. Units are in every description; enums and ranges are validated
# here so a bad tfvars fails at `terraform plan` with a message instead of at apply time.

# ------------------------------------------------------------------------------ identity
variable "project" {
  type        = string
  description = "Project name: prefix of every resource name and of the SSM parameters (/<project>/<environment>/...) that the SAM stack reads."
  default     = "ezspeech"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.project))
    error_message = "project must be 3-20 characters of lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "environment" {
  type        = string
  description = "Deployment environment: dev (one NAT gateway, no deletion protection) or prod (NAT per AZ)."

  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment must be \"dev\" or \"prod\"."
  }
}

variable "aws_region" {
  type        = string
  description = "AWS region to deploy into, e.g. us-east-1."
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "aws_region must look like us-east-1."
  }
}

variable "tags" {
  type        = map(string)
  description = "Extra tags added to every resource (on top of Project, Environment and ManagedBy)."
  default     = {}
}

# ------------------------------------------------------------------------------ network
variable "vpc_cidr" {
  type        = string
  description = "IPv4 CIDR of the VPC (prefix /16 to /20). Public /24-style and private /20-style subnets are carved from it."
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrnetmask(var.vpc_cidr)) && tonumber(split("/", var.vpc_cidr)[1]) >= 16 && tonumber(split("/", var.vpc_cidr)[1]) <= 20
    error_message = "vpc_cidr must be a valid IPv4 CIDR with a prefix length between 16 and 20."
  }
}

variable "az_count" {
  type        = number
  description = "Number of availability zones (count) to spread subnets, NAT gateways and tasks over."
  default     = 3

  validation {
    condition     = var.az_count >= 2 && var.az_count <= 4 && floor(var.az_count) == var.az_count
    error_message = "az_count must be a whole number from 2 to 4 (the ALB needs at least two zones)."
  }
}

variable "single_nat_gateway" {
  type        = bool
  description = "true: one NAT gateway shared by all zones (cheaper, zone-fragile); false: one per zone. null picks true in dev and false in prod."
  default     = null
}

variable "enable_flow_logs" {
  type        = bool
  description = "Write VPC flow logs (rejected and accepted traffic) to the access-logs bucket."
  default     = true
}

# ------------------------------------------------------------------------------ load balancer
variable "acm_certificate_arn" {
  type        = string
  description = "ACM certificate ARN for the HTTPS listener. null: plain HTTP on port 80 forwards to the service (test setups only); set: HTTPS on 443 and HTTP redirects to it."
  default     = null

  validation {
    condition     = var.acm_certificate_arn == null || can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/.+$", var.acm_certificate_arn))
    error_message = "acm_certificate_arn must be null or an ACM certificate ARN."
  }
}

variable "ssl_policy" {
  type        = string
  description = "ELB security policy name of the HTTPS listener (TLS versions and ciphers offered)."
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"
}

variable "alb_idle_timeout_seconds" {
  type        = number
  description = "ALB idle timeout in seconds. A WebSocket with no frame in either direction for this long is closed by the ALB, so it must exceed the longest pause in a stream (>= 300)."
  default     = 900

  validation {
    condition     = var.alb_idle_timeout_seconds >= 300 && var.alb_idle_timeout_seconds <= 4000
    error_message = "alb_idle_timeout_seconds must be between 300 and 4000 seconds (the ALB maximum)."
  }
}

variable "allowed_ingress_cidrs" {
  type        = list(string)
  description = "IPv4 CIDRs allowed to reach the ALB listeners (ports 80/443)."
  default     = ["0.0.0.0/0"]

  validation {
    condition     = length(var.allowed_ingress_cidrs) > 0 && alltrue([for c in var.allowed_ingress_cidrs : can(cidrnetmask(c))])
    error_message = "allowed_ingress_cidrs must be a non-empty list of IPv4 CIDRs."
  }
}

variable "waf_web_acl_arn" {
  type        = string
  description = "ARN of a regional WAFv2 web ACL to associate with the ALB; null for none."
  default     = null

  validation {
    condition     = var.waf_web_acl_arn == null || can(regex("^arn:aws[a-z-]*:wafv2:[a-z0-9-]+:[0-9]{12}:regional/webacl/.+$", var.waf_web_acl_arn))
    error_message = "waf_web_acl_arn must be null or a regional WAFv2 web ACL ARN."
  }
}

variable "alb_deletion_protection" {
  type        = bool
  description = "Protect the ALB from deletion (turn off before `terraform destroy`)."
  default     = true
}

# ------------------------------------------------------------------------------ compute
variable "capacity_mode" {
  type        = string
  description = "gpu: EC2 GPU instances (ECS GPU-optimized AMI) in an Auto Scaling group behind a capacity provider; cpu: Fargate (optionally with Fargate Spot)."
  default     = "gpu"

  validation {
    condition     = contains(["gpu", "cpu"], var.capacity_mode)
    error_message = "capacity_mode must be \"gpu\" or \"cpu\"."
  }
}

variable "gpu_instance_type" {
  type        = string
  description = "EC2 instance type of the GPU hosts (one NVIDIA GPU each is the intended shape, e.g. g4dn.xlarge, g5.xlarge, g6.xlarge)."
  default     = "g4dn.xlarge"

  validation {
    condition     = can(regex("^(g[0-9][a-z]*|p[0-9][a-z]*)\\.[0-9a-z]+$", var.gpu_instance_type))
    error_message = "gpu_instance_type must be a G or P family instance type, e.g. g4dn.xlarge."
  }
}

variable "gpu_ami_ssm_parameter" {
  type        = string
  description = "Public SSM parameter holding the ECS GPU-optimized AMI id (AWS keeps it pointed at the latest recommended image). AL2023 by default: the Amazon Linux 2 ECS AMIs reached end of life on 2026-06-30."
  default     = "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id"
}

variable "gpu_instance_volume_gib" {
  type        = number
  description = "Root EBS volume size of each GPU host in GiB (holds the container image, several GB with CUDA)."
  default     = 100

  validation {
    condition     = var.gpu_instance_volume_gib >= 50 && var.gpu_instance_volume_gib <= 1000
    error_message = "gpu_instance_volume_gib must be between 50 and 1000 GiB."
  }
}

variable "gpu_asg_max_size" {
  type        = number
  description = "Maximum number of GPU hosts (count). The minimum is 0 so hosts go away when no task needs them (night mode)."
  default     = 4

  validation {
    condition     = var.gpu_asg_max_size >= 1 && var.gpu_asg_max_size <= 100
    error_message = "gpu_asg_max_size must be between 1 and 100."
  }
}

variable "gpus_per_task" {
  type        = number
  description = "GPUs reserved by each task in gpu mode (count)."
  default     = 1

  validation {
    condition     = var.gpus_per_task >= 1 && var.gpus_per_task <= 8
    error_message = "gpus_per_task must be between 1 and 8."
  }
}

variable "fargate_spot_weight" {
  type        = number
  description = "cpu mode: relative weight of FARGATE_SPOT against FARGATE (weight 1) for tasks beyond the on-demand base; 0 disables Spot. Spot tasks get a 2-minute interruption notice, within the drain budget."
  default     = 0

  validation {
    condition     = var.fargate_spot_weight >= 0 && var.fargate_spot_weight <= 10
    error_message = "fargate_spot_weight must be between 0 and 10."
  }
}

variable "fargate_on_demand_base" {
  type        = number
  description = "cpu mode: number of tasks (count) always placed on on-demand FARGATE before the Spot weight applies."
  default     = 1

  validation {
    condition     = var.fargate_on_demand_base >= 0 && var.fargate_on_demand_base <= 100
    error_message = "fargate_on_demand_base must be between 0 and 100."
  }
}

variable "task_cpu" {
  type        = number
  description = "CPU units per task (1024 = one vCPU). Fargate accepts 256, 512, 1024, 2048, 4096, 8192, 16384."
  default     = 2048

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.task_cpu)
    error_message = "task_cpu must be one of 256, 512, 1024, 2048, 4096, 8192, 16384."
  }
}

variable "workers_per_task" {
  type        = number
  description = "WORKERS: server processes (count) in one task, each with its own model copy, sharing the task's port and MAX_SESSIONS. null = one per vCPU of task_cpu in cpu mode (one Python process uses about one core), 1 in gpu mode (unmeasured; see the README's Worker processes)."
  default     = null

  validation {
    condition     = var.workers_per_task == null ? true : (var.workers_per_task >= 1 && var.workers_per_task <= 64 && floor(var.workers_per_task) == var.workers_per_task)
    error_message = "workers_per_task must be null (one per vCPU) or a whole number from 1 to 64."
  }
}

variable "task_memory" {
  type        = number
  description = "Memory per task in MiB (must be a valid Fargate pairing with task_cpu in cpu mode, and fit the instance in gpu mode)."
  default     = 8192

  validation {
    condition     = var.task_memory >= 512 && var.task_memory <= 122880
    error_message = "task_memory must be between 512 and 122880 MiB."
  }
}

variable "fargate_ephemeral_storage_gib" {
  type        = number
  description = "cpu mode: task ephemeral storage in GiB (the CUDA-capable image is several GB unpacked)."
  default     = 40

  validation {
    condition     = var.fargate_ephemeral_storage_gib >= 21 && var.fargate_ephemeral_storage_gib <= 200
    error_message = "fargate_ephemeral_storage_gib must be between 21 and 200 GiB."
  }
}

# ------------------------------------------------------------------------------ service
variable "image_tag" {
  type        = string
  description = "Tag of the asr-server image in the ECR repository used by the first task definition (`make tf-apply` passes the git revision that `make push` pushes)."

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag))
    error_message = "image_tag must be a valid Docker tag (letters, digits, _ . -, at most 128 characters)."
  }
}

variable "desired_count" {
  type        = number
  description = "Tasks (count) started when the service is created. Afterwards autoscaling and the night scaler own it (Terraform ignores drift)."
  default     = 1

  validation {
    condition     = var.desired_count >= 0 && var.desired_count <= 100
    error_message = "desired_count must be between 0 and 100."
  }
}

variable "min_capacity" {
  type        = number
  description = "Autoscaling minimum task count during the day (the night scaler lowers it to its own night value)."
  default     = 1

  validation {
    condition     = var.min_capacity >= 0 && var.min_capacity <= 100
    error_message = "min_capacity must be between 0 and 100."
  }
}

variable "max_capacity" {
  type        = number
  description = "Autoscaling maximum task count."
  default     = 4

  validation {
    condition     = var.max_capacity >= 1 && var.max_capacity <= 200
    error_message = "max_capacity must be between 1 and 200."
  }
}

variable "stop_timeout_seconds" {
  type        = number
  description = "Seconds ECS waits after SIGTERM before SIGKILL (container stopTimeout; Fargate allows at most 120)."
  default     = 120

  validation {
    condition     = var.stop_timeout_seconds >= 10 && var.stop_timeout_seconds <= 120
    error_message = "stop_timeout_seconds must be between 10 and 120."
  }
}

variable "drain_timeout_seconds" {
  type        = number
  description = "Seconds the server spends draining open sessions after SIGTERM (DRAIN_TIMEOUT_S), and the ALB deregistration delay during which open WebSockets may finish on their own. Must be below stop_timeout_seconds."
  default     = 90

  validation {
    condition     = var.drain_timeout_seconds >= 5 && var.drain_timeout_seconds <= 115
    error_message = "drain_timeout_seconds must be between 5 and 115."
  }
}

variable "health_check_grace_period_seconds" {
  type        = number
  description = "Seconds after a task starts during which ALB health-check failures are ignored (model download and warm-up)."
  default     = 300

  validation {
    condition     = var.health_check_grace_period_seconds >= 0 && var.health_check_grace_period_seconds <= 3600
    error_message = "health_check_grace_period_seconds must be between 0 and 3600."
  }
}

variable "log_level" {
  type        = string
  description = "LOG_LEVEL of the server: DEBUG, INFO, WARNING or ERROR."
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

variable "max_sessions_per_task" {
  type        = number
  description = "MAX_SESSIONS: concurrent streams (count) one task accepts before refusing with 1013."
  default     = 64

  validation {
    condition     = var.max_sessions_per_task >= 1 && var.max_sessions_per_task <= 10000
    error_message = "max_sessions_per_task must be between 1 and 10000."
  }
}

variable "initial_model_uri" {
  type        = string
  description = "MODEL_URI of the first task definition (s3://bucket/key?versionId=V). Empty: the image's shipped demo model. Later models arrive through `make upload-model` and the rollout Lambda."
  default     = ""

  validation {
    condition     = var.initial_model_uri == "" || can(regex("^s3://[a-z0-9][a-z0-9.-]+/.+", var.initial_model_uri))
    error_message = "initial_model_uri must be empty or an s3:// URI."
  }
}

variable "initial_model_sha256" {
  type        = string
  description = "MODEL_SHA256 (64 hex characters) of initial_model_uri; empty skips the check."
  default     = ""

  validation {
    condition     = var.initial_model_sha256 == "" || can(regex("^[0-9a-f]{64}$", var.initial_model_sha256))
    error_message = "initial_model_sha256 must be empty or 64 lowercase hex characters."
  }
}

variable "extra_environment" {
  type        = map(string)
  description = "Further server settings as env vars (see the README configuration table), e.g. { BATCH_MAX_SIZE = \"32\" }. Not for secrets: client tokens come from the client-tokens secret (secrets.tf)."
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.extra_environment) : can(regex("^[A-Z][A-Z0-9_]*$", k))])
    error_message = "extra_environment keys must be upper-case env var names."
  }

  validation {
    condition     = !contains(keys(var.extra_environment), "AUTH_TOKENS") && !contains(keys(var.extra_environment), "REQUIRE_AUTH")
    error_message = "AUTH_TOKENS comes from the client-tokens secret (never plain environment) and REQUIRE_AUTH is always true; remove them from extra_environment."
  }
}

# ------------------------------------------------------------------------------ client tokens
variable "client_tokens_secret_arn" {
  type        = string
  description = "Full ARN (with its 6-character suffix) of an existing Secrets Manager secret holding the client tokens (JSON, see the README). null: Terraform creates <project>-<environment>/client-tokens with a KMS key of its own."
  default     = null

  validation {
    condition     = var.client_tokens_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$", var.client_tokens_secret_arn))
    error_message = "client_tokens_secret_arn must be null or the full ARN of a Secrets Manager secret (ending in -XXXXXX)."
  }
}

variable "client_tokens_kms_key_arn" {
  type        = string
  description = "ARN of the KMS key that encrypts the client-tokens secret; the task execution role may decrypt with it, through Secrets Manager only. null: the key Terraform creates (or, for a given secret, the AWS managed key)."
  default     = null

  validation {
    condition     = var.client_tokens_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.client_tokens_kms_key_arn))
    error_message = "client_tokens_kms_key_arn must be null or a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)."
  }
}

# ------------------------------------------------------------------------------ autoscaling
variable "active_streams_target_per_task" {
  type        = number
  description = "Target tracking value: average open WebSocket streams (count) per task (the server's EMF metric ActiveStreams)."
  default     = 24

  validation {
    condition     = var.active_streams_target_per_task >= 1
    error_message = "active_streams_target_per_task must be at least 1."
  }
}

variable "cpu_target_percent" {
  type        = number
  description = "Target tracking value: average service CPU utilization in percent."
  default     = 65

  validation {
    condition     = var.cpu_target_percent >= 10 && var.cpu_target_percent <= 95
    error_message = "cpu_target_percent must be between 10 and 95."
  }
}

variable "memory_target_percent" {
  type        = number
  description = "Target tracking value: average service memory utilization in percent."
  default     = 75

  validation {
    condition     = var.memory_target_percent >= 10 && var.memory_target_percent <= 95
    error_message = "memory_target_percent must be between 10 and 95."
  }
}

variable "scale_out_cooldown_seconds" {
  type        = number
  description = "Seconds after a scale-out before another scale-out (short: streams pile up fast)."
  default     = 60

  validation {
    condition     = var.scale_out_cooldown_seconds >= 0 && var.scale_out_cooldown_seconds <= 3600
    error_message = "scale_out_cooldown_seconds must be between 0 and 3600."
  }
}

variable "scale_in_cooldown_seconds" {
  type        = number
  description = "Seconds after a scale-in before another scale-in (long: each scale-in drains live sessions). Must exceed scale_out_cooldown_seconds."
  default     = 600

  validation {
    condition     = var.scale_in_cooldown_seconds >= 60 && var.scale_in_cooldown_seconds <= 7200
    error_message = "scale_in_cooldown_seconds must be between 60 and 7200."
  }
}

# ------------------------------------------------------------------------------ storage, registry, logs
variable "models_noncurrent_version_days" {
  type        = number
  description = "Days a replaced model version stays in the models bucket (rollback window) before it expires."
  default     = 90

  validation {
    condition     = var.models_noncurrent_version_days >= 1
    error_message = "models_noncurrent_version_days must be at least 1."
  }
}

variable "models_noncurrent_versions_kept" {
  type        = number
  description = "Newest noncurrent model versions (count) kept regardless of age, for rollback."
  default     = 5

  validation {
    condition     = var.models_noncurrent_versions_kept >= 0 && var.models_noncurrent_versions_kept <= 100
    error_message = "models_noncurrent_versions_kept must be between 0 and 100."
  }
}

variable "access_logs_retention_days" {
  type        = number
  description = "Days ALB access logs, S3 access logs and VPC flow logs are kept."
  default     = 90

  validation {
    condition     = var.access_logs_retention_days >= 1
    error_message = "access_logs_retention_days must be at least 1."
  }
}

variable "ecr_images_kept" {
  type        = number
  description = "Tagged images (count) the ECR lifecycle policy keeps; older ones expire (untagged ones after a day)."
  default     = 30

  validation {
    condition     = var.ecr_images_kept >= 5 && var.ecr_images_kept <= 1000
    error_message = "ecr_images_kept must be between 5 and 1000 (keep enough to roll back)."
  }
}

variable "ecr_enhanced_scanning" {
  type        = bool
  description = "Turn on Amazon Inspector enhanced (continuous) scanning for this repository. Note: it sets the account's registry scanning configuration for the region."
  default     = false
}

variable "log_retention_days" {
  type        = number
  description = "Days the container log group keeps events."
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ... 3653)."
  }
}

variable "alarm_sns_topic_arn" {
  type        = string
  description = "SNS topic ARN that CloudWatch alarms notify (e.g. the SAM stack's topic); null: alarms only change state."
  default     = null

  validation {
    condition     = var.alarm_sns_topic_arn == null || can(regex("^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:.+$", var.alarm_sns_topic_arn))
    error_message = "alarm_sns_topic_arn must be null or an SNS topic ARN."
  }
}

variable "alarm_5xx_per_5min" {
  type        = number
  description = "Alarm when ALB plus target 5XX responses exceed this count in 5 minutes."
  default     = 10

  validation {
    condition     = var.alarm_5xx_per_5min >= 1
    error_message = "alarm_5xx_per_5min must be at least 1."
  }
}

variable "alarm_partial_latency_p95_ms" {
  type        = number
  description = "Alarm when the p95 of partial latency (server: audio chunk complete -> partial sent, all tasks) stays above this many milliseconds for 5 minutes. 300 ms is the benchmark's real-time capacity criterion."
  default     = 300

  validation {
    condition     = var.alarm_partial_latency_p95_ms >= 10 && var.alarm_partial_latency_p95_ms <= 60000
    error_message = "alarm_partial_latency_p95_ms must be between 10 and 60000 milliseconds."
  }
}

variable "alarm_final_latency_p95_ms" {
  type        = number
  description = "Alarm when the p95 of final latency (server: end of speech -> final sent, all tasks) stays above this many milliseconds for 5 minutes."
  default     = 500

  validation {
    condition     = var.alarm_final_latency_p95_ms >= 10 && var.alarm_final_latency_p95_ms <= 60000
    error_message = "alarm_final_latency_p95_ms must be between 10 and 60000 milliseconds."
  }
}

# ------------------------------------------------------------------------------ dashboard
variable "automation_stack_name" {
  type        = string
  description = "Name of the SAM automation stack (samconfig.toml stack_name) whose Lambdas, dead-letter queues and log groups the dashboard shows. null: <project>-automation-<environment>, what samconfig.toml deploys."
  default     = null

  validation {
    condition     = var.automation_stack_name == null || can(regex("^[A-Za-z][A-Za-z0-9-]{0,127}$", var.automation_stack_name))
    error_message = "automation_stack_name must be null or a CloudFormation stack name (letters, digits, dashes, starting with a letter)."
  }
}
