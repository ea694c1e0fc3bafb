"""The supervisor of a multi-worker task: the port, the health port, the workers' lives.

It owns the WebSocket listener and accepts every client itself, then hands the socket to the
worker with the fewest open connections (``__init__``'s docstring says why not ``SO_REUSEPORT``).
It keeps ``MAX_SESSIONS`` for the whole task: a worker about to accept a handshake asks it for a
slot (``reserve``), which it grants while the workers together hold fewer sessions than that; a
refused worker answers the handshake with today's 503. Slots count sessions, as in the single
process, not TCP connections: a client that never completes its handshake takes none. At
capacity, sessions whose client already left do not count, whichever worker holds them
(``tcp_table``: a busy worker tells of its closed connections late).

It serves ``/health``, ``/ready`` (200 only when every worker is
ready and none drains), ``/metrics`` (all workers added up, ``aggregate``) and writes the EMF
autoscaling line for the task.

A worker that dies after it was ready is logged (``worker_died``), counted
(``asr_worker_restarts_total``) and replaced; its clients' sockets die with it (a TCP close).
One that dies before it was ever ready is a failed start (bad model, golden set): the task
stops with its exit status, as the single process would. SIGTERM: ``/ready`` turns 503, every
worker drains (finals, 1001), the supervisor exits 0 once all have.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily

from asr_service.emf import dump, millis
from asr_service.http import PROMETHEUS_CONTENT_TYPE, HttpServer, Request, Response, wants_prometheus
from asr_service.logging_setup import get_logger
from asr_service.metrics import autoscaling_record
from asr_service.settings import Settings
from asr_service.ui.routes import add_ui_routes, page_config_of
from asr_service.workers import channel, tcp_table
from asr_service.workers.aggregate import AutoscalingDeltas, Snapshot, merge_json, merge_prometheus

log = get_logger(component="supervisor")

_SNAPSHOT_TIMEOUT_S = 2.0
_DRAIN_MARGIN_S = 5.0  # past the workers' own drain budget before they are killed


@dataclass(frozen=True)
class Handed:
    inode: int  # the socket's number in the kernel's table, the same in the worker
    at: float  # time.monotonic() of the hand-over


@dataclass
class Worker:
    index: int
    generation: int
    process: asyncio.subprocess.Process
    control: socket.socket
    ready: bool = False
    draining: bool = False
    ever_ready: bool = False
    #: handed connection ids not yet closed, each with its socket (``tcp_table``)
    connections: dict[int, Handed] = field(default_factory=dict)
    sessions: set[int] = field(default_factory=set)  # those of them holding a MAX_SESSIONS slot
    waiting: dict[int, asyncio.Future[Snapshot]] = field(default_factory=dict)
    model_info: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return int(self.process.pid)


class Supervisor:
    def __init__(self, settings: Settings, count: int, argv: list[str]) -> None:
        self.settings = settings
        self.count = count
        self._argv = argv
        self.workers: dict[int, Worker] = {}
        self.http = HttpServer()
        self.started_at = time.time()
        self.draining = False
        self.restarts = 0
        self.ws_port = 0
        self.health_port = 0
        self.exit_status: int | None = None
        self.model_info: dict[str, Any] = {}  # the workers' (one model file): logs, browser page
        self._generations = itertools.count()
        self._connection_ids = itertools.count()
        self._stop = asyncio.Event()
        self._all_ready = asyncio.Event()
        self._listener: socket.socket | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._emf = AutoscalingDeltas()
        self._sockets = tcp_table.CachedTable()
        self._routes()

    # ------------------------------------------------------------------ status
    def is_ready(self) -> bool:
        return (
            not self.draining
            and len(self.workers) == self.count
            and all(w.ready and not w.draining for w in self.workers.values())
        )

    def admitted(self) -> int:
        """Sessions holding a slot, all workers together."""
        return sum(len(w.sessions) for w in self.workers.values())

    def readiness(self) -> dict[str, Any]:
        state = "draining" if self.draining else "ready" if self.is_ready() else "starting"
        return {
            "status": state,
            "model_loaded": all(w.ever_ready for w in self.workers.values()) and bool(self.workers),
            "active_sessions": self.admitted(),
            "workers": [
                {
                    "index": w.index,
                    "pid": w.pid,
                    "ready": w.ready,
                    "draining": w.draining,
                    "connections": len(w.connections),
                    "sessions": len(w.sessions),
                }
                for w in sorted(self.workers.values(), key=lambda w: w.index)
            ],
        }

    # ------------------------------------------------------------------ start and run
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        self.health_port = await self.http.start(self.settings.host, self.settings.health_port)
        log.info("health_listening", health_port=self.health_port, workers=self.count)
        # Bound now (port 0 resolves, the workers learn it), listening once every worker is ready,
        # as the single process opens its port only when it can serve.
        listener = socket.socket(socket.AF_INET6 if ":" in self.settings.host else socket.AF_INET)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.settings.host, self.settings.port))
        listener.setblocking(False)
        self._listener = listener
        self.ws_port = int(listener.getsockname()[1])
        for index in range(self.count):
            await self._spawn(index)
        ready = asyncio.create_task(self._all_ready.wait())
        stop = asyncio.create_task(self._stop.wait())
        await asyncio.wait({ready, stop}, return_when=asyncio.FIRST_COMPLETED)
        if self._all_ready.is_set() and not self._stop.is_set():
            listener.listen(1024)
            self._tasks.append(asyncio.create_task(self._accept_loop(listener), name="accept"))
            self._tasks.append(asyncio.create_task(self._emit_emf(), name="emf"))
            log.info(
                "server_ready",
                ws_port=self.ws_port,
                health_port=self.health_port,
                workers=self.count,
                pids=[w.pid for w in self.workers.values()],
                **self.model_info,
            )
            await stop
        ready.cancel()
        await self._drain()
        return self.exit_status if self.exit_status is not None else 0

    async def _spawn(self, index: int) -> None:
        parent_end, child_end = channel.control_pair()
        env = {
            **os.environ,
            channel.CONTROL_FD_ENV: str(child_end.fileno()),
            channel.INDEX_ENV: str(index),
            channel.WS_PORT_ENV: str(self.ws_port),
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "asr_service.workers.worker",
            *self._argv,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            pass_fds=(child_end.fileno(),),
        )
        child_end.close()
        parent_end.setblocking(False)
        worker = Worker(index, next(self._generations), process, parent_end)
        self.workers[index] = worker
        asyncio.get_running_loop().add_reader(parent_end.fileno(), self._on_control, worker)
        self._tasks.append(asyncio.create_task(self._watch(worker), name=f"watch-{index}"))
        log.info("worker_started", worker=index, pid=worker.pid)

    async def _watch(self, worker: Worker) -> None:
        status = await worker.process.wait()
        self._forget(worker)
        if self.draining:
            log.info("worker_exited", worker=worker.index, pid=worker.pid, exit_status=status)
            return
        if not worker.ever_ready:  # a failed start: the task fails as the single process would
            log.error("worker_start_failed", worker=worker.index, pid=worker.pid, exit_status=status)
            self.exit_status = status if status > 0 else 1
            self._stop.set()
            return
        self.restarts += 1
        log.error(
            "worker_died",
            worker=worker.index,
            pid=worker.pid,
            exit_status=status,
            connections_lost=len(worker.connections),
            restarts=self.restarts,
        )
        await self._spawn(worker.index)

    def _forget(self, worker: Worker) -> None:
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(worker.control.fileno())
        worker.control.close()
        for waiter in worker.waiting.values():
            if not waiter.done():
                waiter.cancel()
        if self.workers.get(worker.index) is worker:
            del self.workers[worker.index]

    # ------------------------------------------------------------------ the channel
    def _on_control(self, worker: Worker) -> None:
        try:
            messages = channel.receive(worker.control)
        except channel.ChannelClosedError:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(worker.control.fileno())
            return  # _watch sees the exit
        for message, fd in messages:
            if fd is not None:
                os.close(fd)
            kind = message.get("t")
            if kind == "closed":
                worker.connections.pop(int(message["id"]), None)
                worker.sessions.discard(int(message["id"]))
            elif kind == "released":  # the session ended; its connection may linger a little
                worker.sessions.discard(int(message["id"]))
            elif kind == "reserve":
                self._reserve(worker, int(message["id"]), int(message.get("stale", 0)))
            elif kind == "state":
                worker.ready, worker.draining = bool(message["ready"]), bool(message["draining"])
                worker.ever_ready = worker.ever_ready or worker.ready
                worker.model_info = dict(message.get("model_info") or {})
                if worker.index == 0 or not self.model_info:  # worker 0 ran the golden-set gate
                    self.model_info = worker.model_info or self.model_info
                if self.is_ready():
                    self._all_ready.set()
            elif kind == "metrics":
                waiter = worker.waiting.pop(int(message["id"]), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(Snapshot.from_message(message))

    async def _accept_loop(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                client, _address = await loop.sock_accept(listener)
            except OSError as error:  # out of descriptors, a reset before accept: keep accepting
                log.warning("accept_failed", error=type(error).__name__)
                await asyncio.sleep(0.05)
                continue
            try:
                self._hand_over(client)
            finally:
                client.close()  # the worker holds its own copy now

    def _hand_over(self, client: socket.socket) -> None:
        """To the ready worker with the fewest connections; no worker ready: the client is closed."""
        candidates = [w for w in self.workers.values() if w.ready and not w.draining]
        if not candidates:  # all draining (they answer 503) or being replaced
            candidates = [w for w in self.workers.values() if w.ever_ready]
        if not candidates:
            return
        worker = min(candidates, key=lambda w: len(w.connections))
        connection_id = next(self._connection_ids)
        handed = Handed(tcp_table.socket_inode(client), time.monotonic())
        try:
            channel.send(worker.control, {"t": "conn", "id": connection_id}, client.fileno(), wait=False)
        except OSError as error:  # a stuck or dying worker: this client gets a close
            log.warning("hand_over_failed", worker=worker.index, error=type(error).__name__)
            return
        worker.connections[connection_id] = handed

    def _reserve(self, worker: Worker, connection_id: int, stale: int) -> None:
        """A worker asks for a MAX_SESSIONS slot before it accepts a handshake. ``stale``: its
        sessions whose client is already gone though not yet released (they do not count, as in
        the single process's rule at capacity). At capacity the kernel's socket table also
        counts the gone clients of every other worker, which may be too busy to have said so."""
        admitted = self.admitted()
        granted = admitted - stale < self.settings.max_sessions
        if not granted:
            granted = admitted - max(stale, self._gone_sessions()) < self.settings.max_sessions
        if granted and connection_id in worker.connections:
            worker.sessions.add(connection_id)
        with contextlib.suppress(OSError):
            channel.send(worker.control, {"t": "reserved", "id": connection_id, "ok": granted}, wait=False)

    def _gone_sessions(self) -> int:
        """Sessions of any worker whose client socket is closed, reset or half-closed by the peer
        (0 where the kernel's table cannot be read)."""
        live = self._sockets.live()
        if live is None:
            return 0
        read_at = self._sockets.read_at

        def gone(handed: Handed | None) -> bool:
            return handed is None or (handed.at < read_at and handed.inode not in live)

        return sum(1 for w in self.workers.values() for cid in w.sessions if gone(w.connections.get(cid)))

    # ------------------------------------------------------------------ metrics
    async def snapshots(self) -> dict[int, Snapshot]:
        """Every live worker's snapshot, keyed by its generation (a worker that does not answer
        in time is left out)."""
        loop = asyncio.get_running_loop()
        asked: dict[int, asyncio.Future[Snapshot]] = {}
        for worker in list(self.workers.values()):
            request_id = next(self._connection_ids)
            waiter: asyncio.Future[Snapshot] = loop.create_future()
            try:
                channel.send(worker.control, {"t": "metrics", "id": request_id}, wait=False)
            except OSError:
                continue
            worker.waiting[request_id] = waiter
            asked[worker.generation] = waiter
        if not asked:
            return {}
        await asyncio.wait(asked.values(), timeout=_SNAPSHOT_TIMEOUT_S)
        return {g: w.result() for g, w in asked.items() if w.done() and not w.cancelled()}

    def _own_families(self) -> list[Any]:
        workers = GaugeMetricFamily("asr_workers", "Worker processes alive in this task")
        workers.add_metric([], len(self.workers))
        restarts = CounterMetricFamily("asr_worker_restarts", "Workers that died and were replaced")
        restarts.add_metric([], self.restarts)
        return [workers, restarts]

    async def metrics_json(self) -> dict[str, Any]:
        merged = merge_json([s.json for s in (await self.snapshots()).values()])
        merged.update(
            {
                "uptime_seconds": round(time.time() - self.started_at, 3),
                "ready": self.is_ready(),
                "draining": self.draining,
                "max_sessions": self.settings.max_sessions,
                "workers": len(self.workers),
                "worker_restarts": self.restarts,
            }
        )
        return merged

    async def _emit_emf(self) -> None:
        while True:
            await asyncio.sleep(self.settings.emf_interval_s)
            active, rejected, audio = self._emf.interval(await self.snapshots())
            record = autoscaling_record(self.settings.service_name, millis(None), active, rejected, audio)
            sys.stdout.write(dump(record) + "\n")
            sys.stdout.flush()

    def _routes(self) -> None:
        async def health(_request: Request) -> Response:
            return Response.json(200, {"status": "alive"})

        async def ready(_request: Request) -> Response:
            return Response.json(200 if self.is_ready() else 503, self.readiness())

        async def metrics(request: Request) -> Response:
            if wants_prometheus(request.headers.get("accept", "")):
                texts = [s.prometheus for s in (await self.snapshots()).values()]
                body = merge_prometheus(texts, self._own_families(), ready=self.is_ready())
                return Response(200, body, PROMETHEUS_CONTENT_TYPE)
            return Response.json(200, await self.metrics_json())

        self.http.add_route("/health", health)
        self.http.add_route("/ready", ready)
        self.http.add_route("/metrics", metrics)
        if self.settings.ui_enabled:
            add_ui_routes(self.http, lambda: page_config_of(self))

    # ------------------------------------------------------------------ drain
    async def _drain(self) -> None:
        """SIGTERM every worker; they drain as the single process does; wait for all to exit."""
        self.draining = True
        log.info("drain_started", workers=len(self.workers), open_sessions=self.admitted())
        for worker in list(self.workers.values()):
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(signal.SIGTERM)
        exits = [w.process.wait() for w in self.workers.values()]
        if exits:
            await asyncio.wait(
                [asyncio.ensure_future(e) for e in exits],
                timeout=self.settings.drain_timeout_s + _DRAIN_MARGIN_S,
            )
        for worker in list(self.workers.values()):
            if worker.process.returncode is not None:
                continue
            log.error("worker_drain_timeout", worker=worker.index, pid=worker.pid)
            with contextlib.suppress(ProcessLookupError):
                worker.process.kill()
            await worker.process.wait()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._listener is not None:
            self._listener.close()
        await self.http.stop()
        log.info("server_stopped", worker_restarts=self.restarts)


async def supervise(settings: Settings, count: int, argv: list[str]) -> int:
    """``python -m asr_service`` with ``WORKERS`` > 1. Returns the exit status."""
    return await Supervisor(settings, count, argv).run()
