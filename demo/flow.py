"""The demo's plumbing: one run's state (moto, clients, tasks) and the real tools it drives.

The steps themselves are in ``demo.steps``. Everything is real except AWS itself: moto (server
mode, its own process) answers the AWS APIs and delivers S3 → EventBridge → SQS events; the
Lambda handlers, the upload tool, the ASR server and its client are the project's own code,
each started the way it runs in production.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asr_service.model_fetch import sha256_file
from demo.clients import EndpointClients
from demo.lambda_runner import Invocation, invoke
from demo.latency import LatencySummary
from demo.moto_server import FAKE_CREDENTIALS, MotoServer, environment_without_aws
from demo.narration import Narrator
from demo.provision import Stack
from demo.resources import (
    CONTAINER_NAME,
    ECS_DESIRED_DIMENSION,
    MODEL_KEY_PREFIX,
    StackNames,
)
from demo.task import (
    BackgroundStream,
    ClientRun,
    LocalTask,
    StopReport,
    Transcription,
    environment_at_task_start,
    run_client,
    transcribe,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL_KEY = f"{MODEL_KEY_PREFIX}asr/demo.pt"
EVENT_WAIT_S = 20.0


class DemoError(RuntimeError):
    """A step did not do what it must; the message says which and why."""


@dataclass(frozen=True)
class ModelVersion:
    """One uploaded object version: what a task definition pins."""

    key: str
    version_id: str
    sha256: str
    bucket: str
    golden_set: str = ""  # the pinned golden set uploaded with it (metadata golden-set), if any

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}?versionId={self.version_id}"


@dataclass(frozen=True)
class ObservedCapacity:
    """The scalable target's bounds and the service's desired count, as the demo reads them back."""

    min: int
    max: int
    desired: int

    def __str__(self) -> str:
        return f"min={self.min} max={self.max} desired={self.desired}"


@dataclass
class DemoResult:
    """What happened, for the summary and for the test's assertions."""

    clip: Path = Path()
    reference_text: str = ""
    models: dict[str, ModelVersion] = field(default_factory=dict)
    revisions: dict[str, str] = field(default_factory=dict)
    revision_env: dict[str, dict[str, str]] = field(default_factory=dict)
    transcripts: dict[str, str] = field(default_factory=dict)
    event_was_delivered_by_moto: bool = False
    duplicate_event_deployed_once: bool = False
    old_task_stop: StopReport | None = None
    live_stream_final: str = ""
    drained_sessions: int = 0
    corrupt_task_exit_code: int | None = None
    corrupt_task_log: list[str] = field(default_factory=list)
    golden_wer: dict[str, float] = field(default_factory=dict)  # per task label, from server_ready
    wrong_task_exit_code: int | None = None
    wrong_task_gate_line: dict[str, Any] = field(default_factory=dict)
    serving_after_wrong_rollout: bool = False
    service_revision_after_gate_rollback: str = ""
    serving_after_corrupt_rollout: bool = False
    service_revision_after_rollback: str = ""
    capacity: dict[str, ObservedCapacity] = field(default_factory=dict)
    alerts: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    latency: dict[str, LatencySummary] = field(default_factory=dict)
    tasks_left_running: int = -1
    work_dir: Path = Path()
    #: Client tokens: AUTH_TOKENS as the first task got it, the refused client, the rotation.
    first_task_auth_tokens: str = ""
    refused_client: ClientRun | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    token_revision_env: dict[str, str] = field(default_factory=dict)
    rotation: dict[str, Any] = field(default_factory=dict)
    #: deploy-image (demo/steps/image.py): the report, both revisions and images, the refusals.
    image_rollout: dict[str, Any] = field(default_factory=dict)


def short_arn(arn: str) -> str:
    """``arn:aws:ecs:...:task-definition/family:3`` → ``family:3``."""
    return arn.rsplit("/", 1)[-1]


