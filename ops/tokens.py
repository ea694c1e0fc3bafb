"""Client tokens: add clients, rotate their tokens, retire old ones — and roll the service safely.

    python -m ops.tokens list                                [--env dev]
    python -m ops.tokens add    --client NAME [--max-sessions N]
    python -m ops.tokens rotate [--client NAME ...] [--revoke-previous]
    python -m ops.tokens retire-previous [--client NAME ...]
    python -m ops.tokens limit  --client NAME --max-sessions N   (0: no limit of its own)
    python -m ops.tokens remove --client NAME

Every change writes one new version of the client-tokens secret (terraform/secrets.tf; found in
the service's task definition, or ``--secret-arn``) and then rolls the service onto it with
``ezspeech_common.client_tokens.roll_out_client_tokens``: a new task-definition revision pinning
that version, UpdateService, and the service's circuit-breaker-guarded deployment, the path a
model rollout takes. Old tasks keep their tokens until they have drained, so no open session is
cut. By default the command waits until the deployment has completed (``--no-wait`` returns at
once): from then on every task accepts the new tokens.

``rotate`` keeps each client's previous token valid beside the new one (until the next rotation
or ``retire-previous``), so clients can switch over at their own pace; ``--revoke-previous``
drops it at once (a leaked token). New tokens are 256-bit random, stored only as their SHA-256
(``sha256:<hex>``), and shown once: on stdout, or written to ``--out FILE`` (mode 0600).
Nothing else this tool prints or logs carries a token.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from ezspeech_common.aws import RETRY_CONFIG
from ezspeech_common.client_tokens import (
    SecretRef,
    TokensRolloutResult,
    roll_out_client_tokens,
    tokens_secret,
    wait_for_deployment,
)
from ezspeech_common.ecs import describe_service, describe_task_definition
from ezspeech_common.errors import AutomationError, DeploymentFailedError
from ezspeech_common.rollout import RolloutSettings

from asr_service.auth import CLIENT_NAME, AuthConfigError, client_table, hash_token
from ops.names import MissingNameError, from_ssm

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

#: A deployment drains old tasks for up to the ALB deregistration delay and the stop timeout
#: (90 + 120 s by default) after new ones turned healthy (model download and warm-up included).
DEFAULT_WAIT_S = 1800.0


class TokensError(Exception):
    """A change that cannot be made (unknown client, the last client removed, ...)."""


@dataclass
class ClientEntry:
    #: Stored credentials, current first: ``sha256:<hex>`` (or a raw token someone wrote by hand).
    credentials: list[str]
    max_sessions: int | None = None

    def as_json(self) -> Any:
        if self.max_sessions is None:
            return list(self.credentials)
        return {"tokens": list(self.credentials), "max_sessions": self.max_sessions}


@dataclass
class Change:
    """A new client table and the tokens created for it (to be shown once)."""

    clients: dict[str, ClientEntry]
    new_tokens: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------ the table (no AWS)
def read_table(text: str | None) -> dict[str, ClientEntry]:
    """The secret's JSON → entries, checked with the server's own parser first."""
    if text is None or not text.strip():
        return {}
    try:
        document = json.loads(text)
        if not isinstance(document, dict):
            raise AuthConfigError("the secret is not a JSON object of client names")
        client_table(document)  # the server's rules: what it would refuse, we refuse to build on
    except (ValueError, AuthConfigError) as error:
        raise TokensError(f"the current secret value cannot be read: {error}") from None
    entries: dict[str, ClientEntry] = {}
    for name, value in document.items():
        limit = value.get("max_sessions") if isinstance(value, dict) else None
        tokens = value.get("tokens", []) if isinstance(value, dict) else value
        entries[name] = ClientEntry([tokens] if isinstance(tokens, str) else list(tokens), limit)
    return entries


def render_table(clients: dict[str, ClientEntry]) -> str:
    """Entries → the secret's JSON, which the server must accept (checked here, before writing)."""
    if not clients:
        raise TokensError("no client would be left: every task would refuse to start (REQUIRE_AUTH)")
    document = {name: clients[name].as_json() for name in sorted(clients)}
    client_table(document)
    return json.dumps(document, indent=1, sort_keys=True)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def _selected(clients: dict[str, ClientEntry], names: list[str] | None) -> list[str]:
    unknown = sorted(set(names or []) - set(clients))
    if unknown:
        raise TokensError(f"unknown client(s) {', '.join(unknown)}; known: {', '.join(sorted(clients))}")
    return sorted(names) if names else sorted(clients)


