"""What the infrastructure tests share: the parsed Terraform stack (python-hcl2) and the
Dockerfile as ``image.preflight`` reads it (the one Dockerfile parser; the preflight runs before
every image build)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import hcl2

from image import preflight

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
TERRAFORM_DIR = Path(__file__).resolve().parents[2] / "terraform"

# Actions that change nothing: an Allow on resource "*" is accepted only for these.
READ_ONLY_ACTION = re.compile(r"^[a-z0-9-]+:(Get|List|Describe|BatchGet|BatchCheck|Head)[A-Za-z]*$")
MARKERS = ("__is_block__", "__comments__", "__inline_comments__", "__start_line__", "__end_line__")


def _clean(value: Any) -> Any:
    """python-hcl2 keeps string quotes and bookkeeping keys; strip both so tests read plain values."""
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items() if k not in MARKERS}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


@dataclass(frozen=True)
class TerraformConfig:
    resources: dict[str, dict[str, dict[str, Any]]]
    data: dict[str, dict[str, dict[str, Any]]]
    variables: dict[str, dict[str, Any]]
    outputs: dict[str, dict[str, Any]]
    locals: dict[str, Any]

    def resource(self, rtype: str, name: str) -> dict[str, Any]:
        return self.resources[rtype][name]


@cache
def load_terraform(directory: Path = TERRAFORM_DIR) -> TerraformConfig:
    resources: dict[str, dict[str, dict[str, Any]]] = {}
    data: dict[str, dict[str, dict[str, Any]]] = {}
    variables: dict[str, dict[str, Any]] = {}
    outputs: dict[str, dict[str, Any]] = {}
    local_values: dict[str, Any] = {}
    for path in sorted(directory.glob("*.tf")):
        with path.open() as handle:
            parsed = _clean(hcl2.load(handle))
        for block in parsed.get("resource", []):
            for rtype, by_name in block.items():
                resources.setdefault(rtype, {}).update(by_name)
        for block in parsed.get("data", []):
            for dtype, by_name in block.items():
                data.setdefault(dtype, {}).update(by_name)
        for block in parsed.get("variable", []):
            variables.update(block)
        for block in parsed.get("output", []):
            outputs.update(block)
        for block in parsed.get("locals", []):
            local_values.update(block)
    return TerraformConfig(resources, data, variables, outputs, local_values)


def one_block(body: dict[str, Any], name: str) -> dict[str, Any]:
    blocks = body[name]
    assert isinstance(blocks, list) and len(blocks) == 1, f"expected one {name} block, got {blocks!r}"
    block = blocks[0]
    assert isinstance(block, dict)
    return block


def policy_statements(config: TerraformConfig) -> list[tuple[str, dict[str, Any]]]:
    """Every statement of every aws_iam_policy_document, with the document's name."""
    statements = []
    for name, doc in config.data.get("aws_iam_policy_document", {}).items():
        for statement in doc.get("statement", []):
            statements.append((name, statement))
    return statements


@dataclass(frozen=True)
class Dockerfile:
    """The Dockerfile's global ARG defaults and its build stages."""

    global_args: dict[str, str]
    stages: list[preflight.Stage]

    @property
    def final(self) -> preflight.Stage:
        return self.stages[-1]


def read_dockerfile(path: Path = DOCKERFILE) -> Dockerfile:
    preamble, stages = preflight.stages_of(preflight.parse(path.read_text()))
    global_args = {}
    for ins in preamble:
        if ins.keyword == "ARG":
            name, _, default = ins.args.partition("=")
            global_args[name] = default
    return Dockerfile(global_args, stages)


def exec_form(args: str) -> list[str]:
    """The JSON array of an exec-form instruction; fails for shell form."""
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value