class DemoRun:
    """State shared by the steps; ``close()`` stops every process the demo started."""

    def __init__(self, work_dir: Path, say: Narrator, names: StackNames | None = None) -> None:
        self.work_dir = work_dir
        self.say = say
        self.names = names or StackNames()
        self.result = DemoResult()
        self.moto = MotoServer(work_dir / "moto.log")
        self.aws: EndpointClients | None = None
        self.stack = Stack(names=self.names)
        self.tasks: list[LocalTask] = []
        self.serving: LocalTask | None = None
        self.last_event: dict[str, Any] = {}
        self.streams: list[BackgroundStream] = []
        #: The demo client's current token (the one `ops.tokens` showed once).
        self.token: str | None = None

    # ------------------------------------------------------------------ plumbing
    @property
    def platform_env(self) -> dict[str, str]:
        """What every process that talks to "AWS" gets: moto's address and fake credentials."""
        return {
            **FAKE_CREDENTIALS,
            "AWS_ENDPOINT_URL": self.moto.endpoint_url,
            "AWS_DEFAULT_REGION": self.names.region,
            "AWS_REGION": self.names.region,
        }

    def new_clients(self) -> EndpointClients:
        return EndpointClients(self.moto.endpoint_url, self.names.region, FAKE_CREDENTIALS)

    @property
    def clients(self) -> EndpointClients:
        if self.aws is None:
            raise DemoError("moto is not started")
        return self.aws

    def close(self) -> None:
        for stream in self.streams:
            stream.kill()
        for task in self.tasks:
            task.kill()
        self.moto.stop()
        self.result.tasks_left_running = sum(task.running() for task in self.tasks)

    def upload_model(
        self, path: Path, golden: Path | None = None, golden_max_wer: float | None = None
    ) -> ModelVersion:
        """The real ``make upload-model`` path: ``python -m ops.upload_model`` (sha256 metadata;
        with ``golden``, the golden set first and its pin as the model's metadata).

        The bucket is not passed: like against AWS, the tool reads it from the SSM parameter
        Terraform publishes (``/<project>/<env>/models-bucket``).
        """
        command = [sys.executable, "-m", "ops.upload_model", str(path), "--env", self.names.environment]
        if golden is not None:
            command += ["--golden", str(golden)]
        if golden_max_wer is not None:
            command += ["--golden-max-wer", str(golden_max_wer)]
        completed = subprocess.run(  # noqa: S603 - our own interpreter and module
            [*command, "--key", MODEL_KEY],
            capture_output=True,
            env={**environment_without_aws(), **self.platform_env, "PYTHONPATH": str(REPO_ROOT)},
            cwd=REPO_ROOT,
            timeout=120,
            check=False,
        )
        if completed.returncode != 0:
            raise DemoError(
                f"upload-model failed ({completed.returncode}): {completed.stderr.decode()[-800:]}"
            )
        uploaded = json.loads(completed.stdout.decode().strip().splitlines()[-1])
        # Trust, but verify: the object version carries the file's hash as metadata.
        head = self.clients.s3.head_object(
            Bucket=uploaded["bucket"], Key=uploaded["key"], VersionId=uploaded["version_id"]
        )
        expected = sha256_file(path)
        if head.get("Metadata", {}).get("sha256") != expected or uploaded["sha256"] != expected:
            raise DemoError(f"s3://{uploaded['bucket']}/{uploaded['key']} does not carry sha256 {expected}")
        return ModelVersion(
            key=uploaded["key"],
            version_id=uploaded["version_id"],
            sha256=expected,
            bucket=uploaded["bucket"],
            golden_set=uploaded.get("golden_set") or "",
        )

    def invoke(self, function: str, event: dict[str, Any]) -> Invocation:
        invocation = invoke(function, event, {**self.platform_env, **self.stack.lambda_environment(function)})
        if not invocation.ok:
            tail = "\n".join(invocation.logs.splitlines()[-15:])
            raise DemoError(f"{function} failed: {invocation.error}\n{tail}")
        return invocation

    def describe_service(self) -> dict[str, Any]:
        reply = self.clients.ecs.describe_services(cluster=self.names.cluster, services=[self.names.service])
        return dict(reply["services"][0])

    def service_task_definition(self) -> str:
        return str(self.describe_service()["taskDefinition"])

    def capacity(self) -> ObservedCapacity:
        target = self.clients.autoscaling.describe_scalable_targets(
            ServiceNamespace="ecs",
            ResourceIds=[self.names.scalable_resource_id],
            ScalableDimension=ECS_DESIRED_DIMENSION,
        )["ScalableTargets"][0]
        desired = self.describe_service()["desiredCount"]
        return ObservedCapacity(target["MinCapacity"], target["MaxCapacity"], desired)

    def wait_for_model_event(self, version_id: str) -> dict[str, Any]:
        """The "Object Created" event moto delivered to the rule's queue for this object version."""
        deadline = time.monotonic() + EVENT_WAIT_S
        sqs = self.clients.sqs
        while time.monotonic() < deadline:
            reply = sqs.receive_message(
                QueueUrl=self.stack.model_events_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            for message in reply.get("Messages", []):
                sqs.delete_message(
                    QueueUrl=self.stack.model_events_queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
                event: dict[str, Any] = json.loads(message["Body"])
                if event.get("detail", {}).get("object", {}).get("version-id") == version_id:
                    self.last_event = event
                    return event
        raise DemoError(
            f"moto delivered no 'Object Created' event for version {version_id} within {EVENT_WAIT_S:.0f} s"
        )

    def read_alerts(self) -> list[dict[str, str]]:
        """Messages published to the SNS topics since the last call, read back through the demo's
        SQS subscription (the SNS envelope keeps the subject)."""
        alerts: list[dict[str, str]] = []
        sqs = self.clients.sqs
        while True:
            # moto delivers SNS → SQS as it publishes: a short wait the first time is plenty.
            reply = sqs.receive_message(
                QueueUrl=self.stack.alerts_inbox_queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0 if alerts else 1,
            )
            messages = reply.get("Messages", [])
            if not messages:
                return alerts
            for message in messages:
                sqs.delete_message(
                    QueueUrl=self.stack.alerts_inbox_queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
                envelope = json.loads(message["Body"])
                alerts.append(
                    {"subject": envelope.get("Subject") or "", "message": envelope.get("Message", "")}
                )

    def start_task(self, label: str, task_definition_arn: str) -> LocalTask:
        env = environment_at_task_start(
            self.clients.ecs, task_definition_arn, CONTAINER_NAME, self.clients.secretsmanager
        )
        task = LocalTask(label, env, self.platform_env, self.work_dir / f"task-{label}")
        self.tasks.append(task)
        return task.start()

    def open_stream(self, task: LocalTask, clip: Path, token: str | None = None) -> BackgroundStream:
        stream = BackgroundStream(task.ws_url, clip, environment_without_aws(), token or self.token)
        self.streams.append(stream)
        return stream

    def transcribe(self, task: LocalTask, token: str | None = None) -> Transcription:
        return transcribe(task.ws_url, self.result.clip, environment_without_aws(), token=token or self.token)

    def try_client(self, task: LocalTask, token: str | None) -> ClientRun:
        """The real client with this token (None: none at all), whatever the outcome."""
        return run_client(task.ws_url, self.result.clip, environment_without_aws(), token)

    def tokens_tool(self, *args: str) -> dict[str, Any]:
        """The real `make rotate-tokens` path: ``python -m ops.tokens`` against moto. The cluster
        and service come from the SSM names Terraform publishes, as in AWS; --no-wait because the
        demo plays ECS's part (moto runs no deployments)."""
        completed = subprocess.run(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "ops.tokens", *args, "--env", self.names.environment, "--no-wait"],
            capture_output=True,
            env={**environment_without_aws(), **self.platform_env, "PYTHONPATH": str(REPO_ROOT)},
            cwd=REPO_ROOT,
            timeout=120,
            check=False,
        )
        if completed.returncode != 0:
            raise DemoError(f"ops.tokens {args[0]} failed: {completed.stderr.decode()[-800:]}")
        report: dict[str, Any] = json.loads(completed.stdout.decode())
        return report
