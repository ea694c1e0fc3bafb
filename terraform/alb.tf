# Internet-facing ALB in front of the WebSocket port. Without a certificate the HTTP listener
# forwards (for a first test deployment); with one, HTTPS serves and HTTP only redirects to it.
# The health port (8080: /health, /ready, /metrics) is never routed from the internet: the ALB's
# own health checks reach it directly on the targets, and listener rules refuse those paths.

locals {
  https_enabled = var.acm_certificate_arn != null
  # The listener that actually carries client traffic (the other one, if any, only redirects).
  serving_listener_arn = local.https_enabled ? aws_lb_listener.https[0].arn : aws_lb_listener.http.arn
}

resource "aws_security_group" "alb" {
  name        = "${local.name}-alb"
  description = "ALB: HTTP/HTTPS from the allowed CIDRs; to the tasks on the WebSocket and health ports"
  vpc_id      = aws_vpc.this.id

  tags = { Name = "${local.name}-alb" }
}

resource "aws_vpc_security_group_ingress_rule" "alb_http" {
  #checkov:skip=CKV_AWS_260: a public endpoint answers on 80 (forward without a certificate, else a redirect to 443); narrow with allowed_ingress_cidrs
  for_each = toset(var.allowed_ingress_cidrs)

  security_group_id = aws_security_group.alb.id
  description       = "HTTP (forward without a certificate, else redirect to HTTPS)"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  for_each = local.https_enabled ? toset(var.allowed_ingress_cidrs) : toset([])

  security_group_id = aws_security_group.alb.id
  description       = "HTTPS / WSS from clients"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "alb_to_tasks" {
  for_each = { websocket = local.websocket_port, health = local.health_port }

  security_group_id            = aws_security_group.alb.id
  description                  = "To the tasks: ${each.key} port"
  ip_protocol                  = "tcp"
  from_port                    = each.value
  to_port                      = each.value
  referenced_security_group_id = aws_security_group.tasks.id
}

resource "aws_lb" "this" {
  #checkov:skip=CKV2_AWS_76: the web ACL, when one is attached, is managed outside this stack with its own rule groups
  #checkov:skip=CKV2_AWS_28: WAF is optional (var.waf_web_acl_arn); a web ACL is an account-level choice with its own cost
  name                       = local.name
  load_balancer_type         = "application"
  internal                   = false
  subnets                    = aws_subnet.public[*].id
  security_groups            = [aws_security_group.alb.id]
  idle_timeout               = var.alb_idle_timeout_seconds
  drop_invalid_header_fields = true
  enable_deletion_protection = var.alb_deletion_protection

  access_logs {
    bucket  = aws_s3_bucket.access_logs.id
    prefix  = "alb"
    enabled = true
  }

  depends_on = [aws_s3_bucket_policy.access_logs]
}

resource "aws_lb_target_group" "asr" {
  #checkov:skip=CKV_AWS_378: TLS ends at the ALB; ALB-to-task traffic stays inside private subnets, and the server speaks plain ws
  name                 = local.name
  port                 = local.websocket_port
  protocol             = "HTTP"
  target_type          = "ip" # awsvpc tasks register by ENI address
  vpc_id               = aws_vpc.this.id
  deregistration_delay = var.drain_timeout_seconds

  # Readiness, not liveness: a task that is loading its model or draining answers 503 here and
  # gets no new sessions, without being killed.
  health_check {
    enabled             = true
    protocol            = "HTTP"
    port                = tostring(local.health_port)
    path                = local.ready_path
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  tags = { Name = local.name }
}

resource "aws_lb_listener" "http" {
  #checkov:skip=CKV_AWS_2: plain HTTP forwards only when no certificate is configured (first test deployment); with acm_certificate_arn it redirects to HTTPS
  #checkov:skip=CKV_AWS_103: this listener carries no TLS; the HTTPS listener sets the TLS policy
  #checkov:skip=CKV2_AWS_20: see CKV_AWS_2 — the redirect is on as soon as a certificate is given
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type             = local.https_enabled ? "redirect" : "forward"
    target_group_arn = local.https_enabled ? null : aws_lb_target_group.asr.arn

    dynamic "redirect" {
      for_each = local.https_enabled ? [1] : []
      content {
        protocol    = "HTTPS"
        port        = "443"
        status_code = "HTTP_301"
      }
    }
  }
}

resource "aws_lb_listener" "https" {
  count = local.https_enabled ? 1 : 0

  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = var.ssl_policy
  certificate_arn   = var.acm_certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.asr.arn
  }
}

# The WebSocket port serves only the socket (and a small page), but keep the operational paths
# unreachable from outside whatever the server routes: 404 before the request reaches a task.
resource "aws_lb_listener_rule" "deny_internal_paths" {
  listener_arn = local.serving_listener_arn
  priority     = 10

  action {
    type = "fixed-response"

    fixed_response {
      content_type = "text/plain"
      message_body = "Not Found"
      status_code  = "404"
    }
  }

  condition {
    path_pattern {
      values = local.internal_paths
    }
  }
}

resource "aws_wafv2_web_acl_association" "alb" {
  count = var.waf_web_acl_arn == null ? 0 : 1

  resource_arn = aws_lb.this.arn
  web_acl_arn  = var.waf_web_acl_arn
}
