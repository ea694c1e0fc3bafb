"""Soak and fuzz a real server: `make soak` (seeded, a few minutes; a small slice runs in `make test`).

One ``python -m asr_service`` process on the shipped demo model, then, from the same machine:

* warm-up: clean sessions, after which the server's RSS is the baseline;
* the storm, shuffled: clean sessions (start → speech → eof → done), polite mid-stream closes
  (close frame without eof), abrupt disconnects (TCP reset before ``start``, mid-stream and right
  after ``eof``) and hostile connections (``bench.hostile``: malformed, deep, huge, non-finite,
  unencodable, mistyped, out-of-order, oversized and invalid-UTF-8 messages; repeated headers);
* overload: ``MAX_SESSIONS`` held open, more handshakes must get 503, and once the holders are
  gone the full ``MAX_SESSIONS`` must be admitted again at once;
* settle: how long the active-session gauge takes to reach 0 after the last disconnect, RSS;
* drain: another abrupt storm with a few live streams left open, then SIGTERM: the live streams
  must get their final and a 1001, and the process must exit 0 quickly.

The table counts what a user would notice: crashes, hangs, leaked sessions, closes without an
event (by close code), library closes (1002/1007/1009 the WebSocket library forces, documented),
TCP drops without a close frame, ``internal_error``, tracebacks in the server log, 503s with
free slots, RSS before and after. The exit status is non-zero when any target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import functools
import json
import random
import signal
import socket
import struct
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bench.hostile import HTTP_JUNK, InvalidText, Message, RawFrame, hostile_headers, hostile_message
from bench.loadgen import ServerProcess, build_stream_audio, load_clips

FRAME_MS = 100
JOB_TIMEOUT_S = 30.0
START = json.dumps({"type": "start", "sample_rate": 16000, "encoding": "s16le"})
EOF = json.dumps({"type": "eof"})
_EXPLAINING = {"done": 1000, "closing": 1001}
_LIBRARY_CODES = (1002, 1007, 1009)


@dataclass(frozen=True)
class SoakPlan:
    seed: int = 1
    warm_up: int = 100
    clean: int = 1000
    polite: int = 500
    abrupt: int = 3000  # split evenly: before start, mid-stream, after eof
    hostile_messages: int = 10_000
    concurrency: int = 32
    max_sessions: int = 64
    overload_extra: int = 32
    drain_storm: int = 300
    drain_live: int = 4
    server_args: tuple[str, ...] = ()


@dataclass
class Outcome:
    kind: str
    events: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None  # code of the server's close frame; None: none arrived
    aborted: bool = False  # we reset the TCP connection ourselves
    status: int | None = None  # HTTP status of a refused handshake
    hung: bool = False
    messages: int = 0  # hostile messages sent
    error: str = ""


@dataclass
class SoakReport:
    jobs: collections.Counter[str] = field(default_factory=collections.Counter)
    hostile_messages: int = 0
    hangs: int = 0
    client_errors: list[str] = field(default_factory=list)
    tcp_drops: int = 0
    internal_errors: int = 0
    closes_without_event: collections.Counter[int] = field(default_factory=collections.Counter)
    library_closes: collections.Counter[int] = field(default_factory=collections.Counter)
    refused_with_free_slots: int = 0
    overload_refused: int = 0
    overload_admitted: int = 0
    readmitted_after_overload: int = 0
    accepted: int = 0
    summaries: int = 0
    summary_reasons: collections.Counter[str] = field(default_factory=collections.Counter)
    tracebacks: int = 0
    leaked_sessions: int = -1
    gauge_zero_after_s: float = float("nan")
    rss_before_mb: float = 0.0
    rss_after_mb: float = 0.0
    drain_s: float = float("nan")  # the server's own drain_started → drain_finished
    exit_s: float = float("nan")  # SIGTERM → process exit, as ECS sees it
    drain_exit_code: int | None = None
    drain_live_ok: int = 0
    crashed: bool = False

    @property
    def rss_growth(self) -> float:
        return self.rss_after_mb / self.rss_before_mb - 1 if self.rss_before_mb else float("nan")

    def failures(self, plan: SoakPlan) -> list[str]:
        """Every target the run missed (empty: all met)."""
        checks = {
            "the server crashed": self.crashed,
            "hangs": self.hangs,
            "fewer hostile messages than planned": self.hostile_messages < plan.hostile_messages,
            "client errors": len(self.client_errors),
            "TCP drops without a close frame": self.tcp_drops,
            "internal_error events or 1011 closes": self.internal_errors,
            "closes without an event": sum(self.closes_without_event.values()),
            "503 while slots were free": self.refused_with_free_slots,
            "tracebacks in the server log": self.tracebacks,
            "leaked sessions": self.leaked_sessions != 0,
            "sessions without a summary line": self.accepted != self.summaries,
            "gauge not 0 within 1 s": not self.gauge_zero_after_s <= 1.0,
            "RSS grew 3 % or more": not self.rss_growth < 0.03,
            "overload did not refuse": self.overload_refused != plan.overload_extra,
            "MAX_SESSIONS not re-admitted after overload": self.readmitted_after_overload
            != plan.max_sessions,
            "drain took 2 s or more": not self.drain_s < 2.0,
            "drain exit status not 0": self.drain_exit_code != 0,
            "live streams without final + 1001 at drain": self.drain_live_ok != plan.drain_live,
        }
        return [name for name, failed in checks.items() if failed]


# ---------------------------------------------------------------------------- clients
def _reset(ws: ClientConnection) -> None:
    """Drop the connection with a TCP RST, as a crashed client or a dead network path does."""
    sock = ws.transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.transport.abort()


def _close_code(ws: ClientConnection) -> int | None:
    received = ws.protocol.close_rcvd
    return received.code if received is not None else None


async def _events_until_close(ws: ClientConnection) -> list[dict[str, Any]]:
    events = []
    with contextlib.suppress(ConnectionClosed):
        async for message in ws:
            events.append(json.loads(message))
    return events


async def _send(ws: ClientConnection, message: Message) -> bool:
    """Send; False once the server has closed the connection."""
    try:
        if isinstance(message, InvalidText):
            await ws.send(message.data, text=True)
        elif isinstance(message, RawFrame):
            ws.transport.write(message.data)
        else:
            await ws.send(message)
    except ConnectionClosed:
        return False
    return True


class Clients:
    def __init__(self, url: str, pcm: bytes, rate: int, hostile_target: int = 0) -> None:
        self.url = url
        self.pcm = pcm
        self.frame = rate * FRAME_MS // 1000 * 2
        # Hostile connections stop once this many hostile messages went out (a close ends a
        # connection early, so how many connections that takes is only known while running).
        self.hostile_target = hostile_target
        self.hostile_sent = 0

    def _connect(self, headers: list[tuple[str, str]] | None = None) -> Any:
        return connect(
            self.url,
            additional_headers=headers,
            max_size=None,
            ping_interval=None,
            compression=None,
            open_timeout=10,
            close_timeout=5,
        )

    def frames(self, rng: random.Random, count: int) -> list[bytes]:
        start = rng.randrange(0, len(self.pcm) - self.frame * count) // 2 * 2
        return [self.pcm[start + i * self.frame : start + (i + 1) * self.frame] for i in range(count)]

    async def clean(self, rng: random.Random) -> Outcome:
        async with self._connect() as ws:
            await ws.recv()
            await ws.send(START)
            for frame in self.frames(rng, rng.randint(5, 20)):
                await ws.send(frame)
            await ws.send(EOF)
            events = await _events_until_close(ws)
            return Outcome("clean", events, _close_code(ws))

    async def polite(self, rng: random.Random) -> Outcome:
        async with self._connect() as ws:
            await ws.recv()
            await ws.send(START)
            for frame in self.frames(rng, rng.randint(1, 15)):
                await ws.send(frame)
            await asyncio.sleep(rng.random() * 0.05)
            await ws.close(1000, "bye")
            return Outcome("polite", [], _close_code(ws))

    async def abrupt(self, rng: random.Random, phase: str) -> Outcome:
        ws = await self._connect()
        if rng.random() < 0.7 or phase != "before_start":
            await ws.recv()
        if phase != "before_start":
            await ws.send(START)
            for frame in self.frames(rng, rng.randint(1, 15)):
                await ws.send(frame)
        if phase == "after_eof":
            await ws.send(EOF)
            await asyncio.sleep(rng.random() * 0.02)
        _reset(ws)
        return Outcome(f"abrupt_{phase}", aborted=True)

    async def http_junk(self, rng: random.Random) -> Outcome:
        """Not a WebSocket at all: the listener must answer or close, and log no traceback."""
        host, port = self.url.removeprefix("ws://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(rng.choice(HTTP_JUNK))
            await writer.drain()
            await reader.read(65536)
        finally:
            writer.close()
        return Outcome("http_junk")

    async def hostile(self, rng: random.Random, budget: int) -> Outcome:
        if self.hostile_sent >= self.hostile_target:
            return Outcome("skipped")
        headers = hostile_headers(rng) if rng.random() < 0.3 else None
        outcome = Outcome("hostile")
        async with self._connect(headers) as ws:
            await ws.recv()
            if rng.random() < 0.5:
                await ws.send(START)
            for _ in range(min(budget, rng.randint(1, 6))):
                _name, message = hostile_message(rng)
                if not await _send(ws, message):
                    break
                outcome.messages += 1
                self.hostile_sent += 1
                if rng.random() < 0.3 and not await _send(ws, self.frames(rng, 1)[0]):
                    break
            await _send(ws, EOF)
            outcome.events = await _events_until_close(ws)
            outcome.close_code = _close_code(ws)
        return outcome


async def _guarded(kind: str, job: Callable[[], Awaitable[Outcome]]) -> Outcome:
    try:
        async with asyncio.timeout(JOB_TIMEOUT_S):
            return await job()
    except TimeoutError:
        return Outcome(kind, hung=True)
    except InvalidStatus as refused:
        return Outcome(kind, status=refused.response.status_code)
    except (ConnectionClosed, OSError) as error:
        return Outcome(kind, error=f"{type(error).__name__}: {error}")


# ---------------------------------------------------------------------------- judging
def judge(outcome: Outcome, report: SoakReport) -> None:
    if outcome.kind == "skipped":
        return
    report.jobs[outcome.kind] += 1
    if outcome.kind == "http_junk" and not (outcome.hung or outcome.error):
        return  # no WebSocket, no session: only hangs and crashes count
    report.hostile_messages += outcome.messages
    if outcome.hung:
        report.hangs += 1
        return
    if outcome.status is not None:
        report.refused_with_free_slots += 1  # the storm never exceeds MAX_SESSIONS
        return
    if outcome.error:
        report.client_errors.append(f"{outcome.kind}: {outcome.error}")
        return
    report.accepted += 1
    if outcome.aborted:
        return
    codes = {event.get("code") for event in outcome.events}
    if "internal_error" in codes or outcome.close_code == 1011:
        report.internal_errors += 1
    if outcome.close_code is None:
        report.tcp_drops += 1
        return
    if outcome.kind == "polite":
        return  # the client closed: the server only answers its close frame
    last = outcome.events[-1] if outcome.events else {}
    explained = _EXPLAINING.get(last.get("type", "")) == outcome.close_code or (
        last.get("type") == "error" and last.get("close_code") == outcome.close_code
    )
    if explained:
        return
    if outcome.close_code in _LIBRARY_CODES:
        report.library_closes[outcome.close_code] += 1
    else:
        report.closes_without_event[outcome.close_code] += 1


def read_server_log(lines: list[str], report: SoakReport) -> None:
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if "Traceback" in line:
                report.tracebacks += 1
            continue
        if not isinstance(record, dict):
            continue
        if "exception" in record or "Traceback" in line:
            report.tracebacks += 1
        if record.get("event") == "drain_finished":
            report.drain_s = float(record["duration_s"])
        if record.get("event") == "session_summary":
            report.summaries += 1
            report.summary_reasons[str(record.get("close_reason"))] += 1


# ---------------------------------------------------------------------------- phases
Job = tuple[str, Callable[[], Awaitable[Outcome]]]


async def _run_all(
    jobs: list[tuple[str, Callable[[], Awaitable[Outcome]]]], concurrency: int
) -> list[Outcome]:
    gate = asyncio.Semaphore(concurrency)

    async def one(kind: str, job: Callable[[], Awaitable[Outcome]]) -> Outcome:
        async with gate:
            return await _guarded(kind, job)

    return await asyncio.gather(*(one(kind, job) for kind, job in jobs))


def _jobs(
    kind: str, make: Callable[[random.Random], Awaitable[Outcome]], count: int, rng: random.Random
) -> list[Job]:
    """``count`` jobs, each with its own seeded generator, so a run is reproducible from its seed."""
    return [(kind, functools.partial(make, random.Random(rng.getrandbits(64)))) for _ in range(count)]


def _abrupt(clients: Clients, phase: str, rng: random.Random) -> Awaitable[Outcome]:
    return clients.abrupt(rng, phase)


def _hostile(clients: Clients, budget: int, rng: random.Random) -> Awaitable[Outcome]:
    return clients.hostile(rng, budget)


def _storm(plan: SoakPlan, clients: Clients, rng: random.Random) -> list[Job]:
    jobs = _jobs("clean", clients.clean, plan.clean, rng) + _jobs("polite", clients.polite, plan.polite, rng)
    for phase in ("before_start", "mid_stream", "after_eof"):
        abrupt = functools.partial(_abrupt, clients, phase)
        jobs += _jobs(f"abrupt_{phase}", abrupt, plan.abrupt // 3, rng)
    # Up to 6 messages per connection, about 3 on average (a close ends one early): enough
    # connections for the target, the surplus skipped once it is reached.
    budget = 6
    connections = plan.hostile_messages // 2 + 1
    jobs += _jobs("hostile", functools.partial(_hostile, clients, budget), connections, rng)
    jobs += _jobs("http_junk", clients.http_junk, max(1, plan.hostile_messages // 50), rng)
    rng.shuffle(jobs)
    return jobs


def _active_sessions(server: ServerProcess) -> int:
    return int(server.metrics()["active_sessions"])


def _prometheus_gauge(server: ServerProcess) -> float:
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.health_port}/metrics", headers={"Accept": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
        for line in response.read().decode().splitlines():
            if line.startswith("asr_sessions_active "):
                return float(line.split()[1])
    return float("nan")


async def _settle(server: ServerProcess, report: SoakReport) -> None:
    started = time.monotonic()
    while time.monotonic() - started < 10:
        active = await asyncio.to_thread(_active_sessions, server)
        gauge = await asyncio.to_thread(_prometheus_gauge, server)
        if active == 0 and gauge == 0:
            report.gauge_zero_after_s = time.monotonic() - started
            break
        await asyncio.sleep(0.02)
    report.leaked_sessions = await asyncio.to_thread(_active_sessions, server)


async def _overload(plan: SoakPlan, clients: Clients, server: ServerProcess, report: SoakReport) -> None:
    """MAX_SESSIONS held open: extra handshakes get 503; once released, all are admitted again."""
    holders: list[ClientConnection] = []
    try:
        for _ in range(plan.max_sessions):
            ws = await clients._connect()
            await ws.recv()
            await ws.send(START)
            holders.append(ws)
        report.accepted += len(holders)
        for _ in range(plan.overload_extra):
            try:
                extra = await clients._connect()
            except InvalidStatus as refused:
                report.overload_refused += refused.response.status_code == 503
                continue
            report.overload_admitted += 1
            report.accepted += 1
            holders.append(extra)
        for index, ws in enumerate(holders):  # half leave politely, half vanish
            if index % 2:
                _reset(ws)
            else:
                await ws.close()
    finally:
        for ws in holders:
            ws.transport.abort()
    await _settle(server, report)
    admitted: list[ClientConnection] = []
    try:
        for _ in range(plan.max_sessions):
            try:
                admitted.append(await clients._connect())
            except InvalidStatus:
                report.refused_with_free_slots += 1
        report.readmitted_after_overload = len(admitted)
        report.accepted += len(admitted)
    finally:
        for ws in admitted:
            await ws.close()


async def _drain(plan: SoakPlan, clients: Clients, server: ServerProcess, report: SoakReport) -> None:
    """An abrupt storm, a few live streams, SIGTERM: finals + 1001 for the live ones, fast exit."""
    rng = random.Random(plan.seed + 1)
    storm = _jobs(
        "abrupt_mid_stream", functools.partial(_abrupt, clients, "mid_stream"), plan.drain_storm, rng
    )
    for outcome in await _run_all(storm, plan.concurrency):
        judge(outcome, report)
    live: list[ClientConnection] = []
    for _ in range(plan.drain_live):
        ws = await clients._connect()
        await ws.recv()
        await ws.send(START)
        for frame in clients.frames(rng, 10):
            await ws.send(frame)
        live.append(ws)
    report.accepted += len(live)
    assert server.process is not None
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    results = await asyncio.gather(*(_events_until_close(ws) for ws in live))
    report.drain_exit_code = await asyncio.to_thread(server.process.wait, 30)
    report.exit_s = time.monotonic() - started
    for ws, events in zip(live, results, strict=True):
        finals = [e for e in events if e["type"] == "final"]
        if _close_code(ws) == 1001 and finals and events[-1]["type"] == "closing":
            report.drain_live_ok += 1


async def run_soak(plan: SoakPlan) -> SoakReport:
    report = SoakReport()
    rng = random.Random(plan.seed)
    pcm, rate = build_stream_audio(load_clips(), 0, 30.0)
    args = ["--max-sessions", str(plan.max_sessions), *plan.server_args]
    with ServerProcess(args, {}, keep_log=True) as server:
        clients = Clients(f"ws://127.0.0.1:{server.ws_port}", pcm, rate, plan.hostile_messages)
        # Warm-up runs every kind of client once at a tenth of the size, so caches that fill on
        # first use (resampling kernels per rate, allocator pools) are in the baseline RSS.
        warm_plan = dataclasses.replace(
            plan,
            clean=plan.warm_up,
            polite=plan.warm_up // 5,
            abrupt=plan.warm_up // 2,
            hostile_messages=plan.warm_up * 3,
        )
        warm_clients = Clients(clients.url, pcm, rate, warm_plan.hostile_messages)
        warm_report = SoakReport()
        for outcome in await _run_all(_storm(warm_plan, warm_clients, rng), plan.concurrency):
            judge(outcome, warm_report)
        report.accepted += warm_report.accepted
        await _settle(server, report)
        report.rss_before_mb = server.rss_mb()
        for outcome in await _run_all(_storm(plan, clients, rng), plan.concurrency):
            judge(outcome, report)
        await _settle(server, report)
        storm_settle_s = report.gauge_zero_after_s
        report.rss_after_mb = server.rss_mb()
        await _overload(plan, clients, server, report)
        report.gauge_zero_after_s = max(storm_settle_s, report.gauge_zero_after_s)
        assert server.process is not None
        report.crashed = server.process.poll() is not None
        if not report.crashed:
            await _drain(plan, clients, server, report)
        # The process has exited (or is about to be stopped): its log is complete.
        await asyncio.to_thread(server.process.wait, 30)
        await asyncio.sleep(0.2)  # the stdout reader thread appends the last lines
        read_server_log(server.log_lines, report)
    return report


# ---------------------------------------------------------------------------- report
def table(plan: SoakPlan, report: SoakReport, seconds: float) -> str:
    def counter(values: collections.Counter[Any]) -> str:
        return ", ".join(f"{k}: {v}" for k, v in sorted(values.items())) or "0"

    jobs = report.jobs
    abrupt = sum(v for k, v in jobs.items() if k.startswith("abrupt"))
    rows = [
        ("seed", plan.seed),
        (
            "sessions: clean / polite mid-stream / abrupt (RST)",
            f"{jobs['clean']} / {jobs['polite']} / {abrupt}",
        ),
        (
            "abrupt by phase",
            counter(collections.Counter({k[7:]: v for k, v in jobs.items() if k.startswith("abrupt")})),
        ),
        ("hostile messages (connections)", f"{report.hostile_messages} ({jobs['hostile']})"),
        ("non-WebSocket junk connections (HTTP, TLS)", jobs["http_junk"]),
        ("crashes", int(report.crashed)),
        ("hangs", report.hangs),
        ("leaked sessions (gauge after settle)", report.leaked_sessions),
        ("sessions accepted / summary lines", f"{report.accepted} / {report.summaries}"),
        ("active-session gauge 0 after last disconnect", f"{report.gauge_zero_after_s * 1000:.0f} ms"),
        ("closes without event (by code)", counter(report.closes_without_event)),
        ("library closes, documented (by code)", counter(report.library_closes)),
        ("TCP drops without close frame", report.tcp_drops),
        ("internal_error / 1011", report.internal_errors),
        ("tracebacks in the server log", report.tracebacks),
        ("503 with free slots", report.refused_with_free_slots),
        ("overload: extra handshakes refused 503", f"{report.overload_refused} of {plan.overload_extra}"),
        ("re-admitted after overload", f"{report.readmitted_after_overload} of {plan.max_sessions}"),
        (
            "RSS before / after (growth)",
            f"{report.rss_before_mb:.0f} / {report.rss_after_mb:.0f} MB ({report.rss_growth:+.1%})",
        ),
        (
            "SIGTERM after abrupt storm: drain / exit status",
            f"{report.drain_s:.2f} s / {report.drain_exit_code}",
        ),
        ("SIGTERM → process exit (interpreter teardown included)", f"{report.exit_s:.2f} s"),
        ("live streams at SIGTERM with final + 1001", f"{report.drain_live_ok} of {plan.drain_live}"),
        ("client errors", len(report.client_errors)),
        ("summary close reasons", counter(report.summary_reasons)),
        ("wall time", f"{seconds:.0f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"| {'measure':<{width}} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {name:<{width}} | {value} |" for name, value in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    defaults = SoakPlan()
    for name in (
        "seed",
        "warm_up",
        "clean",
        "polite",
        "abrupt",
        "hostile_messages",
        "concurrency",
        "max_sessions",
    ):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    parser.add_argument("server_args", nargs="*", help="after --: flags for the server")
    args = parser.parse_args(argv)
    plan = SoakPlan(
        seed=args.seed,
        warm_up=args.warm_up,
        clean=args.clean,
        polite=args.polite,
        abrupt=args.abrupt,
        hostile_messages=args.hostile_messages,
        concurrency=args.concurrency,
        max_sessions=args.max_sessions,
        server_args=tuple(args.server_args),
    )
    started = time.monotonic()
    report = asyncio.run(run_soak(plan))
    print(table(plan, report, time.monotonic() - started))
    for error in report.client_errors[:10]:
        print(f"client error: {error}", file=sys.stderr)
    failures = report.failures(plan)
    if failures:
        print("MISSED: " + "; ".join(failures), file=sys.stderr)
        return 1
    print("all soak targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
