"""The SAM stack on the same moto, after Terraform: template.yaml translated offline, created as a
CloudFormation stack with samconfig.toml's parameters (the SSM names Terraform just wrote), then
checked: rules wired to the functions, the functions given Terraform's names, the table.

moto's CloudFormation accepts but does not create these types of the translated template
(it logs "No Moto CloudFormation support"): AWS::Scheduler::Schedule, AWS::CloudWatch::Alarm,
AWS::Lambda::EventInvokeConfig, AWS::SNS::Subscription, AWS::SQS::QueuePolicy (moto 5.2.5).
The schedules are therefore checked as far as the night_scaler function they target.
moto also resolves an SSM-typed parameter's Default before the value given (see below).
"""

from __future__ import annotations

import importlib
import io
import json
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from demo.infra.wiring import sam_parameters

#: What moto's CloudFormation cannot create (checked by the rehearsal: a type that becomes
#: supported, or a new unsupported one, is reported so this list stays true).
MOTO_CFN_UNSUPPORTED = frozenset(
    {
        "AWS::Scheduler::Schedule",
        "AWS::CloudWatch::Alarm",
        "AWS::Lambda::EventInvokeConfig",
        "AWS::SNS::Subscription",
        "AWS::SQS::QueuePolicy",
    }
)


def translated_template(root: Path) -> dict[str, Any]:
    """template.yaml through the SAM transform, offline (scripts/sam_translate.py, as `make lint`)."""
    scripts = str(root / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    module = importlib.import_module("sam_translate")
    template: dict[str, Any] = module.translate(root / "template.yaml")
    return template


def _stand_in_code(s3: Any, template: dict[str, Any]) -> None:
    """Upload a small zip where the translated template expects each function's and layer's code
    (``sam package`` would put the real one there; moto runs nothing here)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def lambda_handler(event, context):\n    return None\n")
    buckets = set()
    for resource in template["Resources"].values():
        code = resource.get("Properties", {}).get("Code") or resource.get("Properties", {}).get("Content")
        if isinstance(code, dict) and "S3Bucket" in code:
            if code["S3Bucket"] not in buckets:
                s3.create_bucket(Bucket=code["S3Bucket"])
                buckets.add(code["S3Bucket"])
            s3.put_object(Bucket=code["S3Bucket"], Key=code["S3Key"], Body=buffer.getvalue())


def check_sam_stack(env: str, client: Callable[[str], Any], root: Path) -> tuple[list[str], list[str]]:
    """(problems, names of the checks that ran)."""
    template = translated_template(root)
    parameters = sam_parameters(root, env)
    ssm, cfn, lam, events, ddb = (
        client(n) for n in ("ssm", "cloudformation", "lambda", "events", "dynamodb")
    )
    names = {
        path.rsplit("/", 1)[-1]: str(ssm.get_parameter(Name=path)["Parameter"]["Value"])
        for path in parameters.values()
        if path.startswith("/")
    }
    _stand_in_code(client("s3"), template)
    # moto resolves every SSM-typed parameter's Default before it looks at the given value, and
    # fails on one that does not exist (the dev names, in a prod rehearsal): the defaults become
    # the values passed anyway.
    for key, slot in template.get("Parameters", {}).items():
        if str(slot.get("Type", "")).startswith("AWS::SSM::Parameter::") and key in parameters:
            slot["Default"] = parameters[key]
    stack = f"ezspeech-{env}-automation"
    problems: list[str] = []
    ran: list[str] = []
    try:
        cfn.create_stack(
            StackName=stack,
            TemplateBody=json.dumps(template),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
    except ClientError as error:
        return [f"sam stack: CloudFormation refused the translated template: {error}"], ["sam stack"]
    ran.append("sam stack created")
    status = cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
    if status != "CREATE_COMPLETE":
        problems.append(f"sam stack: {stack} is {status}")
    created = {
        r["LogicalResourceId"]: r
        for r in cfn.list_stack_resources(StackName=stack)["StackResourceSummaries"]
        if r.get("ResourceType")
    }
    wanted_types = {str(r["Type"]) for r in template["Resources"].values()}
    missing_types = {
        str(template["Resources"][logical]["Type"])
        for logical in template["Resources"]
        if logical not in created
    }
    ran.append("sam resource types")
    if missing_types != MOTO_CFN_UNSUPPORTED & wanted_types:
        problems.append(
            f"sam stack: moto left out {sorted(missing_types)}, "
            f"expected {sorted(MOTO_CFN_UNSUPPORTED & wanted_types)} (update MOTO_CFN_UNSUPPORTED)"
        )

    functions = {f["FunctionName"]: f for f in lam.list_functions()["Functions"]}
    ran.append("sam functions get Terraform's names")
    for name, function in functions.items():
        variables = function.get("Environment", {}).get("Variables", {})
        for variable, ssm_name in (("CLUSTER_NAME", "cluster-name"), ("SERVICE_NAME", "service-name")):
            if variable in variables and variables[variable] != names.get(ssm_name):
                problems.append(
                    f"sam function {name}: {variable}={variables[variable]!r}, "
                    f"Terraform: {names.get(ssm_name)!r}"
                )
    ran.append("sam rules target the functions")
    by_source: dict[str, list[str]] = {}
    for rule in events.list_rules()["Rules"]:
        pattern = json.loads(rule.get("EventPattern") or "{}")
        targets = [
            t["Arn"].rsplit(":", 1)[-1] for t in events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        ]
        for source in pattern.get("source", []):
            by_source.setdefault(f"{source}/{pattern.get('detail-type', [''])[0]}", []).extend(targets)
        if pattern.get("source") == ["aws.s3"]:
            buckets = pattern.get("detail", {}).get("bucket", {}).get("name", [])
            if buckets != [names.get("models-bucket")]:
                problems.append(
                    f"sam rule {rule['Name']}: bucket {buckets}, "
                    f"Terraform's is {names.get('models-bucket')!r}"
                )
    expected = {
        "aws.s3/Object Created": "model-rollout",
        "aws.ecr/ECR Image Scan": "scan-alert",
        "aws.inspector2/Inspector2 Finding": "scan-alert",
        "aws.inspector2/Inspector2 Scan": "scan-alert",
        "aws.ecs/ECS Deployment State Change": "deploy-watch",
    }
    for key, suffix in expected.items():
        if not any(target.endswith(suffix) for target in by_source.get(key, [])):
            problems.append(f"sam rule for {key}: targets {by_source.get(key)}, want the {suffix} function")
    ran.append("sam idempotency table")
    tables = [t for t in ddb.list_tables()["TableNames"] if t.startswith(stack)]
    if len(tables) != 1:
        problems.append(f"sam stack: idempotency tables {tables}")
    else:
        schema = ddb.describe_table(TableName=tables[0])["Table"]["KeySchema"]
        if schema != [{"AttributeName": "id", "KeyType": "HASH"}]:
            problems.append(
                f"sam table {tables[0]}: key schema {schema}, Powertools wants partition key 'id'"
            )
    ran.append("sam night scaler for the schedule")
    scaler = [f for n, f in functions.items() if n.endswith("night-scaler")]
    if not scaler:
        problems.append("sam stack: no night-scaler function for the schedules to target")
    cfn.delete_stack(StackName=stack)
    return problems, ran