def add_client(clients: dict[str, ClientEntry], name: str, max_sessions: int | None) -> Change:
    if not CLIENT_NAME.match(name):
        raise TokensError(f"client name {name!r}: 1-64 characters of letters, digits, '.', '_' or '-'")
    if name in clients:
        raise TokensError(f"client {name} exists; use rotate to give it a new token")
    token = new_token()
    updated = {**clients, name: ClientEntry([hash_token(token)], max_sessions or None)}
    return Change(updated, {name: token})


def rotate(clients: dict[str, ClientEntry], names: list[str] | None, keep_previous: bool = True) -> Change:
    """A new token for each named client (default: all); its current one stays valid if asked."""
    if not clients:
        raise TokensError("the secret has no client yet: add one first (make rotate-tokens ADD=<name>)")
    updated = dict(clients)
    tokens = {}
    for name in _selected(clients, names):
        entry = clients[name]
        tokens[name] = new_token()
        kept = entry.credentials[:1] if keep_previous else []
        updated[name] = ClientEntry([hash_token(tokens[name]), *kept], entry.max_sessions)
    return Change(updated, tokens)


def retire_previous(clients: dict[str, ClientEntry], names: list[str] | None) -> Change:
    selected = _selected(clients, names)
    return Change(
        {
            name: ClientEntry(entry.credentials[:1], entry.max_sessions) if name in selected else entry
            for name, entry in clients.items()
        }
    )


def set_limit(clients: dict[str, ClientEntry], name: str, max_sessions: int) -> Change:
    (name,) = _selected(clients, [name])
    entry = clients[name]
    return Change({**clients, name: ClientEntry(entry.credentials, max_sessions or None)})


def remove_client(clients: dict[str, ClientEntry], name: str) -> Change:
    _selected(clients, [name])
    return Change({key: value for key, value in clients.items() if key != name})


# ------------------------------------------------------------------ AWS
def read_secret(sm: SecretsManagerClient, ref: SecretRef) -> str | None:
    """The secret's value at the pinned version (else AWSCURRENT); None while it has no value."""
    try:
        if ref.version_id:
            reply = sm.get_secret_value(SecretId=ref.arn, VersionId=ref.version_id)
        else:
            reply = sm.get_secret_value(SecretId=ref.arn)
    except sm.exceptions.ResourceNotFoundException:
        sm.describe_secret(SecretId=ref.arn)  # the secret itself must exist (raises if not)
        return None
    return reply.get("SecretString")


def current_version(sm: SecretsManagerClient, arn: str) -> str:
    for version, stages in sm.describe_secret(SecretId=arn).get("VersionIdsToStages", {}).items():
        if "AWSCURRENT" in stages:
            return version
    return ""


def write_secret(sm: SecretsManagerClient, arn: str, text: str) -> str:
    """Put ``text`` as the new AWSCURRENT version; returns its version id."""
    reply = sm.put_secret_value(SecretId=arn, SecretString=text, ClientRequestToken=str(uuid.uuid4()))
    return str(reply["VersionId"])


@dataclass
class Outcome:
    action: str
    secret_arn: str
    version_id: str
    clients: dict[str, ClientEntry]
    new_tokens: dict[str, str]
    rollout: TokensRolloutResult | None
    deployment: str  # "completed", "started", "unchanged", "not rolled out", "not completed: ..."

    def summary(self, show_tokens: bool) -> dict[str, Any]:
        report: dict[str, Any] = {
            "action": self.action,
            "secret_arn": self.secret_arn,
            "secret_version": self.version_id,
            "clients": {
                name: {"valid_tokens": len(entry.credentials), "max_sessions": entry.max_sessions}
                for name, entry in sorted(self.clients.items())
            },
            "deployment": self.deployment,
            "rollout": self.rollout.as_dict() if self.rollout else None,
        }
        if show_tokens and self.new_tokens:
            report["new_tokens"] = self.new_tokens
        return report


