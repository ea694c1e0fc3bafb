"""Creates the resources ``demo.resources`` describes, in moto (or any endpoint), and remembers the
addresses later steps need (:class:`Stack`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from demo.clients import EndpointClients
from demo.resources import (
    CONTAINER_NAME,
    DAY_MAX_CAPACITY,
    DAY_MIN_CAPACITY,
    ECS_DESIRED_DIMENSION,
    MODEL_KEY_PREFIX,
    SAM_DEFAULT_MAX_CAPACITY,
    SAM_DEFAULT_MIN_CAPACITY,
    StackNames,
    model_uploaded_pattern,
    task_definition,
)


@dataclass
class Stack:
    """What the create_* functions made: the addresses later steps need."""

    names: StackNames
    model_events_queue_url: str = ""
    alerts_inbox_queue_url: str = ""
    notify_topic_arn: str = ""
    alert_topic_arn: str = ""
    ecr_repository_uri: str = ""
    first_task_definition_arn: str = ""
    client_tokens_secret_arn: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def lambda_environment(self, function: str) -> dict[str, str]:
        """The env vars SAM gives each function (DESIGN.md, Lambda contracts)."""
        names = self.names
        per_function = {
            "model_rollout": {
                "CLUSTER_NAME": names.cluster,
                "SERVICE_NAME": names.service,
                "CONTAINER_NAME": CONTAINER_NAME,
                "MODEL_KEY_PREFIX": MODEL_KEY_PREFIX,
                "NOTIFY_TOPIC_ARN": self.notify_topic_arn,
                "IDEMPOTENCY_TABLE": names.idempotency_table,
                "MIN_MODEL_BYTES": "1024",
                "MAX_MODEL_BYTES": "5368709120",
            },
            "scan_alert": {
                "ALERT_TOPIC_ARN": self.alert_topic_arn,
                "SEVERITY_THRESHOLD": "HIGH",
                "IDEMPOTENCY_TABLE": names.idempotency_table,
                "CLUSTER_NAME": names.cluster,
                "SERVICE_NAME": names.service,
            },
            "night_scaler": {
                "CLUSTER_NAME": names.cluster,
                "SERVICE_NAME": names.service,
                "CAPACITY_PARAMETER": names.capacity_parameter,
                "NIGHT_MIN_CAPACITY": "0",
                "NIGHT_MAX_CAPACITY": "0",
                "DEFAULT_MIN_CAPACITY": str(SAM_DEFAULT_MIN_CAPACITY),
                "DEFAULT_MAX_CAPACITY": str(SAM_DEFAULT_MAX_CAPACITY),
            },
            "deploy_watch": {
                "NOTIFY_TOPIC_ARN": self.notify_topic_arn,
                "IDEMPOTENCY_TABLE": names.idempotency_table,
                "CONTAINER_NAME": CONTAINER_NAME,
            },
        }
        powertools = {
            "POWERTOOLS_SERVICE_NAME": function,
            "POWERTOOLS_METRICS_NAMESPACE": "EzSpeech/Automation",
            # No X-Ray daemon here; in AWS, SAM's Globals turn tracing on.
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        try:
            return {**per_function[function], **powertools}
        except KeyError:
            raise KeyError(f"unknown function {function!r} (known: {', '.join(per_function)})") from None


def _queue_arn(aws: EndpointClients, queue_url: str) -> str:
    attributes = aws.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    return str(attributes["Attributes"]["QueueArn"])


def create_models_bucket(aws: EndpointClients, names: StackNames) -> Stack:
    """Terraform's models bucket: versioned (every upload keeps its version), EventBridge notifications on."""
    aws.s3.create_bucket(Bucket=names.models_bucket)
    aws.s3.put_bucket_versioning(Bucket=names.models_bucket, VersioningConfiguration={"Status": "Enabled"})
    aws.s3.put_bucket_notification_configuration(
        Bucket=names.models_bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    return Stack(names=names)


def publish_names(aws: EndpointClients, names: StackNames) -> None:
    """terraform/ssm.tf: the names SAM, `make upload-model` and the ops tools read from SSM."""
    for parameter, value in names.published_parameters().items():
        aws.ssm.put_parameter(Name=parameter, Value=value, Type="String", Overwrite=True)


def create_model_uploaded_rule(aws: EndpointClients, stack: Stack) -> None:
    """SAM's rule for uploads under models/; its target here is an SQS queue (see module docstring)."""
    names = stack.names
    stack.model_events_queue_url = aws.sqs.create_queue(QueueName=names.model_events_queue)["QueueUrl"]
    aws.events.put_rule(
        Name=names.model_uploaded_rule,
        EventPattern=json.dumps(model_uploaded_pattern(names)),
        State="ENABLED",
    )
    aws.events.put_targets(
        Rule=names.model_uploaded_rule,
        Targets=[{"Id": "model-rollout", "Arn": _queue_arn(aws, stack.model_events_queue_url)}],
    )


def create_automation_backing(aws: EndpointClients, stack: Stack) -> None:
    """What template.yaml creates beside the functions: two SNS topics, the idempotency table and
    night_scaler's parameter (+ the demo's inbox queue, subscribed to both topics)."""
    names = stack.names
    stack.notify_topic_arn = aws.sns.create_topic(Name=names.notify_topic)["TopicArn"]
    stack.alert_topic_arn = aws.sns.create_topic(Name=names.alert_topic)["TopicArn"]
    stack.alerts_inbox_queue_url = aws.sqs.create_queue(QueueName=names.alerts_inbox_queue)["QueueUrl"]
    inbox_arn = _queue_arn(aws, stack.alerts_inbox_queue_url)
    for topic_arn in (stack.notify_topic_arn, stack.alert_topic_arn):
        # Not raw delivery: the SNS envelope keeps the subject, which the demo prints.
        aws.sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=inbox_arn)
    aws.dynamodb.create_table(
        TableName=names.idempotency_table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    aws.ssm.put_parameter(
        Name=names.capacity_parameter, Value='{"state": "unset"}', Type="String", Overwrite=True
    )


def create_client_tokens_secret(aws: EndpointClients, stack: Stack) -> str:
    """terraform/secrets.tf: the client-tokens secret, created without a value (Terraform never
    writes one; `make rotate-tokens` does)."""
    arn = str(aws.secretsmanager.create_secret(Name=stack.names.client_tokens_secret)["ARN"])
    stack.client_tokens_secret_arn = arn
    return arn


def create_service(
    aws: EndpointClients,
    stack: Stack,
    model_uri: str,
    model_sha256: str,
    desired_count: int = 1,
    golden: dict[str, str] | None = None,
) -> None:
    """ECR repository, ECS cluster + first task definition + service, scalable target, log group."""
    names = stack.names
    aws.logs.create_log_group(logGroupName=names.log_group)
    # terraform/network.tf (DNS hostnames on, as there): the subnet where awsvpc tasks get an ENI.
    vpc = aws.ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    aws.ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = aws.ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]
    stack.extra["task_subnet"] = subnet["SubnetId"]
    stack.extra["task_security_group"] = aws.ec2.create_security_group(
        GroupName=f"{names.name}-tasks", Description="asr-server tasks", VpcId=vpc
    )["GroupId"]
    repository = aws.ecr.create_repository(
        repositoryName=names.ecr_repository,
        imageScanningConfiguration={"scanOnPush": True},
        imageTagMutability="IMMUTABLE",
    )["repository"]
    stack.ecr_repository_uri = repository["repositoryUri"]
    aws.ecs.create_cluster(clusterName=names.cluster)
    secret_arn = stack.client_tokens_secret_arn or create_client_tokens_secret(aws, stack)
    registered = aws.ecs.register_task_definition(
        **task_definition(
            names, f"{stack.ecr_repository_uri}:v1", model_uri, model_sha256, secret_arn, golden
        )
    )
    stack.first_task_definition_arn = registered["taskDefinition"]["taskDefinitionArn"]
    aws.ecs.create_service(
        cluster=names.cluster,
        serviceName=names.service,
        taskDefinition=stack.first_task_definition_arn,
        desiredCount=desired_count,
        launchType="FARGATE",
        deploymentConfiguration={
            "deploymentCircuitBreaker": {"enable": True, "rollback": True},
            "minimumHealthyPercent": 100,
            "maximumPercent": 200,
        },
    )
    aws.autoscaling.register_scalable_target(
        ServiceNamespace="ecs",
        ResourceId=names.scalable_resource_id,
        ScalableDimension=ECS_DESIRED_DIMENSION,
        MinCapacity=DAY_MIN_CAPACITY,
        MaxCapacity=DAY_MAX_CAPACITY,
    )
