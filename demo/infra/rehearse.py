"""Rehearse the real deployment: ``terraform/`` applied against a moto server, for dev and prod.

    python -m demo.infra.rehearse [--env dev --env prod] [--terraform-dir terraform] [--keep]

For each environment, in parallel: a fresh moto server; a temp copy of ``terraform/`` plus the
one overlay file ``demo/infra/moto_override.tf`` (moto endpoints, and every exclusion with the
moto gap that forces it); ``apply``; the wiring checks of :mod:`demo.infra.wiring` (what
Terraform built against what the SAM stack and the ops tools expect, read back from moto); the
SAM stack created on the same moto from the translated template (:mod:`demo.infra.sam_stack`)
and checked; ``plan -detailed-exitcode``, which must show no changes; ``destroy``.
Exit status 0 when every environment passed; otherwise each failure is printed with the step
it failed in and the tail of that step's output.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from demo.infra.sam_stack import check_sam_stack
from demo.infra.wiring import check_wiring, moto_client
from demo.moto_server import MotoServer

ROOT = Path(__file__).resolve().parents[2]
OVERLAY = Path(__file__).resolve().parent / "moto_override.tf"
PROVIDER = Path("registry.terraform.io/hashicorp/aws")
ENDPOINT_PLACEHOLDER = '"MOTO_ENDPOINT"'
#: Generous per-command limits: a moto gap makes the provider retry for many minutes, and a
#: rehearsal that hangs is worse than one that fails naming the step.
STEP_TIMEOUT_S = {"init": 120.0, "apply": 420.0, "plan": 180.0, "show": 120.0, "destroy": 300.0}


class RehearsalError(Exception):
    """A step failed; the message names the environment, the step and why."""


@dataclass
class EnvResult:
    env: str
    ok: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    resources: int = 0
    checks: list[str] = field(default_factory=list)
    error: str = ""


def plugin_dir() -> Path | None:
    """The local provider mirror (mk/infra.mk's TF_PLUGIN_DIR logic): nothing is downloaded."""
    for candidate in (os.environ.get("TF_PLUGIN_DIR"), "/opt/tf-plugins"):
        if candidate and (Path(candidate) / PROVIDER).is_dir():
            return Path(candidate)
    return None


def prepare(terraform_dir: Path, workdir: Path, endpoint: str) -> Path:
    """A copy of the configuration with the overlay next to it (terraform/ itself is never touched)."""
    target = workdir / "terraform"
    skip = shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate*", "tests")
    shutil.copytree(terraform_dir, target, ignore=skip)
    overlay = OVERLAY.read_text()
    if ENDPOINT_PLACEHOLDER not in overlay:
        raise RehearsalError(f"{OVERLAY} lost its {ENDPOINT_PLACEHOLDER} placeholder")
    (target / OVERLAY.name).write_text(overlay.replace(ENDPOINT_PLACEHOLDER, json.dumps(endpoint)))
    return target


def terraform_env(workdir: Path) -> dict[str, str]:
    config = workdir / "terraformrc"
    config.write_text("")  # no user CLI config: no credential helpers, no network mirrors
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))}
    env.update(
        {
            "TF_CLI_CONFIG_FILE": str(config),
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "CHECKPOINT_DISABLE": "1",
            "AWS_ACCESS_KEY_ID": "rehearsal",
            "AWS_SECRET_ACCESS_KEY": "rehearsal",
            "AWS_REGION": "us-east-1",
        }
    )
    return env