def apply_change(
    sm: SecretsManagerClient,
    ecs: ECSClient | None,
    settings: RolloutSettings | None,
    action: str,
    make_change: Callable[[dict[str, ClientEntry]], Change],
    *,
    secret_arn: str | None = None,
    log: Callable[[str], None] | None = None,
) -> Outcome:
    """Read the table the service runs, change it, write a version, roll the service onto it.

    ``ecs``/``settings`` None: write only (``--no-rollout``: e.g. the first clients before the
    service exists; a task started later reads the secret's current version).
    """
    say = log or (lambda message: print(message, file=sys.stderr))
    ref: SecretRef
    if ecs is not None and settings is not None:
        service = describe_service(ecs, settings.cluster, settings.service)
        definition, _ = describe_task_definition(ecs, str(service["taskDefinition"]))
        ref = tokens_secret(definition, settings.container_name)
        if secret_arn is not None and secret_arn != ref.arn:
            raise TokensError(f"the service reads its tokens from {ref.arn}, not {secret_arn}")
    elif secret_arn is not None:
        ref = SecretRef(secret_arn)
    else:
        raise TokensError("without a service to roll, give --secret-arn")
    current = current_version(sm, ref.arn)
    if ref.version_id and current and current != ref.version_id:
        say(
            f"note: the service runs secret version {ref.version_id}, AWSCURRENT is {current} "
            "(a rolled-back rotation?); the change starts from what the service runs"
        )
    current_clients = read_table(read_secret(sm, ref))
    change = make_change(current_clients)
    if change.clients == current_clients and not change.new_tokens:
        say("nothing to change: no version written, the service is left as it is")
        return Outcome(action, ref.arn, ref.version_id or current, change.clients, {}, None, "unchanged")
    text = render_table(change.clients)
    version = write_secret(sm, ref.arn, text)
    say(f"wrote version {version} of {ref.arn} ({len(change.clients)} clients)")
    if ecs is None or settings is None:
        return Outcome(action, ref.arn, version, change.clients, change.new_tokens, None, "not rolled out")
    result = roll_out_client_tokens(ecs, settings, version, secret_arn=ref.arn)
    say(f"service {settings.service}: {result.status} ({result.reason}) → {result.task_definition_arn}")
    deployment = "started" if result.status == "started" else "unchanged"
    return Outcome(action, ref.arn, version, change.clients, change.new_tokens, result, deployment)


def finish_deployment(
    ecs: ECSClient,
    settings: RolloutSettings,
    outcome: Outcome,
    timeout_s: float,
    poll_s: float = 15.0,
    log: Callable[[str], None] | None = None,
) -> bool:
    """Wait until the rollout's deployment completed (every old task drained); False if it did not."""
    say = log or (lambda message: print(message, file=sys.stderr))
    if outcome.rollout is None or outcome.rollout.status != "started":
        return True
    say(f"waiting up to {timeout_s:.0f} s for the deployment to complete (old tasks drain first) ...")
    try:
        wait_for_deployment(ecs, settings, outcome.rollout.task_definition_arn, timeout_s, poll_s)
    except DeploymentFailedError as error:
        outcome.deployment = f"not completed: {error}"
        say(f"deployment {outcome.deployment}")
        return False
    outcome.deployment = "completed"
    return True


def list_clients(sm: SecretsManagerClient, ecs: ECSClient, settings: RolloutSettings) -> dict[str, Any]:
    service = describe_service(ecs, settings.cluster, settings.service)
    definition, _ = describe_task_definition(ecs, str(service["taskDefinition"]))
    ref = tokens_secret(definition, settings.container_name)
    clients = read_table(read_secret(sm, ref))
    return {
        "secret_arn": ref.arn,
        "service_runs_version": ref.version_id or "AWSCURRENT at task start",
        "awscurrent_version": current_version(sm, ref.arn),
        "task_definition": definition.get("taskDefinitionArn"),
        "clients": {
            name: {"valid_tokens": len(entry.credentials), "max_sessions": entry.max_sessions}
            for name, entry in sorted(clients.items())
        },
    }


