"""Server settings: one frozen dataclass built from environment variables and CLI flags.

Every setting has an env var (the container contract, DESIGN.md) and a CLI flag (the seed's
``--model-path --config-path --config-name --host --port --health-port`` among them); a flag wins
over its env var. Values are validated here, once, so a bad deployment fails at start with one
clear message instead of misbehaving later.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from asr_service.auth import AuthConfigError, ClientTable, parse_client_tokens

if TYPE_CHECKING:
    from asr_service.decoding.chunked import ChunkedSettings

DEFAULT_DRAIN_TIMEOUT_S = 90.0  # below ECS's maximum 120 s stop timeout, leaving room to exit


class SettingsError(ValueError):
    """A setting is missing, malformed or out of range."""


@dataclass(frozen=True)
class Settings:
    model_uri: str | None = None
    model_sha256: str | None = None
    model_path: str | None = None
    model_cache_dir: str = "/tmp/asr-models"  # noqa: S108 - a cache, the file is verified by hash
    config_path: str = "/app/config"
    config_name: str = "ctc_sc"
    host: str = "0.0.0.0"  # noqa: S104 - a container listens on all interfaces
    port: int = 8765
    health_port: int = 8080
    log_level: str = "INFO"
    device: str = "auto"
    torch_threads: int = 0
    max_sessions: int = 64
    max_message_bytes: int = 1 << 20
    max_backlog_s: float = 5.0
    idle_timeout_s: float = 30.0
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 20.0
    #: The named clients (AUTH_TOKENS, asr_service.auth). A tuple of plain tokens is accepted too.
    auth_tokens: ClientTable = field(default_factory=ClientTable, repr=False)
    require_auth: bool = False
    drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S
    batch_max_size: int = 32
    batch_max_wait_ms: float = 50.0
    endpoint_silence_ms: float = 600.0
    retry_after_s: int = 5
    service_name: str = "asr-server"
    emf_interval_s: float = 60.0
    ui_enabled: bool = True
    # Golden-set gate (asr_service/golden.py): off unless GOLDEN_SET is given, so a task without a
    # golden set starts as fast as before.
    golden_set: str | None = None
    golden_max_wer: float = 0.2
    #: Who decodes finals of a model with a word LM: flashlight-text's native search, or the Python
    #: one; ``auto`` takes the native one when flashlight-text imports.
    word_decoder: str = "auto"
    #: Server processes in one task (``asr_service.workers``): ``auto`` = one per usable core on CPU,
    #: 1 on CUDA; ``1`` = the single-process server.
    workers: str = "auto"
    #: How a full-context model (EzSpeech's Conformer) streams: ``chunked`` windows of fixed cost
    #: or the ``growing-window`` re-decode (asr_service.decoding). Streaming models ignore it.
    full_context_strategy: str = "chunked"
    #: The chunked windows (asr_service.decoding.chunked.ChunkedSettings; same defaults, tested).
    chunked_chunk_s: float = 1.6
    chunked_left_s: float = 1.6
    chunked_right_s: float = 1.2
    #: The number format the model computes in (asr_service.model.precision): float32, or
    #: float16/bfloat16 for a model that supports it (the EzSpeech Conformer), meant for GPUs.
    model_dtype: str = "float32"

    def __post_init__(self) -> None:
        tokens: object = self.auth_tokens
        if isinstance(tokens, str):  # AUTH_TOKENS text (a str is not a sequence of one-letter tokens)
            object.__setattr__(self, "auth_tokens", parse_client_tokens(tokens))
        elif not isinstance(tokens, ClientTable):  # tests and callers may pass plain tokens
            object.__setattr__(self, "auth_tokens", ClientTable.from_tokens(tokens))  # type: ignore[arg-type]

    @property
    def auth_enabled(self) -> bool:
        return bool(self.auth_tokens)


# name, env var, CLI flags, parser, help. Order = order in --help and in the README table.
_Spec = tuple[str, str, tuple[str, ...], Any, str]
_SPECS: tuple[_Spec, ...] = (
    ("model_uri", "MODEL_URI", ("--model-uri",), str, "s3://bucket/key?versionId=V or a local path"),
    ("model_sha256", "MODEL_SHA256", ("--model-sha256",), str, "expected SHA-256 of the model file"),
    ("model_path", "MODEL_PATH", ("--model-path",), str, "local checkpoint (default: demo model)"),
    ("model_cache_dir", "MODEL_CACHE_DIR", ("--model-cache-dir",), str, "where S3 models are saved"),
    ("config_path", "CONFIG_PATH", ("--config-path",), str, "seed compatibility (EzSpeech)"),
    ("config_name", "CONFIG_NAME", ("--config-name",), str, "seed compatibility (EzSpeech)"),
    ("host", "SERVER_HOST", ("--host",), str, "WebSocket listen address"),
    ("port", "SERVER_PORT", ("--port",), int, "WebSocket port (0 = any free port)"),
    ("health_port", "HEALTH_PORT", ("--health-port",), int, "HTTP /health /ready /metrics port"),
    ("log_level", "LOG_LEVEL", ("--log-level",), str, "DEBUG, INFO, WARNING or ERROR"),
    ("device", "DEVICE", ("--device",), str, "auto, cpu, cuda or cuda:N"),
    (
        "torch_threads",
        "TORCH_THREADS",
        ("--torch-threads",),
        int,
        "intra-op threads (0: 1 on CPU, default on GPU)",
    ),
    ("max_sessions", "MAX_SESSIONS", ("--max-sessions",), int, "concurrent sessions before 503/1013"),
    ("max_message_bytes", "MAX_MESSAGE_BYTES", ("--max-message-bytes",), int, "largest message (1009)"),
    ("max_backlog_s", "MAX_BACKLOG_S", ("--max-backlog-s",), float, "unprocessed audio per stream"),
    ("idle_timeout_s", "IDLE_TIMEOUT_S", ("--idle-timeout-s",), float, "close a silent client after"),
    ("ping_interval_s", "PING_INTERVAL_S", ("--ping-interval-s",), float, "keepalive ping interval"),
    ("ping_timeout_s", "PING_TIMEOUT_S", ("--ping-timeout-s",), float, "keepalive pong deadline"),
    (
        "auth_tokens",
        "AUTH_TOKENS",
        ("--auth-tokens",),
        str,
        "client tokens: JSON {name: token|sha256:hex} or comma-separated",
    ),
    (
        "require_auth",
        "REQUIRE_AUTH",
        ("--require-auth",),
        "bool",
        "refuse to start without client tokens",
    ),
    ("drain_timeout_s", "DRAIN_TIMEOUT_S", ("--drain-timeout-s",), float, "SIGTERM drain budget"),
    ("batch_max_size", "BATCH_MAX_SIZE", ("--batch-max-size",), int, "streams per batched forward"),
    ("batch_max_wait_ms", "BATCH_MAX_WAIT_MS", ("--batch-max-wait-ms",), float, "wait to fill a batch"),
    ("endpoint_silence_ms", "ENDPOINT_SILENCE_MS", ("--endpoint-silence-ms",), float, "silence → final"),
    ("retry_after_s", "RETRY_AFTER_S", ("--retry-after-s",), int, "Retry-After on a 503 handshake"),
    ("service_name", "SERVICE_NAME", ("--service-name",), str, "ServiceName dimension of EMF metrics"),
    ("emf_interval_s", "EMF_INTERVAL_S", ("--emf-interval-s",), float, "EMF metrics line interval"),
    ("ui_enabled", "UI_ENABLED", ("--ui-enabled",), "bool", "browser page at GET / (health port)"),
    (
        "golden_set",
        "GOLDEN_SET",
        ("--golden-set",),
        str,
        "golden set checked before /ready: a directory or s3://bucket/prefix/?versionId=V",
    ),
    ("golden_max_wer", "GOLDEN_MAX_WER", ("--golden-max-wer",), float, "highest golden-set WER (0..1)"),
    (
        "word_decoder",
        "WORD_DECODER",
        ("--word-decoder",),
        str,
        "finals of a model with a word LM: native (flashlight-text), python, or auto (native if installed)",
    ),
    (
        "workers",
        "WORKERS",
        ("--workers",),
        str,
        "server processes sharing the port: auto (one per usable core on CPU, 1 on CUDA) or N",
    ),
    (
        "full_context_strategy",
        "FULL_CONTEXT_STRATEGY",
        ("--full-context-strategy",),
        str,
        "how full-context models stream: chunked (bounded cost) or growing-window",
    ),
    (
        "chunked_chunk_s",
        "CHUNKED_CHUNK_S",
        ("--chunked-chunk-s",),
        float,
        "chunked: audio committed per decode",
    ),
    ("chunked_left_s", "CHUNKED_LEFT_S", ("--chunked-left-s",), float, "chunked: left context seconds"),
    ("chunked_right_s", "CHUNKED_RIGHT_S", ("--chunked-right-s",), float, "chunked: right context seconds"),
    (
        "model_dtype",
        "MODEL_DTYPE",
        ("--model-dtype",),
        str,
        "float32, or float16/bfloat16 for the EzSpeech Conformer on a GPU",
    ),
)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
WORD_DECODERS = ("auto", "native", "python")
#: MODEL_DTYPE values, each a torch dtype's name (asr_service.model.precision).
MODEL_DTYPES = ("float32", "float16", "bfloat16")
_BOOLEANS = {"true": True, "1": True, "yes": True, "on": True}
_BOOLEANS.update({"false": False, "0": False, "no": False, "off": False})


def settings_table() -> list[tuple[str, str, str, str]]:
    """(env var, flag, default, help) rows: the README's configuration table is built from this."""
    defaults = Settings()
    rows = []
    for name, env, flags, _parse, help_text in _SPECS:
        value = getattr(defaults, name)
        shown = "" if isinstance(value, ClientTable) else value
        rows.append((env, flags[0], "" if shown is None else str(shown), help_text))
    return rows