class Terraform:
    def __init__(self, binary: str, cwd: Path, env: dict[str, str], name: str, log: Callable[[str], None]):
        self.binary, self.cwd, self.env, self.name, self.log = binary, cwd, env, name, log
        self.timings: dict[str, float] = {}

    def run(
        self, step: str, *args: str, ok_codes: tuple[int, ...] = (0,)
    ) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        self.log(f"[{self.name}] terraform {step} ...")
        try:
            result = subprocess.run(  # noqa: S603 - the terraform binary, fixed arguments
                [self.binary, step, "-no-color", *args],
                cwd=self.cwd,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=STEP_TIMEOUT_S[step],
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise RehearsalError(
                f"{self.name}: terraform {step} did not finish within {STEP_TIMEOUT_S[step]:.0f} s "
                "(a moto gap makes the provider retry: see demo/infra/moto_override.tf)"
            ) from error
        self.timings[step] = round(time.monotonic() - started, 1)
        (self.cwd.parent / f"{step}.log").write_text(result.stdout + result.stderr)
        if result.returncode not in ok_codes:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
            raise RehearsalError(f"{self.name}: terraform {step} failed (exit {result.returncode}):\n{tail}")
        return result


def rehearse_env(
    env: str, terraform_dir: Path, binary: str, plugins: Path, keep: Path | None, log: Callable[[str], None]
) -> EnvResult:
    result = EnvResult(env)
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"rehearse-{env}-", dir=keep))
    # moto only offers AWS managed IAM policies (the execution role attaches one) when asked.
    os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
    try:
        with MotoServer(workdir / "moto.log") as moto:
            tf_dir = prepare(terraform_dir, workdir, moto.endpoint_url)
            tf = Terraform(binary, tf_dir, terraform_env(workdir), env, log)
            var_args = [f"-var-file=env/{env}.tfvars", "-var=image_tag=rehearsal"]
            try:
                tf.run("init", "-input=false", "-backend=false", f"-plugin-dir={plugins}")
                tf.run("apply", "-auto-approve", "-input=false", *var_args)
                state = json.loads(tf.run("show", "-json").stdout)
                result.resources = count_resources(state)
                try:
                    problems, result.checks = check_wiring(env, moto.endpoint_url, ROOT)
                    if not problems:
                        sam_problems, sam_checks = check_sam_stack(env, moto_client(moto.endpoint_url), ROOT)
                        problems, result.checks = sam_problems, result.checks + sam_checks
                except (ClientError, BotoCoreError) as error:
                    raise RehearsalError(f"{env}: a check's call to moto failed: {error}") from error
                if problems:
                    raise RehearsalError(
                        f"{env}: what Terraform built does not match what the SAM stack and the demo "
                        "expect:\n  - " + "\n  - ".join(problems)
                    )
                plan = tf.run("plan", "-detailed-exitcode", "-input=false", *var_args, ok_codes=(0, 2))
                if plan.returncode == 2:
                    changes = [
                        line.rstrip()
                        for line in plan.stdout.splitlines()
                        if line.lstrip()[:2] in ("# ", "~ ", "+ ", "- ") and "unchanged" not in line
                    ]
                    raise RehearsalError(
                        f"{env}: a second plan right after apply is not empty (a moto echo gap to list in "
                        "moto_override.tf, or a real perpetual diff):\n  " + "\n  ".join(changes[:40])
                    )
                tf.run("destroy", "-auto-approve", "-input=false", *var_args)
            finally:
                result.timings = tf.timings if "tf" in locals() else {}
        result.ok = True
    except RehearsalError as error:
        result.error = str(error)
    finally:
        if keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"[{env}] kept {workdir}")
    return result


def count_resources(state: dict[str, Any]) -> int:
    def walk(module: dict[str, Any]) -> int:
        own = sum(1 for r in module.get("resources", []) if r.get("mode") == "managed")
        return own + sum(walk(child) for child in module.get("child_modules", []))

    return walk(state.get("values", {}).get("root_module", {}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m demo.infra.rehearse", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--env", action="append", choices=["dev", "prod"], help="default: dev and prod")
    parser.add_argument("--terraform-dir", type=Path, default=ROOT / "terraform")
    parser.add_argument("--keep", type=Path, help="keep each environment's work directory under this folder")
    args = parser.parse_args(argv)
    envs: list[str] = args.env or ["dev", "prod"]
    binary = shutil.which(os.environ.get("TERRAFORM", "terraform"))
    plugins = plugin_dir()
    if binary is None or plugins is None:
        print(
            "rehearse-infra needs terraform on PATH and a local AWS provider mirror (TF_PLUGIN_DIR, "
            f"holding {PROVIDER}; /opt/tf-plugins is looked at too)",
            file=sys.stderr,
        )
        return 2

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(envs)) as pool:
        futures = [
            pool.submit(rehearse_env, env, args.terraform_dir.resolve(), binary, plugins, args.keep, log)
            for env in envs
        ]
        results = [future.result() for future in futures]
    for result in results:
        status = "PASS" if result.ok else "FAIL"
        steps = ", ".join(f"{step} {seconds:.0f}s" for step, seconds in result.timings.items())
        print(
            f"{status} {result.env}: {result.resources} resources, "
            f"{len(result.checks)} wiring checks ({steps})"
        )
        if result.error:
            print(f"  {result.error}")
    print(f"rehearse-infra: {time.monotonic() - started:.0f} s for {', '.join(envs)}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
