"""`make image-test`: build the project's real Dockerfile with podman and run it end to end.

Steps, each failing with one clear message:
 1. static pre-flight of the Dockerfile (image/preflight.py), before any slow build;
 2. the local base image (image/build_base.sh, cached), standing in for the public base;
 3. ``podman build --build-arg BASE_IMAGE=<local base>``: same stages, user and entry point;
 4. image config checks (non-root USER, no shell variable left in the exec-form entry point);
 5. in-container check as the runtime user (image/container_check.py): imports, readable
    packages, the shipped model loads;
 6. the container with its real entry point and published ports; wait for /ready on the
    published health port; time from ``podman run`` to ready;
 7. a clip transcribed through the published WebSocket port with the project's client;
 8. SIGTERM (``podman stop``) while a second session streams: the session must get a close 1001
    preceded by an event, the process must exit 0 before the stop timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from asr_service.model.wer import edit_distance
from image import preflight
from image.podman import PodmanError, build, container_state, image_config, logs, podman, published_port

IMAGE_DIR = Path(__file__).resolve().parent
REPO = IMAGE_DIR.parent
WS_PORT, HEALTH_PORT = 8765, 8080
MOUNTED_MODEL = "/models/under-test.pt"
# Session ends the server may use when it drains (DESIGN.md: 1001 going away).
DRAIN_CLOSE_CODES = {1001}


class ImageTestError(RuntimeError):
    """One failed step; the message says what is wrong and where to look."""


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)

    def add(self, key: str, value: object) -> None:
        self.lines.append(f"{key:<26} {value}")
        print(f">> {key}: {value}", flush=True)


_current_step = ["(start)"]  # what `main` names when a step fails


def step(title: str) -> None:
    _current_step[0] = title.split(":")[0]
    print(f"\n== {title}", flush=True)


def run_preflight(dockerfile: Path, context: Path) -> None:
    problems = preflight.check(dockerfile, context)
    for problem in problems:
        print(f"   {dockerfile}:{problem}", file=sys.stderr)
    if problems:
        raise ImageTestError(f"{dockerfile} has {len(problems)} problem(s), listed above; nothing was built")
    print(f"   {dockerfile}: no static problems")


def base_image(explicit: str | None) -> str:
    if explicit:
        return explicit
    result = subprocess.run(  # noqa: S603 - our own script
        [str(IMAGE_DIR / "build_base.sh")], stdout=subprocess.PIPE, text=True, check=False
    )
    if result.returncode != 0:
        raise ImageTestError("the local base image could not be built (see the debootstrap output above)")
    return result.stdout.strip().splitlines()[-1]


def build_image(dockerfile: Path, context: Path, tag: str, base: str, log: Path, report: Report) -> None:
    started = time.monotonic()
    code = build(dockerfile, context, tag, {"BASE_IMAGE": base}, log)
    seconds = time.monotonic() - started
    if code != 0:
        tail = log.read_text().splitlines()[-25:]
        print("\n".join("   | " + line for line in tail), file=sys.stderr)
        raise ImageTestError(f"podman build failed (exit {code}) after {seconds:.0f} s; full log: {log}")
    report.add("build time", f"{seconds:.0f} s (log: {log})")


def check_config(tag: str, report: Report) -> dict[str, object]:
    config = image_config(tag)
    user = str(config.get("User") or "")
    if user in {"", "root", "0", "0:0", "root:root"}:
        raise ImageTestError(f"image runs as root (User={user!r}): end the Dockerfile with a non-root USER")
    argv = list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])
    leftover = [word for word in argv if "$" in word]
    if leftover and not (len(argv) > 2 and Path(argv[0]).name in {"sh", "bash"} and argv[1] == "-c"):
        raise ImageTestError(
            f"the entry point {argv} passes {leftover} literally: exec form runs no shell to expand variables"
        )
    report.add("image size", f"{int(config['Size']) / 1e6:.0f} MB")
    report.add("runtime user", user)
    report.add("entry point", " ".join(argv))
    report.add("stop signal", config.get("StopSignal") or "SIGTERM (default)")
    healthcheck = (config.get("Healthcheck") or {}).get("Test")
    report.add("HEALTHCHECK", " ".join(healthcheck) if healthcheck else "none")
    return config


def model_options(model: Path | None) -> list[str]:
    """podman run options that serve model instead of the image's demo model."""
    if model is None:
        return []
    if not model.is_file():
        raise ImageTestError(f"--model {model}: no such file")
    return ["-v", f"{model.resolve()}:{MOUNTED_MODEL}:ro", "-e", f"MODEL_PATH={MOUNTED_MODEL}"]


