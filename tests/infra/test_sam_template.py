"""template.yaml: translated offline, linted in both forms, checkov-clean, and wired to the handlers.

The EventBridge rules are exercised for real: their patterns (from the translated template, with
the parameters resolved) are put into moto's EventBridge with an SQS target, and the documented
events are delivered — or not — exactly as the filters at the rule say.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
EVENTS = ROOT / "tests" / "events"
sys.path.insert(0, str(ROOT / "scripts"))
from sam_translate import translate  # noqa: E402

PARAMS = {
    "ClusterName": "ezspeech-dev",
    "ServiceName": "asr",
    "ModelsBucketName": "ezspeech-dev-models",
    "EcrRepositoryName": "ezspeech-dev-asr",
    "ModelKeyPrefix": "models/",
    "SeverityThreshold": "HIGH",
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "ezspeech-automation-dev",
}
FUNCTIONS = {
    "model_rollout": "ModelRolloutFunction",
    "scan_alert": "ScanAlertFunction",
    "night_scaler": "NightScalerFunction",
    "deploy_watch": "DeployWatchFunction",
}


@cache
def source() -> dict[str, Any]:
    from samtranslator.yaml_helper import yaml_parse

    return dict(yaml_parse(TEMPLATE.read_text()))


@cache
def translated() -> dict[str, Any]:
    return translate(TEMPLATE)


def resources(of_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in translated()["Resources"].items() if v["Type"] == of_type}


def resolve(node: Any, params: dict[str, str] = PARAMS) -> Any:
    """Resolve the intrinsics the rule patterns use (Ref, Sub, FindInMap) with test values."""
    if isinstance(node, list):
        return [resolve(item, params) for item in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Ref"}:
        return params[node["Ref"]]
    if set(node) == {"Fn::Sub"}:
        return re.sub(r"\$\{([^}]+)\}", lambda m: params[m.group(1)], node["Fn::Sub"])
    if set(node) == {"Fn::FindInMap"}:
        name, key, attribute = (resolve(part, params) for part in node["Fn::FindInMap"])
        return translated()["Mappings"][name][key][attribute]
    return {key: resolve(value, params) for key, value in node.items()}


def documented(name: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads((EVENTS / f"{name}.json").read_text()))


# ------------------------------------------------------------------ translation and linting


def test_template_translates_to_the_expected_resources() -> None:
    assert len(resources("AWS::Lambda::Function")) == 4
    assert len(resources("AWS::Events::Rule")) == 5
    assert len(resources("AWS::Scheduler::Schedule")) == 2
    assert len(resources("AWS::Lambda::LayerVersion")) == 1
    assert len(resources("AWS::Logs::LogGroup")) == 4


@pytest.mark.parametrize("form", ["source", "translated"])
def test_cfn_lint_is_clean(form: str, tmp_path: Path) -> None:
    path = TEMPLATE
    if form == "translated":
        path = tmp_path / "template.json"
        path.write_text(json.dumps(translated()))
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


@pytest.mark.slow
def test_checkov_is_clean_with_reasoned_skips() -> None:
    checkov = ROOT / ".venv-tools" / "bin" / "checkov"
    if not checkov.exists():
        pytest.skip("checkov lives in .venv-tools (make tools-venv)")
    completed = subprocess.run(
        [
            str(checkov),
            "-f",
            str(TEMPLATE),
            "--framework",
            "cloudformation",
            "--skip-download",
            "--compact",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = json.loads(completed.stdout)
    assert report["summary"]["failed"] == 0, [c["check_id"] for c in report["results"]["failed_checks"]]
    skipped = report["results"]["skipped_checks"]
    assert skipped and all(len(check["check_result"].get("suppress_comment", "")) > 20 for check in skipped)


# ------------------------------------------------------------------ handlers ⇄ template


def env_vars_read_by(handler: Path) -> set[str]:
    """Names read through os.environ[...], os.environ.get(...) or os.getenv(...)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(handler.read_text())):
        if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            names.add(ast.literal_eval(node.slice))
        if isinstance(node, ast.Call) and ast.unparse(node.func) in ("os.environ.get", "os.getenv"):
            names.add(ast.literal_eval(node.args[0]))
    return names


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_every_env_var_a_handler_reads_is_set_by_the_template(function: str) -> None:
    read = env_vars_read_by(ROOT / "functions" / function / "app.py")
    assert read, "the parser found no env reads: it is broken"
    functions = source()["Resources"]
    defined = set(source()["Globals"]["Function"]["Environment"]["Variables"])
    defined |= set(functions[FUNCTIONS[function]]["Properties"]["Environment"]["Variables"])
    assert read <= defined, f"read but not set by template.yaml: {sorted(read - defined)}"


