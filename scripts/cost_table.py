"""Cost per 1,000 stream-hours from a benchmark result and public on-demand prices.

    python scripts/cost_table.py RESULT.json [RESULT.json ...]   (make cost-table RESULTS="...")

Prints the README's "Cost" section tables in Markdown. Streams per task come from the result
files (the largest stream count that met the benchmark's criterion: every stream real-time and
p95 partial latency within the target), CPU runs and GPU (``--device cuda``) runs separately; a
sweep split over several files counts as one (bench.plot groups them). Task sizes, GPU instance
types, scaling target, disk sizes and the night schedule are read from terraform/ and
template.yaml, so the table follows the code. Prices are constants below, with the date they were
taken: re-check them before relying on the numbers.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench.plot, when run as a script

from bench.plot import Series, group  # noqa: E402  (needs the repository on sys.path)

# ---------------------------------------------------------------------------- prices
# AWS public on-demand list prices, us-east-1 (N. Virginia), Linux, USD, as published on the
# Fargate, EC2 On-Demand and EBS pricing pages in 2025-06. Written without network access: re-check
# them (and your region) before using the table for a decision.
PRICES_AS_OF = "2025-06"
REGION = "us-east-1"
FARGATE_VCPU_HOUR = 0.04048  # x86
FARGATE_GB_HOUR = 0.004445
FARGATE_STORAGE_GB_HOUR = 0.000111  # ephemeral storage beyond the 20 GB included
FARGATE_STORAGE_INCLUDED_GB = 20
EBS_GP3_GB_MONTH = 0.08
HOURS_PER_MONTH = 730
EC2_HOUR = {"g4dn.xlarge": 0.526, "g5.xlarge": 1.006, "g6.xlarge": 0.8048}
GPU_OF = {"g4dn.xlarge": "1x T4 16 GB", "g5.xlarge": "1x A10G 24 GB", "g6.xlarge": "1x L4 24 GB"}
# The server process's memory (RSS) stayed under 0.65 GB at every benchmarked load: a Fargate
# size gets its smallest allowed memory, but at least this much.
MIN_TASK_MEMORY_MIB = 1024


# ---------------------------------------------------------------------------- inputs from the code
def _hcl(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        return dict(_strip(hcl2.load(handle)))


def _strip(value: Any) -> Any:
    """python-hcl2 keeps string quotes and bookkeeping keys (__start_line__ ...): drop both."""
    if isinstance(value, dict):
        return {_strip(k): _strip(v) for k, v in value.items() if not str(k).startswith("__")}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


@dataclass(frozen=True)
class Stack:
    fargate_sizes: dict[int, tuple[int, int]]  # CPU units -> (min, max) MiB
    gpu_instance_types: list[str]
    defaults: dict[str, Any]
    envs: dict[str, dict[str, Any]]
    night_hours: float
    schedule: tuple[str, str, str]  # night, morning, timezone


def read_stack() -> Stack:
    variables: dict[str, Any] = {}
    for block in _hcl(ROOT / "terraform/variables.tf")["variable"]:
        for name, body in block.items():
            variables[name] = body
    defaults = {name: _strip(body.get("default")) for name, body in variables.items()}
    ecs_locals: dict[str, Any] = {}
    for block in _hcl(ROOT / "terraform/ecs.tf")["locals"]:
        ecs_locals.update(block)
    sizes = {int(_strip(k)): (int(v[0]), int(v[1])) for k, v in ecs_locals["fargate_memory_range"].items()}
    # The GPU shapes the Terraform names: its default and the examples its description gives.
    description = variables["gpu_instance_type"]["description"]
    gpu_types = sorted(
        set(re.findall(r"\b[gp]\d[a-z]*\.\w+\b", description)) | {defaults["gpu_instance_type"]}
    )
    envs = {}
    for path in sorted((ROOT / "terraform/env").glob("*.tfvars")):
        envs[path.stem] = {**defaults, **{k: _strip(v) for k, v in _hcl(path).items()}}
    parameters = _sam_parameters()
    night, morning = parameters["NightScheduleExpression"], parameters["MorningScheduleExpression"]
    hours = (_first_run_hour(morning) - _first_run_hour(night)) % 24
    return Stack(sizes, gpu_types, defaults, envs, hours, (night, morning, parameters["ScheduleTimezone"]))


def _sam_parameters() -> dict[str, str]:
    from samtranslator.yaml_helper import yaml_parse

    template = yaml_parse((ROOT / "template.yaml").read_text())
    return {name: str(p.get("Default", "")) for name, p in template["Parameters"].items()}


def _first_run_hour(expression: str) -> float:
    """Hour of day (fractional) of the first run of an EventBridge ``cron(min hour ...)``."""
    fields = re.fullmatch(r"cron\((.+)\)", expression)
    if not fields:
        raise ValueError(f"not a cron expression: {expression}")
    minute, hour = fields.group(1).split()[:2]

    def first(field: str) -> int:
        return int(re.split(r"[-/,]", field)[0])

    return first(hour) + first(minute) / 60


def capacity(series: Series) -> int:
    passing = [
        n
        for n, step in series.steps.items()
        if step["realtime_streams"] == step["streams"] and step["partial_p95_ms"] <= series.target_ms
    ]
    return max(passing, default=0)


# ---------------------------------------------------------------------------- costs
def fargate_task_hour(cpu_units: int, memory_mib: int, storage_gib: float) -> float:
    extra_storage = max(0.0, storage_gib - FARGATE_STORAGE_INCLUDED_GB)
    return (
        cpu_units / 1024 * FARGATE_VCPU_HOUR
        + memory_mib / 1024 * FARGATE_GB_HOUR
        + extra_storage * FARGATE_STORAGE_GB_HOUR
    )


def gpu_host_hour(instance_type: str, volume_gib: float) -> float:
    return EC2_HOUR[instance_type] + volume_gib * EBS_GP3_GB_MONTH / HOURS_PER_MONTH


def per_1000_stream_hours(task_hour: float, streams: float) -> str:
    return f"${task_hour / streams * 1000:,.2f}" if streams > 0 else "n/a"


def render(results: list[dict[str, Any]], stack: Stack) -> str:
    series = group(results)
    cpu = [s for s in series if "GPU" not in s.label]
    gpu = [s for s in series if "GPU" in s.label]
    if len(cpu) != 1 or len(gpu) != 1:
        raise ValueError(
            f"need exactly one CPU and one GPU configuration, got {[s.label for s in series]}; "
            "pass the result files of one sweep each"
        )
    cpu_capacity, gpu_capacity = capacity(cpu[0]), capacity(gpu[0])
    cpu_vcpus = _vcpus(results, gpu=False)
    per_vcpu = cpu_capacity / cpu_vcpus
    target = float(stack.defaults["active_streams_target_per_task"])
    storage = float(stack.defaults["fargate_ephemeral_storage_gib"])
    volume = float(stack.defaults["gpu_instance_volume_gib"])
    lines = [
        f"Prices: AWS on-demand list prices, {REGION}, Linux, USD, as of {PRICES_AS_OF} "
        f"(Fargate ${FARGATE_VCPU_HOUR}/vCPU-h + ${FARGATE_GB_HOUR}/GB-h, ephemeral storage over "
        f"{FARGATE_STORAGE_INCLUDED_GB} GB ${FARGATE_STORAGE_GB_HOUR}/GB-h; "
        f"EBS gp3 ${EBS_GP3_GB_MONTH}/GB-month; "
        + ", ".join(f"{t} ${p}/h" for t, p in EC2_HOUR.items())
        + "). **Re-check them before deciding anything.** Compute only: the ALB, NAT gateways, "
        "CloudWatch and data transfer are per deployment, not per stream, and not included.",
        "",
        f"Streams per task: CPU {cpu_capacity} on {cpu_vcpus:g} vCPU (measured: `{cpu[0].label}`), "
        f"GPU {gpu_capacity} (measured: `{gpu[0].label}`). The default scaling target keeps "
        f"{target:g} streams per task on average (`active_streams_target_per_task`), so a service "
        "running on defaults pays the right-hand column.",
        "",
        "| Fargate task (x86) | memory | streams per task | per 1,000 stream-hours at that capacity "
        f"| at the scaling target ({target:g}/task) |",
        "|---|---|---|---|---|",
    ]
    for cpu_units, (low, high) in sorted(stack.fargate_sizes.items()):
        memory = max(low, MIN_TASK_MEMORY_MIB)
        if memory > high:
            continue
        hour = fargate_task_hour(cpu_units, memory, storage)
        vcpus = cpu_units / 1024
        if vcpus == cpu_vcpus:
            streams, basis = float(cpu_capacity), "measured"
        else:
            streams = per_vcpu * vcpus
            multi_process = ", one worker process per vCPU: WORKERS"
            basis = "extrapolated" + (multi_process if vcpus > cpu_vcpus else "")
        at_target = per_1000_stream_hours(hour, min(target, streams))
        if streams < target:  # this size saturates before autoscaling reacts
            at_target += " (target above capacity: lower it)"
        lines.append(
            f"| {vcpus:g} vCPU (${hour:.4f}/h) | {memory / 1024:g} GB | {streams:g} ({basis}) "
            f"| {per_1000_stream_hours(hour, streams)} | {at_target} |"
        )
    default_cpu, default_memory = int(stack.defaults["task_cpu"]), int(stack.defaults["task_memory"])
    hour = fargate_task_hour(default_cpu, default_memory, storage)
    default_streams = per_vcpu * default_cpu / 1024
    lines += [
        f"| Terraform default: {default_cpu / 1024:g} vCPU, {default_memory / 1024:g} GB (${hour:.4f}/h) "
        f"| {default_memory / 1024:g} GB | {default_streams:g} (as {default_cpu / 1024:g} vCPU above) "
        f"| {per_1000_stream_hours(hour, default_streams)} "
        f"| {per_1000_stream_hours(hour, min(target, default_streams))} |",
        "",
        "| GPU host (one task each) | GPU | streams per task | per 1,000 stream-hours at that capacity "
        f"| at the scaling target ({target:g}/task) |",
        "|---|---|---|---|---|",
    ]
    for instance_type in stack.gpu_instance_types:
        if instance_type not in EC2_HOUR:
            raise ValueError(f"no price for {instance_type}: add it to EC2_HOUR")
        hour = gpu_host_hour(instance_type, volume)
        lines.append(
            f"| {instance_type} (${hour:.4f}/h with {volume:g} GiB gp3) | {GPU_OF[instance_type]} "
            f"| {gpu_capacity} (assumed: the GPU run's capacity) "
            f"| {per_1000_stream_hours(hour, gpu_capacity)} | {per_1000_stream_hours(hour, target)} |"
        )
    night, morning, zone = stack.schedule
    lines += [
        "",
        f"Night mode with the default schedule (scale down `{night}`, up `{morning}`, {zone}): "
        f"{stack.night_hours:g} h a night with no task, {stack.night_hours / 24:.1%} of the day. "
        "It saves at least the day minimum (`min_capacity`) for those hours; tasks that autoscaling "
        "would have kept for night traffic are saved too (and that traffic is refused).",
        "",
        "| environment (`terraform/env`) | capacity | day minimum | per task-hour "
        "| saved per month (30.4 nights) |",
        "|---|---|---|---|---|",
    ]
    for env, values in stack.envs.items():
        minimum = int(values["min_capacity"])
        if values["capacity_mode"] == "gpu":
            instance_type = str(values["gpu_instance_type"])
            hour = gpu_host_hour(instance_type, float(values["gpu_instance_volume_gib"]))
            shape = instance_type
        else:
            hour = fargate_task_hour(
                int(values["task_cpu"]),
                int(values["task_memory"]),
                float(values["fargate_ephemeral_storage_gib"]),
            )
            shape = (
                f"Fargate {int(values['task_cpu']) / 1024:g} vCPU / {int(values['task_memory']) / 1024:g} GB"
            )
        saved = minimum * hour * stack.night_hours * 30.4
        lines.append(f"| {env} | {shape} | {minimum} | ${hour:.4f} | ${saved:,.2f} |")
    return "\n".join(lines)


def _vcpus(results: list[dict[str, Any]], gpu: bool) -> float:
    for result in results:
        if ("cuda" in (result["args"].get("server_args") or [])) == gpu:
            match = re.match(r"(\d+) CPUs", result["machine"])
            if match:
                return float(match.group(1))
    raise ValueError("the CPU result does not say how many CPUs its machine had")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/cost_table.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "results", nargs="+", type=Path, help="bench/results/*.json: one CPU and one GPU sweep"
    )
    args = parser.parse_args(argv)
    try:
        results = [json.loads(path.read_text()) for path in args.results]
        print(render(results, read_stack()))
    except (OSError, ValueError, KeyError) as error:
        print(f"cost-table: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
