# Production: GPU hosts, a NAT gateway per zone, deletion protection, longer retention.
# Set acm_certificate_arn here (wss:// on 443) before serving real clients.
environment             = "prod"
capacity_mode           = "gpu"
gpu_instance_type       = "g4dn.xlarge"
gpu_asg_max_size        = 6
single_nat_gateway      = false
alb_deletion_protection = true
log_retention_days      = 90
min_capacity            = 2
max_capacity            = 6
ecr_enhanced_scanning   = true
