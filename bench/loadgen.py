"""Load generator: N concurrent real-time streams against a real local server, N swept.

For each N a fresh server (``python -m asr_service``) is started, N clients stream speech at
real-time pace with the native protocol, and the step reports:

* partial latency p50/p95: a partial whose audio ends at ``end`` arrives ``t`` after the client
  sent the frame holding that audio;
* final latency p50/p95: ``done`` (after the last final) minus the time ``eof`` was sent;
* event-loop lag p99 (the server's own 50 ms probe, from ``/metrics``), server CPU and peak RSS;
* whether every stream stayed real-time: no send fell behind schedule by more than
  ``--max-slip-ms`` (the server applies backpressure when it cannot keep up) and every stream
  got its ``done``.

The capacity is the largest N where every stream stayed real-time and p95 partial latency is
within ``--target-ms``. Results: a Markdown table and JSON under ``bench/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import uvloop
from websockets.asyncio.client import connect

from bench.cpu import MachineTicks
from bench.loadgen_report import StepResult, comparison, machine, table
from bench.pacer import PacedStream, Pacer
from bench.profile_shares import Profile, classify
from bench.server_process import ServerProcess

__all__ = ["ServerProcess", "StepResult", "build_stream_audio", "load_clips", "percentile", "table"]

REPO = Path(__file__).resolve().parents[1]
CLIPS_DIR = REPO / "tests" / "data" / "clips"
RESULTS_DIR = REPO / "bench" / "results"
SENTENCES = (
    "the quick brown fox jumps over the lazy dog",
    "streaming speech recognition on a small machine",
    "please send the report before the meeting tomorrow",
    "seven green bottles standing on the wall",
)


@dataclasses.dataclass
class StreamResult:
    partial_latencies: list[float]
    final_latency: float | None
    max_slip: float
    ok: bool
    error: str = ""


# ---------------------------------------------------------------------------- audio
def load_clips(limit: int = 8) -> list[tuple[np.ndarray, int]]:
    """int16 mono clips: the demo clips when present, else espeak-ng speech made on the spot."""
    paths = sorted(CLIPS_DIR.glob("*.wav"))[:limit]
    if not paths:
        if shutil.which("espeak-ng") is None:
            raise SystemExit("no clips in tests/data/clips and no espeak-ng to make some (make system-deps)")
        tmp = Path(tempfile.mkdtemp(prefix="bench-clips-"))
        for index, sentence in enumerate(SENTENCES):
            path = tmp / f"{index}.wav"
            subprocess.run(["espeak-ng", "-w", str(path), sentence], check=True)  # noqa: S603, S607
            paths.append(path)
    clips = []
    for path in paths:
        data, rate = soundfile.read(str(path), dtype="int16", always_2d=True)
        clips.append((data[:, 0].copy(), int(rate)))
    return clips


def build_stream_audio(clips: list[tuple[np.ndarray, int]], index: int, seconds: float) -> tuple[bytes, int]:
    """Clips of one rate, rotated per stream, joined with 0.3 s pauses up to ``seconds``."""
    rate = clips[0][1]
    same_rate = [clip for clip, r in clips if r == rate]
    pause = np.zeros(int(0.3 * rate), dtype=np.int16)
    parts: list[np.ndarray] = []
    total = 0
    i = index
    while total < seconds * rate:
        clip = same_rate[i % len(same_rate)]
        parts += [clip, pause]
        total += clip.size + pause.size
        i += 1
    return np.concatenate(parts)[: int(seconds * rate)].astype("<i2").tobytes(), rate


# ---------------------------------------------------------------------------- one stream
async def run_stream(
    url: str,
    pcm: bytes,
    rate: int,
    frame_ms: int,
    start_delay: float,
    max_slip: float,
    max_final: float,
    pacer: Pacer,
) -> StreamResult:
    await asyncio.sleep(start_delay)
    frame_bytes = rate * frame_ms // 1000 * 2
    frame_s = frame_bytes / 2 / rate
    latencies: list[float] = []
    done_at = None
    frames = [pcm[offset : offset + frame_bytes] for offset in range(0, len(pcm), frame_bytes)]
    paced: PacedStream | None = None
    try:
        async with connect(url, max_size=None, open_timeout=30) as ws:
            await ws.recv()  # connection
            paced = PacedStream(ws, frames, frame_ms / 1000, json.dumps({"type": "eof"}).encode())
            sent = paced.sent  # frame i ends at (i + 1) * frame_s of audio

            async def receive() -> None:
                nonlocal done_at
                async for message in ws:
                    event = json.loads(message)
                    now = time.monotonic()
                    if event["type"] == "partial":
                        # The frame that completed the partial's audio (frames are equal; O(1), as
                        # the load generator's own CPU per stream is part of what the bench reports).
                        index = max(0, math.ceil(event["end"] / frame_s - 1e-6) - 1)
                        if index < len(sent):
                            latencies.append(now - sent[index])
                    elif event["type"] == "done":
                        done_at = now
                    elif event["type"] == "error":
                        raise RuntimeError(event["code"])

            receiver = asyncio.create_task(receive())
            await ws.send(json.dumps({"type": "start", "sample_rate": rate, "encoding": "s16le"}))
            await pacer.add(paced)
            await asyncio.wait_for(receiver, 60)
    except Exception as error:
        slip = paced.slip if paced is not None else 0.0
        return StreamResult(latencies, None, slip, False, f"{type(error).__name__}: {error}")
    eof_at = paced.eof_at
    final = done_at - eof_at if done_at is not None and eof_at is not None else None
    # Real time: the client never fell behind its schedule and the server had nothing left to
    # catch up on at eof (a server that lags builds a backlog that shows up as final latency).
    ok = final is not None and final <= max_final and paced.slip <= max_slip
    return StreamResult(latencies, final, paced.slip, ok)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_step(
    n: int,
    args: argparse.Namespace,
    clips: list[tuple[np.ndarray, int]],
    server_args: list[str],
    profile_to: Path | None = None,
) -> StepResult:
    with ServerProcess(server_args, {}) as server:
        url = f"ws://127.0.0.1:{server.ws_port}"
        audio = [build_stream_audio(clips, i, args.seconds) for i in range(n)]
        spy = (
            asyncio.create_task(start_profiler(server.pid, args.seconds, profile_to))
            if profile_to is not None
            else None
        )
        cpu0, wall0, own0 = server.cpu_seconds(), time.monotonic(), time.process_time()
        ticks0 = MachineTicks.now()
        pacer = Pacer()
        pacing = asyncio.create_task(pacer.run())
        # Stagger starts over one second so chunks do not all complete at the same instant.
        results = await asyncio.gather(
            *(
                run_stream(
                    url,
                    pcm,
                    rate,
                    args.frame_ms,
                    i / n,
                    args.max_slip_ms / 1000,
                    args.max_final_ms / 1000,
                    pacer,
                )
                for i, (pcm, rate) in enumerate(audio)
            )
        )
        pacer.close()
        await pacing
        wall = time.monotonic() - wall0
        busy = MachineTicks.now().busy_percent_since(ticks0)
        cpu, own = server.cpu_seconds() - cpu0, time.process_time() - own0
        if spy is not None:
            await asyncio.wait_for((await spy).wait(), 30)
        audio_seconds = sum(len(pcm) / 2 / rate for pcm, rate in audio)  # 16-bit samples
        lag = server.metrics()["event_loop_lag"]
        rss = server.peak_rss_mb()
    partials = [x for r in results for x in r.partial_latencies]
    finals = [r.final_latency for r in results if r.final_latency is not None]
    return StepResult(
        streams=n,
        partial_p50_ms=round(percentile(partials, 0.5) * 1000, 1),
        partial_p95_ms=round(percentile(partials, 0.95) * 1000, 1),
        final_p50_ms=round(percentile(finals, 0.5) * 1000, 1),
        final_p95_ms=round(percentile(finals, 0.95) * 1000, 1),
        loop_lag_p99_ms=round(float(lag["p99_ms"]), 2),
        server_cpu_pct=round(100 * cpu / wall, 1),
        loadgen_cpu_pct=round(100 * own / wall, 1),
        server_cpu_ms_per_audio_s=round(1000 * cpu / audio_seconds, 2),
        loadgen_cpu_ms_per_audio_s=round(1000 * own / audio_seconds, 2),
        server_rss_mb=round(rss, 1),
        max_slip_ms=round(max(r.max_slip for r in results) * 1000, 1),
        realtime_streams=sum(r.ok for r in results),
        partials=len(partials),
        errors=sorted({r.error for r in results if r.error}),
        machine_busy_pct=round(busy, 1),
        workers=_workers_of(server_args),
    )


def _workers_of(server_args: list[str]) -> str | None:
    return server_args[server_args.index("--workers") + 1] if "--workers" in server_args else None


async def start_profiler(pid: int, seconds: float, out: Path) -> asyncio.subprocess.Process:
    """py-spy on the server and its workers for the middle of the step (all streams running)."""
    await asyncio.sleep(1.5)  # the staggered starts are over
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    duration = max(2, int(seconds) - 3)
    # --native (which pauses the process per sample): see bench/profile_shares.py for why.
    command = [spy, "record", "--pid", str(pid), "--subprocesses", "--native", "--format", "raw"]
    command += ["--rate", "50", "--duration", str(duration), "--output", str(out)]
    return await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )


def sweep(
    args: argparse.Namespace, clips: list[tuple[np.ndarray, int]], server_args: list[str]
) -> list[StepResult]:
    steps: list[StepResult] = []
    misses = 0
    for n in args.counts:
        step = uvloop.run(run_step(n, args, clips, server_args))
        steps.append(step)
        status = "ok" if step.meets(args.target_ms) else "MISSED"
        print(
            f"  N={n:>3}: partial p95 {step.partial_p95_ms} ms, final p95 {step.final_p95_ms} ms, "
            f"lag p99 {step.loop_lag_p99_ms} ms, CPU {step.server_cpu_pct}% "
            f"({step.server_cpu_ms_per_audio_s} ms per audio s; loadgen {step.loadgen_cpu_ms_per_audio_s}), "
            f"machine busy {step.machine_busy_pct}%, real-time {step.realtime_streams}/{n} {status} "
            f"{'; '.join(step.errors)}",
            flush=True,
        )
        misses += not step.meets(args.target_ms)
        if misses >= args.stop_after_failures:
            break
    return steps


def capacity_of(steps: list[StepResult], target_ms: float) -> int:
    passing = [s.streams for s in steps if s.meets(target_ms)]
    return max(passing) if passing else 0


def profile_step(
    n: int, args: argparse.Namespace, clips: list[tuple[np.ndarray, int]], server_args: list[str], out: Path
) -> Profile:
    """One more step at ``n`` streams with py-spy attached (its numbers are not in the table)."""
    uvloop.run(run_step(n, args, clips, server_args, profile_to=out))
    return classify(out.read_text().splitlines() if out.exists() else [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--streams", default="1,10,20,30,40,60,80", help="N values to sweep (comma-separated)"
    )
    parser.add_argument("--seconds", type=float, default=12.0, help="audio per stream")
    parser.add_argument("--frame-ms", type=int, default=40, help="audio per WebSocket message")
    parser.add_argument("--target-ms", type=float, default=300.0, help="p95 partial latency target")
    parser.add_argument("--max-slip-ms", type=float, default=200.0, help="send delay that breaks real time")
    parser.add_argument(
        "--max-final-ms", type=float, default=1000.0, help="final latency that breaks real time"
    )
    parser.add_argument(
        "--stop-after-failures", type=int, default=2, help="stop the sweep after this many misses"
    )
    parser.add_argument(
        "--workers",
        default="",
        help='server WORKERS values to sweep one after the other, e.g. "1 2" (default: the server\'s)',
    )
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the server at each sweep's capacity: CPU by category"
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument(
        "server_args", nargs=argparse.REMAINDER, help="after --: flags for python -m asr_service"
    )
    args = parser.parse_args(argv)
    args.server_args = [a for a in args.server_args if a != "--"]
    args.counts = [int(x) for x in args.streams.split(",") if x.strip()]
    workers = args.workers.replace(",", " ").split()
    clips = load_clips()
    rate = clips[0][1]
    print(f"bench: {len(clips)} clips at {rate} Hz, {args.seconds:g} s per stream, server {args.server_args}")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    args.out.mkdir(parents=True, exist_ok=True)
    load_at_start = os.getloadavg()[0]
    runs: list[dict[str, Any]] = []
    for count in workers or [None]:
        server_args = [*args.server_args, *(["--workers", count] if count else [])]
        if count:
            print(f"WORKERS={count}:", flush=True)
        steps = sweep(args, clips, server_args)
        capacity = capacity_of(steps, args.target_ms)
        run: dict[str, Any] = {"workers": count, "server_args": server_args, "capacity": capacity}
        run["steps"] = steps
        if args.profile:
            n = capacity or args.counts[0]
            name = f"{stamp}-w{count}-profile.txt" if count else f"{stamp}-profile.txt"
            profile = profile_step(n, args, clips, server_args, args.out / name)
            run["profile"] = {"streams": n, "samples": profile.samples, "by_category": profile.by_category}
            run["profile_table"] = profile.table()
            print(
                f"  profile at N={n} ({profile.samples} samples): "
                + ", ".join(
                    f"{category} {100 * profile.share(category):.0f} %" for category in profile.by_category
                ),
                flush=True,
            )
        runs.append(run)
    lines = [
        f"# asr_service benchmark {stamp}",
        "",
        f"- machine: {machine()}",
        f"- load average at start: {load_at_start:.2f} (other work on the machine shares the CPUs)",
        f"- server args: `{' '.join(args.server_args) or '(defaults)'}`; {args.seconds:g} s of speech "
        f"per stream, {args.frame_ms} ms messages, real-time paced",
    ]
    for run in runs:
        heading = f"WORKERS={run['workers']}" if run["workers"] else "server defaults"
        lines += ["", f"## {heading}", "", table(run["steps"], args.target_ms), ""]
        lines.append(
            f"**Capacity: {run['capacity']} concurrent real-time streams** with p95 partial latency "
            f"≤ {args.target_ms:g} ms (✗ = a stream fell behind real time or p95 missed the target)."
        )
        if "profile_table" in run:
            lines += ["", f"Server CPU by category at {run['profile']['streams']} streams (py-spy):", ""]
            lines.append(run["profile_table"])
    if len(runs) > 1:
        lines += ["", "## Side by side", "", comparison(runs, args.target_ms)]
    report = "\n".join(lines)
    print()
    print(report)
    (args.out / f"{stamp}.md").write_text(report + "\n")
    results = []
    for run in runs:
        result = {
            "machine": machine(),
            "args": {k: v for k, v in vars(args).items() if k != "counts"} | {"out": str(args.out)},
            "workers": run["workers"],
            "capacity": run["capacity"],
            "steps": [dataclasses.asdict(s) for s in run["steps"]],
            **({"profile": run["profile"]} if "profile" in run else {}),
        }
        suffix = f"-w{run['workers']}" if run["workers"] and len(runs) > 1 else ""
        (args.out / f"{stamp}{suffix}.json").write_text(json.dumps(result, indent=2) + "\n")
        results.append(result)
    from bench.plot import plot  # matplotlib only once there is something to draw

    plot(results, args.out / f"{stamp}.png", title=f"asr_service benchmark {stamp}")
    print(f"\nwritten: {args.out / (stamp + '.md')}, {stamp}*.json, {stamp}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