def _parse_value(name: str, source: str, raw: str, parse: Any) -> Any:
    if name == "auth_tokens":
        try:
            return parse_client_tokens(raw)
        except AuthConfigError as error:  # its message names the client, never a token
            raise SettingsError(f"{source}: {error}") from None
    if parse == "bool":
        if raw.strip().lower() in _BOOLEANS:
            return _BOOLEANS[raw.strip().lower()]
        raise SettingsError(f"{source} must be true or false (also 1/0, yes/no, on/off), got {raw!r}")
    try:
        return parse(raw)
    except ValueError:
        kind = "an integer" if parse is int else "a number" if parse is float else "text"
        # The value itself is shown except for secrets; none of these parse paths carry tokens.
        raise SettingsError(f"{source} must be {kind}, got {raw!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m asr_service",
        description="Streaming speech-recognition server (WebSocket + HTTP health/metrics).",
    )
    for name, env, flags, _parse, help_text in _SPECS:
        parser.add_argument(*flags, dest=name, default=None, help=f"{help_text} [env {env}]")
    return parser


def load_settings(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``environ`` (default: os.environ) overridden by ``argv`` flags; validated."""
    env = os.environ if environ is None else environ
    args = build_parser().parse_args(list(argv) if argv is not None else [])
    values: dict[str, Any] = {}
    for name, env_name, flags, parse, _help in _SPECS:
        flag_value = getattr(args, name)
        if flag_value is not None:
            values[name] = _parse_value(name, flags[0], flag_value, parse)
        elif env.get(env_name, "") != "":
            values[name] = _parse_value(name, env_name, env[env_name], parse)
    if "log_level" in values:
        values["log_level"] = values["log_level"].upper()
    settings = Settings(**values)
    validate(settings)
    return settings


def validate(settings: Settings) -> None:
    """Raise SettingsError naming the first bad setting."""
    for name in ("port", "health_port"):
        value = getattr(settings, name)
        if not 0 <= value <= 65535:
            raise SettingsError(f"{name} must be a port number 0..65535, got {value}")
    if settings.port != 0 and settings.port == settings.health_port:
        raise SettingsError(f"port and health_port must differ, both are {settings.port}")
    level = settings.log_level.upper()
    if level not in LOG_LEVELS:
        raise SettingsError(f"log_level must be one of {', '.join(LOG_LEVELS)}, got {settings.log_level!r}")
    device = settings.device
    if not (device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit())):
        raise SettingsError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    positive = (
        "max_sessions",
        "max_message_bytes",
        "max_backlog_s",
        "idle_timeout_s",
        "ping_interval_s",
        "ping_timeout_s",
        "drain_timeout_s",
        "batch_max_size",
        "endpoint_silence_ms",
        "emf_interval_s",
    )
    for name in positive:
        if getattr(settings, name) <= 0:
            raise SettingsError(f"{name} must be > 0, got {getattr(settings, name)}")
    for name in ("torch_threads", "batch_max_wait_ms", "retry_after_s"):
        if getattr(settings, name) < 0:
            raise SettingsError(f"{name} must be >= 0, got {getattr(settings, name)}")
    if settings.model_sha256 is not None:
        digest = settings.model_sha256.lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise SettingsError("model_sha256 must be 64 hexadecimal characters")
    if settings.model_uri is not None and settings.model_uri.startswith("s3://"):
        rest = settings.model_uri[5:]
        if "/" not in rest or rest.startswith("/") or rest.endswith("/"):
            raise SettingsError(f"MODEL_URI must look like s3://bucket/key, got {settings.model_uri!r}")
    if settings.word_decoder not in WORD_DECODERS:
        raise SettingsError(
            f"word_decoder must be one of {', '.join(WORD_DECODERS)}, got {settings.word_decoder!r}"
        )
    if settings.model_dtype not in MODEL_DTYPES:
        raise SettingsError(
            f"MODEL_DTYPE must be one of {', '.join(MODEL_DTYPES)}, got {settings.model_dtype!r}"
        )
    # Imported here: the decoding package pulls in torch, which argument parsing does not need.
    from asr_service.decoding.selection import FULL_CONTEXT_STRATEGIES

    if settings.full_context_strategy not in FULL_CONTEXT_STRATEGIES:
        raise SettingsError(
            f"FULL_CONTEXT_STRATEGY must be one of {', '.join(FULL_CONTEXT_STRATEGIES)}, "
            f"got {settings.full_context_strategy!r}"
        )
    try:
        chunked_settings(settings)
    except ValueError as error:
        raise SettingsError(f"CHUNKED_CHUNK_S / CHUNKED_LEFT_S / CHUNKED_RIGHT_S: {error}") from None

    if settings.word_decoder == "native" and not _native_decoder_available():
        raise SettingsError(
            "WORD_DECODER is native but flashlight-text does not import here "
            "(pip install -r requirements/service.txt), or choose python"
        )
    if settings.workers != "auto" and not (settings.workers.isdigit() and 1 <= int(settings.workers) <= 256):
        raise SettingsError(f"workers must be auto or a number 1..256, got {settings.workers!r}")
    if not settings.service_name:
        raise SettingsError("service_name must not be empty")
    if not 0 <= settings.golden_max_wer <= 1:
        raise SettingsError(f"golden_max_wer must be a WER fraction 0..1, got {settings.golden_max_wer}")
    if (
        settings.golden_set
        and settings.golden_set.startswith("s3://")
        and "versionId=" not in settings.golden_set
    ):
        raise SettingsError(
            "GOLDEN_SET must pin a version: s3://bucket/prefix/?versionId=V "
            "(make upload-model GOLDEN=... prints it)"
        )
    if settings.require_auth and not settings.auth_enabled:
        raise SettingsError(
            "REQUIRE_AUTH is true but AUTH_TOKENS holds no client token: the service would be open to "
            "anyone. In AWS, ECS injects AUTH_TOKENS from the client-tokens secret; give it clients "
            "with `make rotate-tokens ENV=<env> ADD=<client>`"
        )


def _native_decoder_available() -> bool:
    # Imported only when asked: the model package pulls in torch, which settings parsing (and a
    # supervisor of worker processes, which never runs a model) does not need.
    from asr_service.model.native_lexicon import native_available

    return native_available()


def resolve_workers(settings: Settings, cuda_available: Callable[[], bool]) -> int:
    """How many server processes ``WORKERS`` asks for on this machine.

    ``auto``: one per core this process may run on (``sched_getaffinity``, which honours a
    container's cpuset) on CPU; on CUDA one, since the processes would share one GPU and how many
    pay off there is unmeasured (README "Worker processes"). ``cuda_available`` is asked only
    when ``DEVICE`` leaves it open, so a CPU task never imports torch here.
    """
    if settings.workers != "auto":
        return int(settings.workers)
    device = settings.device
    on_cuda = device.startswith("cuda") or (device == "auto" and cuda_available())
    return 1 if on_cuda else max(1, len(os.sched_getaffinity(0)))


def chunked_settings(settings: Settings) -> ChunkedSettings:
    """The chunked strategy's window from the server settings (ValueError when out of range)."""
    from asr_service.decoding.chunked import ChunkedSettings

    return ChunkedSettings(
        chunk_s=settings.chunked_chunk_s, left_s=settings.chunked_left_s, right_s=settings.chunked_right_s
    )
