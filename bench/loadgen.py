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
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
from websockets.asyncio.client import connect

from bench.loadgen_report import StepResult, machine, table

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
    url: str, pcm: bytes, rate: int, frame_ms: int, start_delay: float, max_slip: float, max_final: float
) -> StreamResult:
    await asyncio.sleep(start_delay)
    frame_bytes = rate * frame_ms // 1000 * 2
    sent: list[tuple[float, float]] = []  # (audio seconds sent so far, monotonic time sent)
    latencies: list[float] = []
    eof_at = done_at = None
    slip = 0.0
    try:
        async with connect(url, max_size=None, open_timeout=30) as ws:
            await ws.recv()  # connection

            async def receive() -> None:
                nonlocal done_at
                async for message in ws:
                    event = json.loads(message)
                    now = time.monotonic()
                    if event["type"] == "partial":
                        end = event["end"]
                        for audio_s, at in sent:
                            if audio_s >= end - 1e-6:
                                latencies.append(now - at)
                                break
                    elif event["type"] == "done":
                        done_at = now
                    elif event["type"] == "error":
                        raise RuntimeError(event["code"])

            receiver = asyncio.create_task(receive())
            await ws.send(json.dumps({"type": "start", "sample_rate": rate, "encoding": "s16le"}))
            started = time.monotonic()
            for index, offset in enumerate(range(0, len(pcm), frame_bytes)):
                due = started + index * frame_ms / 1000
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                chunk = pcm[offset : offset + frame_bytes]
                await ws.send(chunk)
                now = time.monotonic()
                slip = max(slip, now - due)
                sent.append(((offset + len(chunk)) / 2 / rate, now))
            await ws.send(json.dumps({"type": "eof"}))
            eof_at = time.monotonic()
            await asyncio.wait_for(receiver, 60)
    except Exception as error:
        return StreamResult(latencies, None, slip, False, f"{type(error).__name__}: {error}")
    final = done_at - eof_at if done_at is not None and eof_at is not None else None
    # Real time: the client never fell behind its schedule and the server had nothing left to
    # catch up on at eof (a server that lags builds a backlog that shows up as final latency).
    ok = final is not None and final <= max_final and slip <= max_slip
    return StreamResult(latencies, final, slip, ok)


# ---------------------------------------------------------------------------- the server
class ServerProcess:
    """``python -m asr_service`` on free loopback ports; ``log_lines`` keeps its stdout if asked."""

    def __init__(self, server_args: list[str], env: dict[str, str], *, keep_log: bool = False) -> None:
        self.server_args = server_args
        self.env = env
        self.keep_log = keep_log
        self.log_lines: list[str] = []
        self.process: subprocess.Popen[str] | None = None
        self.ws_port = self.health_port = 0

    def __enter__(self) -> ServerProcess:
        env = {**os.environ, "PYTHONPATH": str(REPO), **self.env}
        command = [
            sys.executable,
            "-m",
            "asr_service",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--health-port",
            "0",
        ]
        self.process = subprocess.Popen(  # noqa: S603 - our own module
            [*command, "--log-level", "INFO", "--max-sessions", "1000", *self.server_args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if '"server_ready"' in line:
                ready = json.loads(line)
                self.ws_port, self.health_port = ready["ws_port"], ready["health_port"]
                break
            if '"startup_failed"' in line:
                raise SystemExit(f"server failed to start: {line.strip()}")
        else:
            raise SystemExit("server exited before it was ready")
        # Keep draining stdout (session summaries) so the pipe never fills and blocks the server.
        stdout = self.process.stdout
        drain = (lambda: self.log_lines.extend(stdout)) if self.keep_log else stdout.read
        threading.Thread(target=drain, name="server-stdout", daemon=True).start()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def rss_mb(self) -> float:
        return self._status_mb("VmRSS:")

    def cpu_seconds(self) -> float:
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self) -> float:
        return self._status_mb("VmHWM:")

    def _status_mb(self, field: str) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
        return 0.0

    def metrics(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/metrics", timeout=5) as r:
            return dict(json.load(r))

    def __exit__(self, *_exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_step(n: int, args: argparse.Namespace, clips: list[tuple[np.ndarray, int]]) -> StepResult:
    with ServerProcess(args.server_args, {}) as server:
        url = f"ws://127.0.0.1:{server.ws_port}"
        audio = [build_stream_audio(clips, i, args.seconds) for i in range(n)]
        cpu0, wall0, own0 = server.cpu_seconds(), time.monotonic(), time.process_time()
        # Stagger starts over one second so chunks do not all complete at the same instant.
        results = await asyncio.gather(
            *(
                run_stream(
                    url, pcm, rate, args.frame_ms, i / n, args.max_slip_ms / 1000, args.max_final_ms / 1000
                )
                for i, (pcm, rate) in enumerate(audio)
            )
        )
        wall = time.monotonic() - wall0
        cpu, own = server.cpu_seconds() - cpu0, time.process_time() - own0
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
    )


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
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument(
        "server_args", nargs=argparse.REMAINDER, help="after --: flags for python -m asr_service"
    )
    args = parser.parse_args(argv)
    args.server_args = [a for a in args.server_args if a != "--"]
    counts = [int(x) for x in args.streams.split(",") if x.strip()]
    clips = load_clips()
    rate = clips[0][1]
    print(f"bench: {len(clips)} clips at {rate} Hz, {args.seconds:g} s per stream, server {args.server_args}")
    steps: list[StepResult] = []
    misses = 0
    for n in counts:
        step = asyncio.run(run_step(n, args, clips))
        steps.append(step)
        status = "ok" if step.meets(args.target_ms) else "MISSED"
        print(
            f"  N={n:>3}: partial p95 {step.partial_p95_ms} ms, final p95 {step.final_p95_ms} ms, "
            f"lag p99 {step.loop_lag_p99_ms} ms, CPU {step.server_cpu_pct}% "
            f"({step.server_cpu_ms_per_audio_s} ms per audio s; loadgen {step.loadgen_cpu_ms_per_audio_s}), "
            f"real-time {step.realtime_streams}/{n} {status} {'; '.join(step.errors)}",
            flush=True,
        )
        misses += not step.meets(args.target_ms)
        if misses >= args.stop_after_failures:
            break
    passing = [s.streams for s in steps if s.meets(args.target_ms)]
    capacity = max(passing) if passing else 0
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report = "\n".join(
        [
            f"# asr_service benchmark {stamp}",
            "",
            f"- machine: {machine()}",
            f"- load average at start: {os.getloadavg()[0]:.2f} (other work on the machine shares the CPUs)",
            f"- server args: `{' '.join(args.server_args) or '(defaults)'}`; {args.seconds:g} s of speech "
            f"per stream, {args.frame_ms} ms messages, real-time paced",
            "",
            table(steps, args.target_ms),
            "",
            f"**Capacity: {capacity} concurrent real-time streams** with p95 partial latency "
            f"≤ {args.target_ms:g} ms (✗ = a stream fell behind real time or p95 missed the target).",
        ]
    )
    print()
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stamp}.md").write_text(report + "\n")
    result = {
        "machine": machine(),
        "args": vars(args) | {"out": str(args.out)},
        "capacity": capacity,
        "steps": [dataclasses.asdict(s) for s in steps],
    }
    (args.out / f"{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
    from bench.plot import plot  # matplotlib only once there is something to draw

    plot([result], args.out / f"{stamp}.png", title=f"asr_service benchmark {stamp}")
    print(f"\nwritten: {args.out / (stamp + '.md')}, {stamp}.json, {stamp}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
