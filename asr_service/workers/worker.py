"""One worker process of a multi-worker task: today's server, fed sockets by the supervisor.

A worker is an :class:`~asr_service.server.AsrServer` with its own model copy, engine and event
loop, and exactly today's sessions, admission, drain and logs. What differs: it opens no port.
The supervisor accepts each client and hands the socket over the control channel; the worker
serves it through websockets' own connection class and handshake (``process_request`` included),
so a connection behaves as if the worker had accepted it. The health port and the autoscaling
EMF line belong to the supervisor, which asks the worker for a metrics snapshot when it needs
one. A worker whose supervisor goes away drains and exits.

Run by the supervisor as ``python -m asr_service.workers.worker <the task's flags>`` with the
channel's descriptor in ``ASR_WORKER_CONTROL_FD``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from asr_service.emf import dump
from asr_service.logging_setup import get_logger
from asr_service.metrics import current_value
from asr_service.server import AsrServer, serve_forever
from asr_service.session import Session
from asr_service.settings import Settings
from asr_service.workers import channel, tcp_table
from asr_service.workers.aggregate import Snapshot

log = get_logger(component="worker")


class HandedConnection(ServerConnection):
    """A WebSocket connection whose socket the supervisor accepted."""

    connection_id = -1  # the supervisor's
    on_lost: Callable[[], None] | None = None

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.on_lost is not None:
            self.on_lost()


class WorkerServer(AsrServer):
    READY_EVENT = "worker_ready"

    def __init__(self, settings: Settings, control: socket.socket, index: int, task_ws_port: int) -> None:
        super().__init__(settings)
        self.index = index
        self._control = control
        self._task_ws_port = task_ws_port
        self._options: dict[str, Any] = {}
        self._connecting: set[asyncio.Future[None]] = set()
        self._reservations: dict[int, asyncio.Future[bool]] = {}

    # ------------------------------------------------------------------ AsrServer steps
    async def _start_health(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self._control.fileno(), self._on_control)
        self._background.append(asyncio.create_task(self._watch_loop_lag(), name="loop-lag"))
        self._background.append(asyncio.create_task(self._emit_emf(), name="emf"))

    async def _listen(self) -> None:
        # The websockets Server gives drain its close(1001) and its connection bookkeeping, and
        # answers handshakes only while it is serving; it listens on a Unix socket whose path is
        # removed at once, so nobody can ever connect to it: clients come from the supervisor.
        with tempfile.TemporaryDirectory(prefix="asr-worker-") as private:
            placeholder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            path = Path(private) / "unreachable"
            placeholder.bind(str(path))
            placeholder.listen(1)
            path.unlink()
        self._options = self.websocket_options()
        self._ws_server = await serve(self._handle, sock=placeholder, **self._options)
        self.ws_port = self._task_ws_port

    async def start(self) -> None:
        await super().start()
        self._send_state()

    async def drain(self) -> None:
        if not self.draining:
            self.draining = True  # so the state says so before the sessions finish
            self._send_state()
            self.draining = False
        await super().drain()

    def release(self, session: Session) -> None:
        """A session ended: its slot is free now, as in the single process (not only once its
        TCP connection has closed, which a client that never answers the close can delay)."""
        if session in self.sessions and isinstance(session.connection, HandedConnection):
            self._send({"t": "released", "id": session.connection.connection_id})
        super().release(session)

    async def stop(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(self._control.fileno())
        await super().stop()

    async def _emit_emf(self) -> None:
        # Everything but the autoscaling record, which the supervisor writes for the whole task.
        while True:
            await asyncio.sleep(self.settings.emf_interval_s)
            records = self.metrics.emf_records(self.settings.service_name)[1:]
            if records:
                sys.stdout.write("\n".join(dump(record) for record in records) + "\n")
                sys.stdout.flush()

    def websocket_options(self) -> dict[str, Any]:
        return {**super().websocket_options(), "process_request": self._process_handed_request}

    async def _process_handed_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        """Today's admission (draining, not ready, this worker's sessions), then a slot of the
        task's ``MAX_SESSIONS`` from the supervisor."""
        response = self._process_request(connection, request)
        if response is not None or not isinstance(connection, HandedConnection):
            return response
        if await self._reserve(connection.connection_id, 0):
            return None
        # At capacity, sessions whose client is gone do not count. Where the kernel's socket table
        # is readable the supervisor has already counted them for every worker (tcp_table); only
        # elsewhere does this worker count its own and ask again (AsrServer's rule, per worker).
        if not tcp_table.readable():
            stale = sum(1 for session in self.sessions if session.peer_gone())
            if stale and await self._reserve(connection.connection_id, stale):
                return None
        self.metrics.reject("max_sessions")
        return self._unavailable(connection, "too many concurrent sessions\n")

    async def _reserve(self, connection_id: int, stale: int) -> bool:
        waiter = asyncio.get_running_loop().create_future()
        self._reservations[connection_id] = waiter
        self._send({"t": "reserve", "id": connection_id, "stale": stale})
        try:
            async with asyncio.timeout(5.0):  # a supervisor that does not answer is going away
                return bool(await waiter)
        except TimeoutError:
            return False
        finally:
            self._reservations.pop(connection_id, None)

    # ------------------------------------------------------------------ the control channel
    def _send(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):  # the supervisor is gone: the EOF handler drains
            channel.send(self._control, message)

    def _send_state(self) -> None:
        self._send(
            {"t": "state", "ready": self.ready, "draining": self.draining, "model_info": self.model_info}
        )

    def _on_control(self) -> None:
        try:
            messages = channel.receive(self._control)
        except channel.ChannelClosedError:
            log.warning("supervisor_gone")
            asyncio.get_running_loop().remove_reader(self._control.fileno())
            self.request_drain()
            return
        for message, fd in messages:
            if message.get("t") == "conn" and fd is not None:
                self._accept(fd, int(message["id"]))
            elif message.get("t") == "reserved":
                waiter = self._reservations.get(int(message["id"]))
                if waiter is not None and not waiter.done():
                    waiter.set_result(bool(message["ok"]))
            elif message.get("t") == "metrics":
                self._send({"t": "metrics", "id": message["id"], **self.snapshot().to_message()})
            elif fd is not None:
                os.close(fd)

    def snapshot(self) -> Snapshot:
        return Snapshot(
            self.metrics_json(),
            self.metrics.prometheus_text().decode(),
            int(current_value(self.metrics.sessions_active)),
            self.metrics.rejected_total(),
            current_value(self.metrics.audio_seconds),
        )

    def _accept(self, fd: int, connection_id: int) -> None:
        client = socket.socket(fileno=fd)
        if self._ws_server is None:  # not listening yet: the supervisor should not have sent it
            client.close()
            self._send({"t": "closed", "id": connection_id})
            return
        server, options = self._ws_server, self._options

        def factory() -> HandedConnection:
            # What websockets' serve() builds for an accepted socket (compression is off).
            protocol = ServerProtocol(max_size=options["max_size"], logger=options["logger"])
            connection = HandedConnection(
                protocol,
                server,
                ping_interval=options["ping_interval"],
                ping_timeout=options["ping_timeout"],
                close_timeout=options["close_timeout"],
                max_queue=options["max_queue"],
            )
            connection.connection_id = connection_id
            connection.on_lost = lambda: self._send({"t": "closed", "id": connection_id})
            return connection

        async def connect() -> None:
            try:
                await asyncio.get_running_loop().connect_accepted_socket(factory, client)
            except OSError:  # the client left between accept and hand-over
                client.close()
                self._send({"t": "closed", "id": connection_id})

        task = asyncio.ensure_future(connect())
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)


async def run_worker(settings: Settings) -> int:
    control = socket.socket(fileno=int(os.environ[channel.CONTROL_FD_ENV]))
    index = int(os.environ.get(channel.INDEX_ENV, "0"))
    structlog.contextvars.bind_contextvars(worker=index)
    if index > 0 and settings.golden_set:
        # One golden-set gate per task, in worker 0: every worker loads the same verified bytes,
        # the task turns ready only once every worker is (worker 0 after its gate), and a failing
        # model yields one golden_set_failed line and one exit status, as the single process does.
        settings = dataclasses.replace(settings, golden_set=None)
    server = WorkerServer(settings, control, index, int(os.environ.get(channel.WS_PORT_ENV, "0")))
    return await serve_forever(settings, server)


def main() -> int:
    import uvloop

    from asr_service.logging_setup import configure_logging
    from asr_service.settings import SettingsError, load_settings

    try:
        settings = load_settings(sys.argv[1:])
    except SettingsError as error:
        print(f"asr_service worker: invalid configuration: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    return uvloop.run(run_worker(settings))


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
