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
import dataclasses
import functools
import random
import signal
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus

from bench.loadgen import build_stream_audio, load_clips
from bench.server_process import ServerProcess
from bench.soak_clients import (
    START,
    Clients,
    Outcome,
    close_code_of,
    events_until_close,
    guarded,
    reset_connection,
)
from bench.soak_report import SoakPlan, SoakReport, judge, read_server_log, table

# ---------------------------------------------------------------------------- phases
Job = tuple[str, Callable[[], Awaitable[Outcome]]]


async def _run_all(
    jobs: list[tuple[str, Callable[[], Awaitable[Outcome]]]], concurrency: int
) -> list[Outcome]:
    gate = asyncio.Semaphore(concurrency)

    async def one(kind: str, job: Callable[[], Awaitable[Outcome]]) -> Outcome:
        async with gate:
            return await guarded(kind, job)

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
                reset_connection(ws)
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
    results = await asyncio.gather(*(events_until_close(ws) for ws in live))
    report.drain_exit_code = await asyncio.to_thread(server.process.wait, 30)
    report.exit_s = time.monotonic() - started
    for ws, events in zip(live, results, strict=True):
        finals = [e for e in events if e["type"] == "final"]
        if close_code_of(ws) == 1001 and finals and events[-1]["type"] == "closing":
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
