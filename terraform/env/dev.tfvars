# Development: Fargate CPU tasks, one NAT gateway, no deletion protection, short log retention.
environment             = "dev"
capacity_mode           = "cpu"
fargate_spot_weight     = 3
fargate_on_demand_base  = 1
single_nat_gateway      = true
alb_deletion_protection = false
log_retention_days      = 14
min_capacity            = 1
max_capacity            = 3
