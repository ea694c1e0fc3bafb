"""Translate template.yaml (AWS SAM) to plain CloudFormation JSON, offline.

``python scripts/sam_translate.py template.yaml build/sam/template.json``

Uses aws-sam-translator, the library behind ``sam validate``/``sam deploy``'s transform. The
only AWS lookup the transform makes, managed-policy names → ARNs, is answered from a fixed
table of the AWS managed policies SAM attaches, so this runs without credentials or network.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

#: The managed policies SAM attaches to these functions (basic execution, X-Ray, SQS DLQ).
_MANAGED_POLICIES = (
    "AWSLambdaBasicExecutionRole",
    "AWSXrayWriteOnlyAccess",
    "AWSLambdaSQSQueueExecutionRole",
)


class OfflinePolicyLoader:
    """Stands in for samtranslator's IAM-backed ManagedPolicyLoader."""

    def load(self) -> dict[str, str]:
        arns = {name: f"arn:aws:iam::aws:policy/service-role/{name}" for name in _MANAGED_POLICIES}
        arns["AWSXrayWriteOnlyAccess"] = "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"
        return arns


def translate(template_path: Path) -> dict[str, Any]:
    # The transform fills AWS::Region-style pseudo parameters; any region does for a lint.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    source = yaml_parse(template_path.read_text())
    _stand_in_code_locations(source)
    return transform(source, {}, OfflinePolicyLoader())


def _stand_in_code_locations(template: dict[str, Any]) -> None:
    """Local code folders become S3 URIs, as ``sam package`` would make them (the transform wants those)."""
    for resource in template.get("Resources", {}).values():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str) and not properties[key].startswith("s3://"):
                properties[key] = f"s3://sam-artifacts/{properties[key].strip('/')}.zip"


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    translated = translate(Path(argv[1]))
    out = Path(argv[2])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(translated, indent=1, sort_keys=True) + "\n")
    print(f"{argv[1]} -> {out} ({len(translated['Resources'])} resources)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