def _write_tokens_file(path: Path, tokens: dict[str, str]) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(tokens, handle, indent=1)
        handle.write("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.tokens", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["list", "add", "rotate", "retire-previous", "limit", "remove"])
    parser.add_argument("--client", action="append", help="client name (repeat for several)")
    parser.add_argument("--max-sessions", type=int, help="add/limit: concurrent sessions per task (0: none)")
    parser.add_argument("--revoke-previous", action="store_true", help="rotate: old token invalid at once")
    parser.add_argument("--env", default="dev", help="read cluster/service from /ezspeech/<env>/... in SSM")
    parser.add_argument("--cluster", help="ECS cluster (default: SSM cluster-name)")
    parser.add_argument("--service", help="ECS service (default: SSM service-name)")
    parser.add_argument("--container", default="asr-server", help="container that reads AUTH_TOKENS")
    parser.add_argument("--secret-arn", help="the client-tokens secret (default: the one the service reads)")
    parser.add_argument("--no-rollout", action="store_true", help="write the secret only (+ --secret-arn)")
    parser.add_argument("--no-wait", action="store_true", help="return once the deployment has started")
    parser.add_argument("--timeout", type=float, default=DEFAULT_WAIT_S, help="seconds to wait for it")
    parser.add_argument("--out", type=Path, help="write the new tokens to this file (0600), not stdout")
    args = parser.parse_args(argv)
    names: list[str] | None = args.client
    if args.action in ("add", "limit", "remove") and (not names or len(names) != 1):
        parser.error(f"{args.action} needs exactly one --client")
    if args.action == "limit" and args.max_sessions is None:
        parser.error("limit needs --max-sessions")
    if args.max_sessions is not None and args.max_sessions < 0:
        parser.error("--max-sessions must be >= 0")
    if args.no_rollout and not args.secret_arn:
        parser.error("--no-rollout needs --secret-arn")
    changes = {
        "add": lambda c: add_client(c, names[0], args.max_sessions),  # type: ignore[index]
        "rotate": lambda c: rotate(c, names, keep_previous=not args.revoke_previous),
        "retire-previous": lambda c: retire_previous(c, names),
        "limit": lambda c: set_limit(c, names[0], args.max_sessions),  # type: ignore[index]
        "remove": lambda c: remove_client(c, names[0]),  # type: ignore[index]
    }
    try:
        sm = boto3.client("secretsmanager", config=RETRY_CONFIG)
        ecs = None if args.no_rollout else boto3.client("ecs", config=RETRY_CONFIG)
        settings = None
        if ecs is not None:
            ssm = boto3.client("ssm", config=RETRY_CONFIG)
            settings = RolloutSettings(
                cluster=args.cluster or from_ssm(ssm, args.env, "cluster-name"),
                service=args.service or from_ssm(ssm, args.env, "service-name"),
                container_name=args.container,
            )
        if args.action == "list":
            if ecs is None or settings is None:
                parser.error("list reads the service's task definition; drop --no-rollout")
            print(json.dumps(list_clients(sm, ecs, settings), indent=2))
            return 0
        outcome = apply_change(
            sm, ecs, settings, args.action, changes[args.action], secret_arn=args.secret_arn
        )
    except (TokensError, AutomationError, MissingNameError, BotoCoreError, ClientError) as error:
        print(f"{args.action}: {error}", file=sys.stderr)
        return 1
    # The new version is written: its tokens are shown whatever happens to the deployment.
    if args.out and outcome.new_tokens:
        _write_tokens_file(args.out, outcome.new_tokens)
        print(f"new tokens written to {args.out} (shown nowhere else)", file=sys.stderr)
    completed = True
    if ecs is not None and settings is not None and not args.no_wait:
        try:
            completed = finish_deployment(ecs, settings, outcome, args.timeout)
        except (AutomationError, BotoCoreError, ClientError) as error:
            outcome.deployment = f"unknown: {error}"
            completed = False
    print(json.dumps(outcome.summary(show_tokens=args.out is None), indent=2))
    return 0 if completed else 1


if __name__ == "__main__":
    sys.exit(main())