def check_in_container(tag: str, model: Path | None, report: Report) -> None:
    script = (IMAGE_DIR / "container_check.py").read_text()
    check_run = ("run", "--rm", "--network=none", *model_options(model), "--entrypoint", "python")
    as_runtime = podman(*check_run, tag, "-c", script, check=False)
    if as_runtime.returncode == 0:
        result = json.loads(as_runtime.stdout.strip().splitlines()[-1])
        models = ", ".join(result["models"])
        report.add("in-container check", f"uid {result['uid']}: imports, readable packages, loads {models}")
        return
    try:
        result = json.loads(as_runtime.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise ImageTestError(
            "the in-container check could not run `python` as the runtime user: "
            + as_runtime.stderr.strip()[-800:]
        ) from None
    found = result["failures"] + [f"unreadable: {path}" for path in result["unreadable"]]
    details = "\n".join(f"   - {line}" for line in found)
    as_root = podman(*check_run, "--user", "0", tag, "-c", script, check=False)
    hint = (
        "as root the same check passes, so the files are there but not readable by the runtime user: "
        "fix ownership/permissions in the Dockerfile (COPY --chown, chmod, umask of the builder)"
        if as_root.returncode == 0
        else "it fails as root too, so the files are missing or broken in the image"
    )
    raise ImageTestError(f"runtime user (uid {result['uid']}) cannot use the image:\n{details}\n   {hint}")


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http://127.0.0.1
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return None


def wait_ready(name: str, health_port: int, started: float, timeout: float) -> float:
    url = f"http://127.0.0.1:{health_port}/ready"
    while time.monotonic() - started < timeout:
        if http_status(url) == 200:
            return time.monotonic() - started
        state = container_state(name)
        if not state.get("Running"):
            raise ImageTestError(
                f"the container exited (code {state.get('ExitCode')}) before /ready; its output:\n"
                + logs(name)[-3000:]
            )
        time.sleep(0.25)
    raise ImageTestError(f"/ready not 200 within {timeout:.0f} s; container output:\n{logs(name)[-3000:]}")


def check_healthcheck(name: str, report: Report) -> None:
    """Run the image's own HEALTHCHECK command once, as Docker/ECS would."""
    result = podman("healthcheck", "run", name, check=False, timeout=60)
    if result.returncode != 0:
        raise ImageTestError(
            f"the image's HEALTHCHECK fails against a ready server (exit {result.returncode}): "
            f"{(result.stdout + result.stderr).strip()[-800:]}"
        )
    report.add("HEALTHCHECK run", "passes against the ready server")


def transcribe(ws_port: int, clip: Path, max_cer: float, report: Report) -> str:
    command = [
        sys.executable, "-m", "asr_client",
        "--server", f"ws://127.0.0.1:{ws_port}", "--audio-file", str(clip), "--no-realtime",
    ]  # fmt: skip
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False, cwd=REPO)  # noqa: S603
    if result.returncode != 0:
        raise ImageTestError(
            f"the client failed (exit {result.returncode}) on {clip}:\n"
            + result.stdout[-1500:]
            + result.stderr[-1500:]
        )
    lines = result.stdout.strip().splitlines()
    text = lines[-1].strip() if lines else ""  # the client prints the final transcript last
    if not text:
        raise ImageTestError(f"client exited 0, printed no transcript of {clip}: {result.stderr[-1500:]}")
    report.add("transcription", f"{time.monotonic() - started:.1f} s for {clip.name}: {text!r}")
    reference = expected_transcript(clip)
    if reference is not None:
        cer = error_rate(list(reference.lower()), list(text.lower()))
        wer = error_rate(reference.lower().split(), text.lower().split())
        report.add("error rates", f"CER {cer:.0%}, WER {wer:.0%} against {reference!r}")
        if cer > max_cer:
            raise ImageTestError(
                f"the transcript through the container is too far from the reference: CER {cer:.0%} > "
                f"{max_cer:.0%} (--max-cer). Does this model transcribe the clip outside the image?"
            )
    return text


def expected_transcript(clip: Path) -> str | None:
    """The clip's reference text from transcripts.json beside it, when there is one."""
    index = clip.parent / "transcripts.json"
    if not index.is_file():
        return None
    value = json.loads(index.read_text()).get(clip.name)
    return str(value) if value is not None else None


