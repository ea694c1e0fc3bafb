"""The CloudWatch dashboard (terraform/dashboard.tf) shows only metrics and logs that exist.

Every widget's metric is checked against its emitter, read from the code rather than listed here:

- EzSpeech/ASR: the records ``asr_service.metrics.ServiceMetrics`` writes, with every recorded
  distribution observed once, a GPU present and a refusal counted (names, units and dimension
  sets as the server writes them);
- AWS/ECS, ECS/ContainerInsights, AWS/ApplicationELB, AWS/Lambda, AWS/SQS: metrics AWS publishes
  (the catalog below, from the AWS documentation), with dimensions that point at resources this
  repository creates: the ALB, target group, cluster and service of the Terraform stack, the
  functions and queues the SAM template names;
- log widgets: a log group one of the stacks creates, and event names and fields the code logs.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from asr_service.emf import RecordedHistogram
from asr_service.gpu_probe import GpuSample
from asr_service.metrics import ServiceMetrics
from tests.infra.helpers import TerraformConfig, load_terraform

ROOT = Path(__file__).resolve().parents[2]

# Metrics AWS publishes, with the dimension sets the dashboard may use. Sources: "CloudWatch
# metrics for your Application Load Balancer", "Amazon ECS CloudWatch metrics", "Amazon ECS
# Container Insights metrics", "Working with Lambda function metrics", "Available CloudWatch
# metrics for Amazon SQS" (AWS documentation).
_ALB = frozenset({"LoadBalancer"})
_TARGET = frozenset({"LoadBalancer", "TargetGroup"})
_SERVICE = frozenset({"ClusterName", "ServiceName"})
AWS_PUBLISHED: dict[str, dict[str, set[frozenset[str]]]] = {
    "AWS/ApplicationELB": {
        "ActiveConnectionCount": {_ALB},
        "NewConnectionCount": {_ALB},
        "RejectedConnectionCount": {_ALB},
        "HTTPCode_ELB_5XX_Count": {_ALB},
        "HTTPCode_Target_5XX_Count": {_ALB, _TARGET},
        "TargetConnectionErrorCount": {_ALB, _TARGET},
        "HealthyHostCount": {_TARGET},
        "UnHealthyHostCount": {_TARGET},
    },
    "AWS/ECS": {"CPUUtilization": {_SERVICE}, "MemoryUtilization": {_SERVICE}},
    "ECS/ContainerInsights": {"DesiredTaskCount": {_SERVICE}, "RunningTaskCount": {_SERVICE}},
    "AWS/Lambda": {"Invocations": {frozenset({"FunctionName"})}, "Errors": {frozenset({"FunctionName"})}},
    "AWS/SQS": {"ApproximateNumberOfMessagesVisible": {frozenset({"QueueName"})}},
}


# ------------------------------------------------------------------------------ what the code emits
def service_emits() -> set[tuple[str, str, frozenset[str]]]:
    """(namespace, metric, dimension names) of every record the server can write."""
    gpu = GpuSample("cuda:0", 2**30, 2**34, 2**29, utilization_percent=50.0)

    class Probe:
        def sample(self) -> GpuSample:
            return gpu

    metrics = ServiceMetrics(gpu_probe=Probe())
    recorded = [v for v in vars(metrics).values() if isinstance(v, RecordedHistogram)]
    assert len(recorded) >= 4  # partial, final, batch size, step time
    for histogram in recorded:
        histogram.observe(0.05)
    metrics.reject("max_sessions")
    emitted = set()
    for record in metrics.emf_records("svc", now=0):
        for directive in record["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                assert metric["Name"] in record, f"{metric['Name']} declared without a value"
                for dimensions in directive["Dimensions"]:
                    assert all(d in record for d in dimensions)
                    emitted.add((directive["Namespace"], metric["Name"], frozenset(dimensions)))
    return emitted


def _sam_template() -> dict[str, Any]:
    from samtranslator.yaml_helper import yaml_parse

    return dict(yaml_parse((ROOT / "template.yaml").read_text()))


def _stack_names(property_name: str, resource_type: str) -> set[str]:
    """Names the SAM template builds from its stack name, as the dashboard writes them in Terraform."""
    names = set()
    for resource in _sam_template()["Resources"].values():
        if resource["Type"] != resource_type:
            continue
        value = resource["Properties"].get(property_name)
        if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
            assert "${AWS::StackName}" in value["Fn::Sub"]
            names.add(value["Fn::Sub"].replace("${AWS::StackName}", "${local.automation_stack}"))
    return names


# ------------------------------------------------------------------------------ what the dashboard shows
def _widgets(tf: TerraformConfig) -> list[dict[str, Any]]:
    return tf.locals["dashboard_widgets"]


def _unescape(text: str) -> str:
    return text.replace('\\"', '"')


def shown_metrics(tf: TerraformConfig) -> list[tuple[str, str, dict[str, str]]]:
    shown = []
    for widget in _widgets(tf):
        if widget["type"] != "metric":
            continue
        for row in widget["properties"]["metrics"]:
            if isinstance(row[0], dict):  # an expression
                expression = _unescape(row[0]["expression"])
                search = re.fullmatch(
                    r"SEARCH\('\{([^}]+)\} MetricName=\"(\w+)\"((?: \w+=\"[^\"]+\")*)', '\w+', \d+\)",
                    expression,
                )
                assert search, f"unrecognised expression {expression}"
                namespace, *dimension_names = search.group(1).split(",")
                filters = dict(re.findall(r'(\w+)="([^"]+)"', search.group(3)))
                assert set(filters) <= set(dimension_names)
                dims = {name: filters.get(name, "*") for name in dimension_names}
                shown.append((namespace, search.group(2), dims))
                continue
            cells = [c for c in row if not isinstance(c, dict)]
            namespace, name, *pairs = cells
            shown.append((namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True))))
    return shown


@pytest.fixture(scope="module")
def tf() -> TerraformConfig:
    return load_terraform()


def test_the_dashboard_shows_streams_latency_errors_alb_ecs_gpu_lambdas_and_rollouts(tf):
    names = {name for _ns, name, _dims in shown_metrics(tf)}
    for wanted in (
        "ActiveStreams",
        "PartialLatency",
        "FinalLatency",
        "EngineBatchSize",
        "EngineStepTime",
        "RejectedSessions",
        "HTTPCode_ELB_5XX_Count",
        "ActiveConnectionCount",
        "HealthyHostCount",
        "CPUUtilization",
        "MemoryUtilization",
        "GpuUtilization",
        "Invocations",
        "Errors",
        "ApproximateNumberOfMessagesVisible",
    ):
        assert wanted in names, wanted
    latency_stats = {
        row[-1]["stat"]
        for widget in _widgets(tf)
        if widget["type"] == "metric"
        for row in widget["properties"]["metrics"]
        if row[1:2] in (["PartialLatency"], ["FinalLatency"])
    }
    assert latency_stats == {"p50", "p95"}  # percentiles, never averages
    titles = [w["properties"].get("title", "") for w in _widgets(tf)]
    assert any("rollout" in t.lower() for t in titles)
    assert tf.resource("aws_cloudwatch_dashboard", "asr")["dashboard_body"].startswith("${jsonencode(")


def test_every_service_metric_on_the_dashboard_is_one_the_server_writes(tf):
    emitted = service_emits()
    service_name = "${local.service_name}"
    for namespace, name, dims in shown_metrics(tf):
        if namespace != "EzSpeech/ASR":
            continue
        assert (namespace, name, frozenset(dims)) in emitted, f"nothing writes {name} with {sorted(dims)}"
        # The server's ServiceName dimension is SERVICE_NAME, which the task sets to local.service_name.
        assert dims["ServiceName"] == service_name
    assert "SERVICE_NAME = local.service_name" in tf.locals["container_environment"]


def test_every_aws_metric_on_the_dashboard_is_published_for_a_resource_we_create(tf):
    functions = _stack_names("FunctionName", "AWS::Serverless::Function")
    queues = _stack_names("QueueName", "AWS::SQS::Queue")
    assert len(functions) == 4 and len(queues) == 2
    ours = {
        "LoadBalancer": {"${aws_lb.this.arn_suffix}"},
        "TargetGroup": {"${aws_lb_target_group.asr.arn_suffix}"},
        "ClusterName": {"${aws_ecs_cluster.this.name}"},
        "ServiceName": {"${aws_ecs_service.asr.name}"},
        "FunctionName": functions,
        "QueueName": queues,
    }
    shown_functions, shown_queues = set(), set()
    for namespace, name, dims in shown_metrics(tf):
        if namespace == "EzSpeech/ASR":
            continue
        assert name in AWS_PUBLISHED[namespace], f"{namespace} publishes no {name}"
        assert frozenset(dims) in AWS_PUBLISHED[namespace][name], f"{name} has no dimensions {sorted(dims)}"
        for key, value in dims.items():
            assert value in ours[key], f"{name}: {key}={value} is not a resource of this repository"
        shown_functions |= {v for k, v in dims.items() if k == "FunctionName"}
        shown_queues |= {v for k, v in dims.items() if k == "QueueName"}
    assert shown_functions == functions and shown_queues == queues  # every Lambda, both DLQs


def test_the_dashboard_finds_the_sam_stack_that_samconfig_deploys(tf):
    import tomllib

    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert tf.locals["automation_stack"] == (
        '${coalesce(var.automation_stack_name, "${var.project}-automation-${var.environment}")}'
    )
    for env in ("dev", "prod"):
        assert config[env]["deploy"]["parameters"]["stack_name"] == f"ezspeech-automation-{env}"
    assert tf.variables["project"]["default"] == "ezspeech"


def _names_event(node: ast.expr, event: str, tree: ast.Module) -> bool:
    """``"event"``, or ``self.READY_EVENT`` where the module sets ``READY_EVENT = "event"``."""
    if isinstance(node, ast.Constant):
        return bool(node.value == event)
    if isinstance(node, ast.Attribute):
        return any(
            isinstance(assign, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == node.attr for t in assign.targets)
            and isinstance(assign.value, ast.Constant)
            and assign.value.value == event
            for assign in ast.walk(tree)
        )
    return False


def _logged_fields(source: Path, function: str, event: str) -> set[str]:
    """Keyword fields of ``log.info("<event>", ...)`` in ``function``, plus any ``**info`` dict keys
    that the module builds as a literal in ``load_configured_model``."""
    tree = ast.parse(source.read_text())
    fields: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "load_configured_model":
            for assign in ast.walk(node):
                if isinstance(assign, ast.Dict):
                    fields |= {str(k.value) for k in assign.keys if isinstance(k, ast.Constant)}
    found = False
    for node in ast.walk(tree):
        if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef) and node.name == function:
            for call in ast.walk(node):
                if isinstance(call, ast.Call) and call.args and _names_event(call.args[0], event, tree):
                    found = True
                    fields |= {k.arg for k in call.keywords if k.arg}
    assert found, f"{function} logs no {event}"
    return fields


def test_log_widgets_read_log_groups_and_fields_that_exist(tf):
    from ezspeech_common.rollout import RolloutResult

    prefix = tf.locals["automation_log_group_prefix"]
    assert prefix == "/aws/lambda/${local.automation_stack}"
    lambda_groups = _stack_names("LogGroupName", "AWS::Logs::LogGroup")
    assert len(lambda_groups) == 4
    groups = {"${aws_cloudwatch_log_group.asr.name}"} | lambda_groups
    rollout_fields = {f.name for f in dataclasses.fields(RolloutResult)}
    rollout_source = (ROOT / "functions/model_rollout/app.py").read_text()
    server_fields = _logged_fields(ROOT / "asr_service/server.py", "start", "server_ready")
    logs = [w for w in _widgets(tf) if w["type"] == "log"]
    assert len(logs) == 2
    for widget in logs:
        query = _unescape(widget["properties"]["query"])
        (group,) = re.findall(
            r"SOURCE '([^']+)'", query.replace("${local.automation_log_group_prefix}", prefix)
        )
        assert group in groups, group
        (fields,) = re.findall(r"\| fields ([^|]+)", query)
        wanted = {f.strip() for f in fields.split(",")} - {"@timestamp", "message", "event"}
        if "model-rollout" in group:
            assert re.search(r'logger\.info\(\s*"rollout_" \+', rollout_source)  # the filter /^rollout_/
            assert wanted <= rollout_fields, wanted - rollout_fields
        else:
            assert 'filter event = "server_ready"' in query
            assert wanted <= server_fields, wanted - server_fields


def test_widgets_fit_the_grid_without_overlapping(tf):
    taken: set[tuple[int, int]] = set()
    for widget in _widgets(tf):
        x, y, width, height = (int(widget[k]) for k in ("x", "y", "width", "height"))
        assert x >= 0 and x + width <= 24
        cells = {(cx, cy) for cx in range(x, x + width) for cy in range(y, y + height)}
        assert not cells & taken, widget["properties"].get("title")
        taken |= cells


def test_latency_alarms_use_p95_of_what_the_server_writes(tf):
    emitted = service_emits()
    actions = "${local.alarm_actions}"
    for name, metric, variable in (
        ("partial_latency_p95", "PartialLatency", "alarm_partial_latency_p95_ms"),
        ("final_latency_p95", "FinalLatency", "alarm_final_latency_p95_ms"),
    ):
        alarm = tf.resource("aws_cloudwatch_metric_alarm", name)
        assert (alarm["namespace"], alarm["metric_name"], frozenset(alarm["dimensions"])) in emitted
        assert alarm["metric_name"] == metric and alarm["extended_statistic"] == "p95"
        assert alarm["unit"] == "Milliseconds" and alarm["threshold"] == f"${{var.{variable}}}"
        assert alarm["alarm_actions"] == alarm["ok_actions"] == actions  # wired like the others
        assert alarm["treat_missing_data"] == "notBreaching"  # night mode: no streams, no alarm
        assert tf.variables[variable]["default"] > 0


def test_the_sam_stack_alarms_on_both_dead_letter_queues():
    resources = _sam_template()["Resources"]
    alarmed = {
        r["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        and r["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    }
    queues = {name for name, r in resources.items() if r["Type"] == "AWS::SQS::Queue"}
    assert alarmed == queues