def test_shared_layer_never_reads_the_environment() -> None:
    # The plain functions take settings as arguments; only the thin handlers read env vars.
    for module in (ROOT / "functions" / "common").rglob("*.py"):
        assert env_vars_read_by(module) == set(), module
        assert "os.environ" not in module.read_text(), module


def test_design_contract_env_vars_are_all_set() -> None:
    contract = {
        "model_rollout": {
            "CLUSTER_NAME",
            "SERVICE_NAME",
            "CONTAINER_NAME",
            "MODEL_KEY_PREFIX",
            "NOTIFY_TOPIC_ARN",
            "IDEMPOTENCY_TABLE",
        },
        "scan_alert": {"ALERT_TOPIC_ARN", "SEVERITY_THRESHOLD", "IDEMPOTENCY_TABLE"},
        "night_scaler": {
            "CLUSTER_NAME",
            "SERVICE_NAME",
            "CAPACITY_PARAMETER",
            "NIGHT_MIN_CAPACITY",
            "NIGHT_MAX_CAPACITY",
        },
        "deploy_watch": {"NOTIFY_TOPIC_ARN"},
    }
    for function, names in contract.items():
        variables = source()["Resources"][FUNCTIONS[function]]["Properties"]["Environment"]["Variables"]
        assert names <= set(variables), function
    assert source()["Parameters"]["ContainerName"]["Default"] == "asr-server"
    assert source()["Parameters"]["ModelKeyPrefix"]["Default"] == "models/"


def test_terraform_names_arrive_through_ssm_parameters() -> None:
    parameters = source()["Parameters"]
    for name, suffix in [
        ("ClusterName", "cluster-name"),
        ("ServiceName", "service-name"),
        ("ModelsBucketName", "models-bucket"),
        ("EcrRepositoryName", "ecr-repository-name"),
        ("ServiceLogGroupName", "log-group-name"),
    ]:
        assert parameters[name]["Type"] == "AWS::SSM::Parameter::Value<String>"
        assert parameters[name]["Default"] == f"/ezspeech/dev/{suffix}"


def test_every_parameter_has_a_description_and_a_constraint() -> None:
    for name, parameter in source()["Parameters"].items():
        assert parameter.get("Description"), name
        assert {"AllowedPattern", "AllowedValues", "MinValue"} & set(parameter), name


# ------------------------------------------------------------------ operational properties


def test_functions_trace_log_with_retention_and_have_dead_letters() -> None:
    for name, function in resources("AWS::Lambda::Function").items():
        properties = function["Properties"]
        assert properties["TracingConfig"] == {"Mode": "Active"}, name
        assert properties["DeadLetterConfig"]["TargetArn"] == {
            "Fn::GetAtt": ["FunctionDeadLetterQueue", "Arn"]
        }
        assert "Ref" in properties["LoggingConfig"]["LogGroup"], name
        assert properties["Runtime"] == "python3.12" and len(properties["Layers"]) == 1
    for name, group in resources("AWS::Logs::LogGroup").items():
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name
    for config in resources("AWS::Lambda::EventInvokeConfig").values():
        assert config["Properties"]["MaximumRetryAttempts"] == 2


def test_rules_and_schedules_retry_then_dead_letter() -> None:
    targets = [rule["Properties"]["Targets"][0] for rule in resources("AWS::Events::Rule").values()]
    targets += [
        schedule["Properties"]["Target"] for schedule in resources("AWS::Scheduler::Schedule").values()
    ]
    for target in targets:
        assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
        assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["EventDeliveryDeadLetterQueue", "Arn"]}


