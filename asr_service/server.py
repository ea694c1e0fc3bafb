"""The service: model loading, the WebSocket listener, the health port, signals and drain.

Start order matters for the container contract: the health port comes up first (``/health``
200, ``/ready`` 503), then the model is fetched, verified, loaded and warmed up in a worker
thread, then (with ``GOLDEN_SET``) it must pass its golden set (``asr_service/golden.py``), and
only then does ``/ready`` turn 200. On SIGTERM ``/ready`` turns 503, new
handshakes get 503, every open stream gets its final result and a 1001 close, and the process
exits 0 inside ``DRAIN_TIMEOUT_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, TypeVar

import torch
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from asr_service.connection import websocket_options
from asr_service.engine import BatchingEngine, resolve_device
from asr_service.golden import GoldenSetError, run_golden_gate
from asr_service.http import HttpServer, add_health_routes
from asr_service.logging_setup import get_logger
from asr_service.metrics import ServiceMetrics, current_value
from asr_service.model.interface import AcousticModel
from asr_service.session import Session
from asr_service.settings import Settings, chunked_settings
from asr_service.ui.routes import add_ui_routes, page_config_of

log = get_logger(component="server")

T = TypeVar("T")

_LOOP_LAG_INTERVAL_S = 0.05


class StartupError(RuntimeError):
    """The service cannot start (model missing, bad checksum, unsupported model, ...)."""


def load_configured_model(settings: Settings, device: torch.device) -> tuple[AcousticModel, dict[str, Any]]:
    """MODEL_URI / MODEL_PATH / the demo model → verified, loaded model (runs in a thread)."""
    from asr_service.model.checkpoint import load_checkpoint
    from asr_service.model.precision import apply_model_dtype
    from asr_service.model_fetch import resolve_model

    resolved = resolve_model(
        settings.model_uri, settings.model_path, settings.model_sha256, settings.model_cache_dir
    )
    loaded = load_checkpoint(resolved.path, device=device, word_decoder=settings.word_decoder)
    apply_model_dtype(loaded.module, settings.model_dtype, loaded.arch)
    info = {
        "model_source": resolved.source,
        "model_sha256": resolved.sha256,
        "model_arch": loaded.arch,
        "model_parameters": loaded.num_parameters,
        "model_dtype": settings.model_dtype,
        # Which search decodes finals: "native" or "python"; None for a model without a word LM.
        "word_decoder": loaded.word_decoder.name if loaded.word_decoder is not None else None,
    }
    return loaded.model, info


class AsrServer:
    #: The log line that says the service takes traffic (the bench and tests wait for it).
    READY_EVENT = "server_ready"

    def __init__(
        self,
        settings: Settings,
        model_loader: Callable[[Settings, torch.device], tuple[AcousticModel, dict[str, Any]]] | None = None,
    ) -> None:
        self.settings = settings
        self._model_loader = model_loader or load_configured_model
        self.metrics = ServiceMetrics()
        self.http = HttpServer()
        add_health_routes(self.http, self)
        if settings.ui_enabled:
            add_ui_routes(self.http, lambda: page_config_of(self))
        self.sessions: set[Session] = set()
        self.sessions_changed = asyncio.Event()  # set whenever a session ends (drain waits on it)
        self.engine: BatchingEngine
        self.device = torch.device("cpu")
        self.model_info: dict[str, Any] = {}
        self.ready = False
        self.draining = False
        self._drain_requested = asyncio.Event()
        self._drain_started: asyncio.Future[None] | None = None
        self._ws_server: Server | None = None
        self._background: list[asyncio.Task[None]] = []
        self.ws_port = 0
        self.health_port = 0

    # ------------------------------------------------------------------ status (http.ServiceStatus)
    def is_ready(self) -> bool:
        return self.ready and not self.draining

    def readiness(self) -> dict[str, Any]:
        state = "draining" if self.draining else "ready" if self.ready else "starting"
        return {
            "status": state,
            "model_loaded": self.ready or self.draining,
            "active_sessions": len(self.sessions),
        }

    def metrics_json(self) -> dict[str, Any]:
        engine_ready = hasattr(self, "engine")
        return {
            "uptime_seconds": round(time.time() - self.metrics.started_at, 3),
            "device": str(self.device),
            "request_count": int(current_value(self.metrics.requests)),
            "sample_rate": self.engine.sample_rate if engine_ready else None,
            "chunk_duration": round(self.engine.chunk_duration_s, 4) if engine_ready else None,
            "model_loaded": engine_ready,
            "ready": self.is_ready(),
            "draining": self.draining,
            "active_sessions": len(self.sessions),
            "max_sessions": self.settings.max_sessions,
            "rejected_sessions": int(self.metrics.rejected_total()),
            "audio_seconds": round(current_value(self.metrics.audio_seconds), 3),
            "decode_strategy": self.engine.strategy_name if engine_ready else None,
            "batch_max_size": self.settings.batch_max_size,
            "batches_run": self.engine.batches_run if engine_ready else 0,
            "event_loop_lag": self.metrics.loop_lag_summary(),
            **self.model_info,
        }

    # ------------------------------------------------------------------ start
    async def start(self) -> None:
        """Health port first, then model, warm-up, WebSocket listener; returns once ready."""
        await self._start_health()
        try:
            self.device = resolve_device(self.settings.device)
            # One intra-op thread on CPU by default: the engine batches, so one core is enough for
            # the model, the event loop keeps the other, and OpenMP threads spinning against each
            # other on a busy 2-core box cost far more than they give (measured: 8x slower).
            threads = self.settings.torch_threads or (1 if self.device.type == "cpu" else 0)
            if threads:
                torch.set_num_threads(threads)
            model, info = await asyncio.to_thread(self._model_loader, self.settings, self.device)
            engine = BatchingEngine(
                model,
                self.device,
                max_batch_size=self.settings.batch_max_size,
                max_wait_s=self.settings.batch_max_wait_ms / 1000,
                endpoint_silence_s=self.settings.endpoint_silence_ms / 1000,
                on_batch=self._on_batch,
                full_context_strategy=self.settings.full_context_strategy,
                chunked_settings=chunked_settings(self.settings),
            )
            started = time.perf_counter()
            await asyncio.to_thread(engine.warm_up)
            warm_up_s = time.perf_counter() - started
        except Exception as error:
            raise StartupError(f"{type(error).__name__}: {error}") from error
        self.engine = engine
        self.model_info = info
        self.metrics.info.info(
            {
                "decode_strategy": engine.strategy_name,
                "device": str(self.device),
                "sample_rate": str(engine.sample_rate),
                "model_sha256": str(info.get("model_sha256", "")),
            }
        )
        engine.start()
        await self._listen()
        # Golden-set gate: the last check before /ready, so a model that loads but recognizes badly
        # never takes traffic; raises GoldenSetError to exit.
        self.model_info.update(
            await run_golden_gate(
                self.settings, engine, str(info.get("model_sha256", "")), self.metrics.registry
            )
        )
        self.ready = True
        self.metrics.ready.set(1)
        log.info(
            self.READY_EVENT,
            ws_port=self.ws_port,
            health_port=self.health_port,
            device=str(self.device),
            decode_strategy=engine.strategy_name,
            chunk_s=engine.chunk_duration_s,
            warm_up_s=round(warm_up_s, 3),
            **self.model_info,
        )

    async def _start_health(self) -> None:
        """The health port and the background tasks (a worker process has neither: its parent does)."""
        self.health_port = await self.http.start(self.settings.host, self.settings.health_port)
        self._background.append(asyncio.create_task(self._watch_loop_lag(), name="loop-lag"))
        self._background.append(asyncio.create_task(self._emit_emf(), name="emf"))
        log.info("health_listening", health_port=self.health_port)

    async def _listen(self) -> None:
        self._ws_server = await serve(
            self._handle, self.settings.host, self.settings.port, **self.websocket_options()
        )
        self.ws_port = int(next(iter(self._ws_server.sockets)).getsockname()[1])

    def websocket_options(self) -> dict[str, Any]:
        """How every WebSocket connection is served (also the worker processes' connections)."""
        return websocket_options(self.settings, self._process_request)

    def _on_batch(self, size: int, seconds: float) -> None:  # engine thread; prometheus is thread-safe
        self.metrics.batch_size.observe(size)
        self.metrics.inference_seconds.observe(seconds)

    # ------------------------------------------------------------------ connections (session.SessionHost)
    def admission_refusal(self) -> str | None:
        """The one admission rule, for handshakes and for sessions; a refusal is counted."""
        if self.draining:
            reason = "draining"
        elif not self.ready:
            reason = "not_ready"
        elif (
            len(self.sessions) >= self.settings.max_sessions
            and self._live_sessions() >= self.settings.max_sessions
        ):
            reason = "max_sessions"
        else:
            return None
        self.metrics.reject(reason)
        return reason

    def _live_sessions(self) -> int:
        # At capacity only: do not refuse for sessions whose client is gone but not yet released.
        return sum(1 for session in self.sessions if not session.peer_gone())

    def sessions_of(self, client: str) -> int:
        return sum(1 for s in self.sessions if s.client is not None and s.client.name == client)

    def register(self, session: Session) -> None:
        self.sessions.add(session)
        self.metrics.sessions_active.inc()
        self.metrics.sessions_total.inc()

    def release(self, session: Session) -> None:
        if session in self.sessions:
            self.sessions.discard(session)
            self.metrics.sessions_active.dec()
            self.sessions_changed.set()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        reason = self.admission_refusal()
        if reason is None:
            return None
        if reason == "max_sessions":
            return self._unavailable(connection, "too many concurrent sessions\n")
        return self._unavailable(connection, f"server {reason.replace('_', ' ')}\n")

    def _unavailable(self, connection: ServerConnection, text: str) -> Response:
        response = connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, text)
        response.headers["Retry-After"] = str(self.settings.retry_after_s)
        return response

    async def _handle(self, connection: ServerConnection) -> None:
        await Session(connection, self).run()

    async def until_draining(self, awaitable: Awaitable[T]) -> T | None:
        """Await ``awaitable`` unless a drain starts first (then cancel it and return None)."""
        if self._drain_started is None:
            self._drain_started = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(awaitable)
        if self.draining:
            task.cancel()
            return None
        waiters: set[asyncio.Future[Any]] = {task, self._drain_started}
        try:
            done, _pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # e.g. the idle timeout: do not leave a reader behind
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task  # so the next recv() (closing handshake) is not a concurrent one
            raise
        if task in done:
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None

    # ------------------------------------------------------------------ drain and stop
    def request_drain(self) -> None:
        """Signal handler: begin the graceful drain (idempotent)."""
        self._drain_requested.set()

    async def wait_for_drain_request(self) -> None:
        await self._drain_requested.wait()

    async def drain(self) -> None:
        """Refuse new sessions, let every open one finish its final and close 1001, stop."""
        if self.draining:
            return
        self.draining = True
        self.metrics.ready.set(0)
        started = time.monotonic()
        open_sessions = len(self.sessions)
        log.info("drain_started", open_sessions=open_sessions, budget_s=self.settings.drain_timeout_s)
        if self._drain_started is None:
            self._drain_started = asyncio.get_running_loop().create_future()
        if not self._drain_started.done():
            self._drain_started.set_result(None)
        for session in list(self.sessions):  # a session waiting for its client's next message
            session.receiver.interrupt()
        # Leave a little of the budget to close the stragglers and exit.
        budget = max(0.5, self.settings.drain_timeout_s - 2.0)
        deadline = started + budget
        while self.sessions and (remaining := deadline - time.monotonic()) > 0:
            self.sessions_changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self.sessions_changed.wait()
        forced = len(self.sessions)
        if self._ws_server is not None:
            self._ws_server.close(close_connections=True, code=1001, reason="server draining")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._ws_server.wait_closed()
        log.info(
            "drain_finished",
            drained_sessions=open_sessions - forced,
            forced_sessions=forced,
            duration_s=round(time.monotonic() - started, 3),
        )
        await self.stop()

    async def stop(self) -> None:
        if self._ws_server is not None and self._ws_server.is_serving():
            self._ws_server.close()
            await self._ws_server.wait_closed()
        if hasattr(self, "engine"):
            await asyncio.to_thread(self.engine.stop)
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._background = []
        await self.http.stop()

    # ------------------------------------------------------------------ background tasks
    async def _watch_loop_lag(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + _LOOP_LAG_INTERVAL_S
            await asyncio.sleep(_LOOP_LAG_INTERVAL_S)
            self.metrics.observe_loop_lag(max(0.0, loop.time() - expected))

    async def _emit_emf(self) -> None:
        while True:
            await asyncio.sleep(self.settings.emf_interval_s)
            sys.stdout.write(self.metrics.emf_lines(self.settings.service_name) + "\n")
            sys.stdout.flush()


def _settle_garbage_collector() -> None:
    """Keep the cyclic collector off the hot path.

    Measured (py-spy --native, 40 streams): 10 % of the server's samples were ``gc_collect_main``,
    triggered by per-message allocations and walking everything torch and the model left on the
    heap. Objects alive once the model is loaded live as long as the process: ``gc.freeze`` moves
    them out of the collector's sight. Per-message garbage is freed by reference counting (it
    forms no cycles), so a higher first threshold costs no memory worth naming and collects
    far less often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


async def serve_forever(settings: Settings, server: AsrServer | None = None) -> int:
    """The process: start, serve until SIGTERM/SIGINT, drain. Returns the exit status."""
    server = server if server is not None else AsrServer(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.request_drain)
    try:
        start = asyncio.create_task(server.start())
        drain_wait = asyncio.create_task(server.wait_for_drain_request())
        done, _ = await asyncio.wait({start, drain_wait}, return_when=asyncio.FIRST_COMPLETED)
        if start not in done:  # SIGTERM while still loading: nothing to drain
            start.cancel()
            with contextlib.suppress(asyncio.CancelledError, StartupError):
                await start
            await server.stop()
            log.info("stopped_before_ready")
            return 0
        start.result()
        _settle_garbage_collector()  # the process's own choice: not in servers started by tests
    except StartupError as error:
        log.error("startup_failed", error=str(error))
        await server.stop()
        return 1
    except GoldenSetError as error:  # the gate logged golden_set_failed / golden_set_unreadable
        await server.stop()
        return error.exit_code
    await drain_wait
    await server.drain()
    log.info("server_stopped")
    return 0