def error_rate(reference: list[str], hypothesis: list[str]) -> float:
    """Edit distance / reference length: WER over words, CER over characters."""
    return edit_distance(reference, hypothesis) / max(len(reference), 1)


def pcm16_of(clip: Path) -> tuple[bytes, int]:
    import numpy as np
    import soundfile

    audio, rate = soundfile.read(str(clip), dtype="int16", always_2d=True)
    return np.ascontiguousarray(audio[:, 0]).astype("<i2").tobytes(), int(rate)


def drain_while_streaming(
    name: str, ws_port: int, health_port: int, clip: Path, stop_timeout: int
) -> dict[str, object]:
    """Open a session, stream part of the clip, `podman stop` (SIGTERM) and record what the client
    sees; the stop runs in a thread because it blocks until the container has exited."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    pcm, rate = pcm16_of(clip)
    half = len(pcm) // 2 // 2 * 2
    events: list[dict[str, object]] = []
    outcome: dict[str, object] = {}

    def stop() -> None:
        started = time.monotonic()
        result = podman("stop", "-t", str(stop_timeout), name, check=False, timeout=stop_timeout + 60)
        outcome["stop_rc"] = result.returncode
        outcome["stop_s"] = time.monotonic() - started

    with connect(f"ws://127.0.0.1:{ws_port}", open_timeout=10, max_size=None) as ws:
        events.append(json.loads(ws.recv(timeout=10)))
        ws.send(json.dumps({"type": "start", "sample_rate": rate, "encoding": "s16le"}))
        chunk = rate // 10 * 2  # 100 ms
        for offset in range(0, half, chunk):
            ws.send(pcm[offset : offset + chunk])
        time.sleep(1.0)  # let the server process what it has, as a live stream would
        stopper = threading.Thread(target=stop)
        before_stop = len(events)
        stopper.start()
        # /ready is sampled only once the server has announced the drain ("closing" event): by then
        # it must answer 503 or nothing. Samples taken earlier may predate the SIGTERM's delivery
        # (a one-session drain takes ~10 ms), so they prove nothing either way.
        ready_codes = []
        try:
            while True:
                message = ws.recv(timeout=stop_timeout + 10)
                if isinstance(message, str):
                    events.append(json.loads(message))
                    if events[-1].get("type") == "closing":
                        ready_codes.append(http_status(f"http://127.0.0.1:{health_port}/ready", timeout=0.5))
        except ConnectionClosed as closed:
            outcome["close_code"] = closed.rcvd.code if closed.rcvd else None
            outcome["close_reason"] = closed.rcvd.reason if closed.rcvd else ""
        except TimeoutError:
            outcome["close_code"] = "timeout"
        stopper.join()
    types = [str(event.get("type")) for event in events]
    outcome["events"], outcome["events_after_stop"] = types, types[before_stop:]
    outcome["ready_during_drain"] = [c for c in ready_codes if c is not None]
    outcome["exit_code"] = container_state(name).get("ExitCode")
    return outcome


def check_drain(outcome: dict[str, object], stop_timeout: int, output: str, report: Report) -> None:
    close = f"close {outcome.get('close_code')} {outcome.get('close_reason')!r}"
    report.add("drain", f"{close}, events {outcome['events']}")
    report.add("stop", f"{outcome.get('stop_s', 0):.1f} s, exit code {outcome['exit_code']}")
    report.add("/ready while draining", outcome["ready_during_drain"] or "no answer (listener closed)")
    problems = []
    if outcome.get("close_code") not in DRAIN_CLOSE_CODES:
        problems.append(f"the open session was closed with {outcome.get('close_code')}, not 1001")
    events = list(outcome["events"])  # type: ignore[call-overload]
    if "final" not in list(outcome["events_after_stop"]):  # type: ignore[call-overload]
        problems.append(f"the open session got no final result after SIGTERM (events {events})")
    if not events or events[-1] in {"connection", "partial", "final"}:
        problems.append("no event said why the session closed (DESIGN: every close comes after one)")
    answers = list(outcome["ready_during_drain"])  # type: ignore[call-overload]
    if answers and answers[-1] != 503:
        problems.append(f"/ready still answered {answers[-1]} after SIGTERM (answers {answers}), not 503")
    if outcome["exit_code"] != 0:
        problems.append(
            f"the server exited with {outcome['exit_code']} (137: killed at the {stop_timeout} s timeout)"
        )
    if float(outcome.get("stop_s", 0.0)) >= stop_timeout:  # type: ignore[arg-type]
        problems.append(f"podman stop took the whole {stop_timeout} s: the drain did not finish in time")
    if "Traceback" in output:
        problems.append("the container printed a Python traceback (see its output below)")
    if problems:
        print(output[-3000:], file=sys.stderr)
        raise ImageTestError("SIGTERM drain was not clean:\n" + "\n".join(f"   - {p}" for p in problems))


def default_clip() -> Path | None:
    clips = sorted((REPO / "tests" / "data" / "clips").glob("*.wav"))
    return clips[0] if clips else None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dockerfile", type=Path, default=REPO / "Dockerfile")
    parser.add_argument("--context", type=Path, default=REPO)
    parser.add_argument("--tag", default="localhost/ezspeech-asr:image-test")
    parser.add_argument("--base-image", help="use this base instead of building the local one")
    parser.add_argument("--clip", type=Path, default=default_clip(), help="WAV file to transcribe")
    parser.add_argument("--ready-timeout", type=float, default=300.0, help="seconds to wait for /ready")
    parser.add_argument("--stop-timeout", type=int, default=30, help="podman stop -t (ECS stopTimeout)")
    parser.add_argument(
        "--model", type=Path, help="serve this checkpoint (mounted read-only, MODEL_PATH) instead of the demo"
    )
    parser.add_argument(
        "--max-cer",
        type=float,
        default=0.5,
        help="fail when the clip's character error rate (vs transcripts.json) is above this",
    )
    parser.add_argument("--log-dir", type=Path, default=REPO / "build" / "image-test")
    parser.add_argument("--preflight-only", action="store_true", help="static checks only, no podman")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> Report:
    report = Report()
    step(f"1/8 pre-flight: {args.dockerfile}")
    run_preflight(args.dockerfile, args.context)
    if args.preflight_only:
        report.add("pre-flight", "no static problems")
        return report
    if args.clip is None or not args.clip.is_file():
        raise ImageTestError(f"no clip to transcribe (--clip {args.clip}); tests/data/clips/*.wav is empty")
    step("2/8 local base image")
    base = base_image(args.base_image)
    report.add("base image", base)
    step(f"3/8 podman build --build-arg BASE_IMAGE={base}")
    build_image(args.dockerfile, args.context, args.tag, base, args.log_dir / "build.log", report)
    step("4/8 image configuration")
    config = check_config(args.tag, report)
    step("5/8 in-container check as the runtime user")
    check_in_container(args.tag, args.model, report)

    name = f"ezspeech-image-test-{os.getpid()}"
    step("6/8 start the container (real entry point, published ports)")
    started = time.monotonic()
    podman(
        "run", "-d", "--name", name, "-p", f"127.0.0.1::{WS_PORT}", "-p", f"127.0.0.1::{HEALTH_PORT}",
        "-e", f"DRAIN_TIMEOUT_S={max(args.stop_timeout - 10, 5)}", *model_options(args.model), args.tag,
    )  # fmt: skip
    try:
        ws_port, health_port = published_port(name, WS_PORT), published_port(name, HEALTH_PORT)
        report.add("published ports", f"ws 127.0.0.1:{ws_port}, http 127.0.0.1:{health_port}")
        report.add("start to ready", f"{wait_ready(name, health_port, started, args.ready_timeout):.1f} s")
        if config.get("Healthcheck"):
            check_healthcheck(name, report)
        step(f"7/8 transcribe {args.clip} through the published WebSocket port")
        transcribe(ws_port, args.clip, args.max_cer, report)
        step("8/8 SIGTERM while a session streams")
        outcome = drain_while_streaming(name, ws_port, health_port, args.clip, args.stop_timeout)
        check_drain(outcome, args.stop_timeout, logs(name), report)
    finally:
        (args.log_dir / "container.log").write_text(logs(name))
        podman("rm", "-f", "-v", "-t", "0", name, check=False)  # -v: the anonymous VOLUME too
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = run(args)
    except (ImageTestError, PodmanError) as error:
        print(f"\nimage-test FAILED at step {_current_step[0]}: {error}", file=sys.stderr)
        return 1
    print("\nimage-test passed:\n" + "\n".join("  " + line for line in report.lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