def test_schedules_use_the_timezone_parameter_and_send_the_actions() -> None:
    actions = set()
    for schedule in resources("AWS::Scheduler::Schedule").values():
        properties = schedule["Properties"]
        assert properties["ScheduleExpressionTimezone"] == {"Ref": "ScheduleTimezone"}
        payload = json.loads(properties["Target"]["Input"])
        actions.add(payload["action"])
        assert payload["execution_id"] == "<aws.scheduler.execution-id>"
    assert actions == {"scale_down", "scale_up"}


def test_idempotency_table_has_id_key_and_ttl() -> None:
    table = translated()["Resources"]["IdempotencyTable"]["Properties"]
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}


# Actions that AWS offers no resource-level permissions for (Service Authorization Reference),
# plus ListTasks, which is scoped with the ecs:cluster condition instead.
UNSCOPABLE = {
    "ecs:DescribeTaskDefinition",
    "ecs:RegisterTaskDefinition",
    "ecs:ListTasks",
    "application-autoscaling:DescribeScalableTargets",
}


def test_inline_policies_name_resources_except_where_aws_cannot() -> None:
    for name, role in resources("AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = (
                    statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                )
                assert not any(action.endswith("*") for action in actions), (name, actions)
                if statement["Resource"] == "*":
                    assert set(actions) <= UNSCOPABLE, (name, actions)


def test_template_comments_justify_each_wildcard_resource() -> None:
    lines = TEMPLATE.read_text().splitlines()
    for number, line in enumerate(lines):
        if line.strip() == 'Resource: "*"':
            context = "\n".join(lines[max(0, number - 8) : number])
            assert "#" in context, f"template.yaml:{number + 1} has Resource * without a reason"


# ------------------------------------------------------------------ the rules filter at the rule


def _pattern(rule: str) -> dict[str, Any]:
    return dict(resolve(translated()["Resources"][rule]["Properties"]["EventPattern"]))


def _deliveries(
    rule: str, events: list[dict[str, Any]], pattern: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Put ``rule``'s resolved pattern into moto with an SQS target; return what gets through."""
    pattern = pattern or _pattern(rule)
    with mock_aws():
        bridge, sqs = (
            boto3.client("events", region_name="us-east-1"),
            boto3.client("sqs", region_name="us-east-1"),
        )
        queue = sqs.create_queue(QueueName="target")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        bridge.put_rule(Name="rule", EventPattern=json.dumps(pattern))
        bridge.put_targets(Rule="rule", Targets=[{"Id": "q", "Arn": arn}])
        for event in events:
            entry: Any = {
                "Source": event["source"],
                "DetailType": event["detail-type"],
                "Detail": json.dumps(event["detail"]),
                "Resources": event.get("resources", []),
            }
            assert bridge.put_events(Entries=[entry])["FailedEntryCount"] == 0
        delivered = []
        while batch := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
            for message in batch:
                delivered.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    return delivered


def _upload(key: str, bucket: str = PARAMS["ModelsBucketName"]) -> dict[str, Any]:
    event = documented("s3_object_created")
    event["detail"]["bucket"]["name"] = bucket
    event["detail"]["object"]["key"] = key
    return event


def test_model_rule_passes_checkpoints_under_the_prefix_only() -> None:
    keys = [
        "models/asr.pt",
        "models/v2/asr.ckpt",
        "models/asr.pth",
        "models/readme.txt",
        "other/asr.pt",
        "asr.pt",
    ]
    events = [_upload(key) for key in keys] + [_upload("models/asr.pt", bucket="someone-elses-bucket")]
    delivered = _deliveries("ModelRolloutFunctionModelUploaded", events)
    got = sorted((e["detail"]["bucket"]["name"], e["detail"]["object"]["key"]) for e in delivered)
    bucket = PARAMS["ModelsBucketName"]
    assert got == [(bucket, "models/asr.pt"), (bucket, "models/asr.pth"), (bucket, "models/v2/asr.ckpt")]


def test_ecr_scan_rule_passes_our_repository_whatever_the_severity() -> None:
    ours = documented("ecr_image_scan")
    ours["detail"]["repository-name"] = PARAMS["EcrRepositoryName"]
    low = copy.deepcopy(ours)
    low["detail"]["finding-severity-counts"] = {"LOW": 1}  # reaches the handler: it counts a metric
    failed = copy.deepcopy(ours)
    failed["detail"]["scan-status"] = "FAILED"
    delivered = _deliveries(
        "ScanAlertFunctionEcrImageScan", [ours, low, failed, documented("ecr_image_scan")]
    )
    assert len(delivered) == 2


def test_inspector_finding_rule_filters_severity_status_and_image_repository() -> None:
    def finding(
        severity: str, status: str = "ACTIVE", repository: str = PARAMS["EcrRepositoryName"]
    ) -> dict[str, Any]:
        event = documented("inspector2_finding")
        event["detail"].update({"severity": severity, "status": status})
        event["detail"]["resources"][0]["details"]["awsEcrContainerImage"]["repositoryName"] = repository
        return event

    rule = "ScanAlertFunctionInspectorFinding"
    pattern = _pattern(rule)
    # EventBridge matches fields of objects inside arrays (detail.resources[].type, as in the
    # Security Hub findings examples); moto 5 does not, so that clause is checked as data and the
    # rest of the pattern runs in moto.
    resources = pattern["detail"].pop("resources")
    assert resources == {
        "type": ["AWS_ECR_CONTAINER_IMAGE"],
        "details": {"awsEcrContainerImage": {"repositoryName": [PARAMS["EcrRepositoryName"]]}},
    }
    events = [
        finding("CRITICAL"),
        finding("HIGH"),
        finding("MEDIUM"),
        finding("LOW"),
        finding("HIGH", "CLOSED"),
    ]
    delivered = _deliveries(rule, events, pattern)
    assert sorted(e["detail"]["severity"] for e in delivered) == ["CRITICAL", "HIGH"]


def test_inspector_scan_rule_matches_the_repository_arn() -> None:
    ours = documented("inspector2_scan")
    ours["detail"]["repository-name"] = (
        f"arn:aws:ecr:us-east-1:123456789012:repository/{PARAMS['EcrRepositoryName']}"
    )
    assert len(_deliveries("ScanAlertFunctionInspectorScan", [ours, documented("inspector2_scan")])) == 1


def test_deployment_rule_passes_failed_and_completed_of_our_service() -> None:
    service_arn = "arn:aws:ecs:us-east-1:123456789012:service/ezspeech-dev/asr"
    events = []
    for name in ("failed", "completed", "in_progress"):
        event = documented(f"ecs_deployment_{name}")
        event["resources"] = [service_arn]
        events.append(event)
    events.append(documented("ecs_deployment_failed"))  # another service
    delivered = _deliveries("DeployWatchFunctionDeploymentStateChange", events)
    assert sorted(e["detail"]["eventName"] for e in delivered) == [
        "SERVICE_DEPLOYMENT_COMPLETED",
        "SERVICE_DEPLOYMENT_FAILED",
    ]


# ------------------------------------------------------------------ samconfig.toml


def test_samconfig_has_dev_and_prod_with_known_parameters() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert config["version"] == 0.1
    parameters = set(source()["Parameters"])
    for env in ("dev", "prod"):
        deploy = config[env]["deploy"]["parameters"]
        assert deploy["stack_name"] == f"ezspeech-automation-{env}"
        assert deploy["capabilities"] == "CAPABILITY_IAM"
        overrides = dict(re.findall(r'(\w+)="([^"]*)"', deploy["parameter_overrides"]))
        assert set(overrides) <= parameters, set(overrides) - parameters
        assert overrides["Environment"] == env
        for name in ("ClusterName", "ServiceName", "ModelsBucketName", "EcrRepositoryName"):
            assert overrides[name].startswith(f"/ezspeech/{env}/"), (env, name)
    assert config["prod"]["deploy"]["parameters"]["confirm_changeset"] is True
