"""The browser page in a real browser: Debian's Chromium driven headless by Playwright.

No browser is ever downloaded: Playwright drives /usr/bin/chromium (``make test`` apt-installs
it through mk/ui.mk). These tests skip only when that Chromium cannot start at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import os
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import pytest
import soundfile as sf
import websockets
from playwright.sync_api import Browser, Page, Playwright, Route, expect, sync_playwright
from playwright.sync_api import Error as PlaywrightError
from websockets.sync.client import connect as websockets_sync_connect

from asr_service import ui
from asr_service.http import HttpServer
from asr_service.model.checkpoint import DEFAULT_MODEL_PATH
from asr_service.server import load_configured_model
from asr_service.ui.routes import PageConfig, add_ui_routes, model_label
from tests.asr_service.fakes import LETTERS, FakeStreamingModel, silence, tone
from tests.asr_service.helpers import http_get as conftest_http_get

T = TypeVar("T")

CHROMIUM = Path("/usr/bin/chromium")
# Flags that keep a headless Chromium off the network and away from a GPU it does not have.
BASE_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
PAGE_ORIGIN = "http://page.test"  # static-only tests serve the files under this fake origin


def fake_microphone_flags(wav: Path) -> list[str]:
    """Chromium's fake capture device plays ``wav`` as the microphone and grants the permission
    prompt. ``%noloop`` makes it play once and then deliver silence instead of looping."""
    return [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}%noloop",
    ]


class BackgroundLoop:
    """An asyncio loop in a thread, so async servers run beside Playwright's sync API."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def background() -> Iterator[BackgroundLoop]:
    loop = BackgroundLoop()
    yield loop
    loop.close()


class RecordingServer:
    """Stands in for the ASR server where a test checks what the page SENDS: it speaks the
    native protocol's framing, keeps every binary frame, and answers eof with final + done."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.frame_times: list[float] = []
        self.texts: list[dict[str, Any]] = []
        self.port = 0
        self._server: Any = None

    async def start(self) -> None:
        self._server = await websockets.serve(self._session, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _session(self, ws: Any) -> None:
        await ws.send(json.dumps({"type": "connection", "status": "connected"}))
        async for message in ws:
            if isinstance(message, bytes):
                self.frames.append(message)
                self.frame_times.append(time.monotonic())
                continue
            event = json.loads(message)
            self.texts.append(event)
            if event["type"] == "eof":
                seconds = self.audio().size / 16000
                final = {"type": "final", "segment_id": 0, "text": "recorded", "start": 0.0, "end": seconds}
                await ws.send(json.dumps(final))
                await ws.send(json.dumps({"type": "done", "text": "recorded", "segments": 1}))
                await ws.close(1000)

    def audio(self) -> np.ndarray:
        return np.frombuffer(b"".join(self.frames), dtype="<i2").astype(np.float32) / 32768


class RecordingRelay:
    """A transparent WebSocket hop between the page and the REAL server that keeps a copy of
    the audio the page sent, so a test can tell a clean microphone capture from a lossy one.
    Query parameters (the token) and close codes pass through unchanged."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.frames: list[bytes] = []
        self.port = 0
        self._server: Any = None

    async def start(self) -> None:
        self._server = await websockets.serve(self._session, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _session(self, page: Any) -> None:
        url = f"ws://127.0.0.1:{self.upstream_port}{page.request.path}"
        async with websockets.connect(url) as server:

            async def page_to_server() -> None:
                async for message in page:
                    if isinstance(message, bytes):
                        self.frames.append(message)
                    await server.send(message)

            async def server_to_page() -> None:
                async for message in server:
                    await page.send(message)
                await page.close(server.close_code or 1000, server.close_reason or "")

            tasks = [asyncio.create_task(page_to_server()), asyncio.create_task(server_to_page())]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            await asyncio.wait(tasks, timeout=5)
            for task in tasks:
                task.cancel()

    def audio(self) -> np.ndarray:
        return np.frombuffer(b"".join(self.frames), dtype="<i2").astype(np.float32) / 32768


def start_page_server(background: BackgroundLoop, config: PageConfig) -> tuple[HttpServer, int]:
    """The real health-port HTTP server with the page's routes, on a free port."""
    http = HttpServer()
    add_ui_routes(http, lambda: config)
    port = background.run(http.start("127.0.0.1", 0))
    return http, port


def best_alignment(received: np.ndarray, reference: np.ndarray) -> tuple[int, float]:
    """(lag, normalised cross-correlation peak) of ``reference`` inside ``received``."""
    if not received.size or not np.any(received):
        return 0, 0.0  # nothing (or only silence) arrived
    size = len(received) + len(reference)
    spectrum = np.fft.rfft(received, size) * np.conj(np.fft.rfft(reference, size))
    correlation = np.fft.irfft(spectrum, size)
    lag = int(np.argmax(correlation))
    energy = math.sqrt(float((received**2).sum() * (reference**2).sum()))
    return lag, float(correlation[lag] / energy)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as handle:
        yield handle


def launch_chromium(playwright: Playwright, extra_flags: list[str] | None = None) -> Browser:
    """Start Debian's Chromium, or skip the test with the reason it could not start."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (make test installs the Debian chromium package)")
    try:
        return playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=BASE_FLAGS + (extra_flags or []), timeout=30_000
        )
    except PlaywrightError as error:
        pytest.skip(f"Chromium cannot start here: {str(error).splitlines()[0]}")


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    handle = launch_chromium(playwright)
    yield handle
    handle.close()


@pytest.fixture
def static_page(browser: Browser) -> Iterator[Page]:
    """A blank page whose origin serves the shipped static files (what the server would send)."""
    assets = ui.load_assets()
    page = browser.new_page()

    def serve(route: Route) -> None:
        path = route.request.url.removeprefix(PAGE_ORIGIN).split("?")[0]
        if path == "/blank.html":
            route.fulfill(status=200, content_type="text/html", body="<!doctype html><title>t</title>")
        elif path in assets:
            route.fulfill(status=200, content_type=assets[path].content_type, body=assets[path].body)
        else:
            route.fulfill(status=404, body="not found")

    page.route(f"{PAGE_ORIGIN}/**", serve)
    page.goto(f"{PAGE_ORIGIN}/blank.html")
    yield page
    page.close()


# ------------------------------------------------------------------ the in-page resampler
RESAMPLE_JS = """
async ([inputRate, outputRate, frequency, seconds, chunk]) => {
  const { StreamResampler } = await import("/ui/resampler.js");
  const n = Math.round(inputRate * seconds);
  const input = new Float32Array(n);
  for (let i = 0; i < n; i++) input[i] = 0.5 * Math.sin(2 * Math.PI * frequency * i / inputRate);
  const resampler = new StreamResampler(inputRate, outputRate);
  const parts = [];
  for (let i = 0; i < n; i += chunk) parts.push(resampler.push(input.subarray(i, i + chunk)));
  parts.push(resampler.flush());
  return parts.flatMap((p) => Array.from(p));
}
"""


def resample_sine(page: Page, rate_in: int, freq: float, chunk: int) -> list[float]:
    return page.evaluate(RESAMPLE_JS, [rate_in, 16000, freq, 1.0, chunk])


def rms(values: list[float]) -> float:
    return math.sqrt(sum(v * v for v in values) / len(values))


@pytest.mark.parametrize("rate_in", [48000, 44100, 16000, 8000])
def test_browser_resampler_keeps_a_tone_and_the_duration(static_page, rate_in):
    out = resample_sine(static_page, rate_in, 1000.0, 128)
    assert abs(len(out) - 16000) <= 1  # one second in, one second out at 16 kHz
    # Compare with the ideal 16 kHz tone away from the edges (the kernel sees zeros there).
    ideal = [0.5 * math.sin(2 * math.pi * 1000.0 * i / 16000) for i in range(len(out))]
    error = [a - b for a, b in zip(out[200:-200], ideal[200:-200], strict=True)]
    assert rms(error) < 0.01, f"resampled tone differs from the ideal one by {rms(error):.4f} RMS"


def test_browser_resampler_removes_what_would_alias(static_page):
    # 12 kHz is above 16 kHz's Nyquist frequency: naive decimation would fold it to 4 kHz.
    out = resample_sine(static_page, 48000, 12000.0, 128)
    assert rms(out[200:-200]) < 0.005  # input RMS is 0.354: over 36 dB down


def test_browser_resampler_output_does_not_depend_on_chunking(static_page):
    whole = resample_sine(static_page, 44100, 440.0, 44100)
    chunked = resample_sine(static_page, 44100, 440.0, 100)
    assert len(whole) == len(chunked)
    assert max(abs(a - b) for a, b in zip(whole, chunked, strict=True)) < 1e-6


def test_browser_pcm_encoding_is_little_endian_s16_and_clips(static_page):
    data = static_page.evaluate(
        """async () => {
          const { floatToS16le } = await import("/ui/resampler.js");
          return Array.from(new Uint8Array(floatToS16le(new Float32Array([0, 1, -1, 2, -2, 0.5]))));
        }"""
    )
    samples = [int.from_bytes(bytes(data[i : i + 2]), "little", signed=True) for i in range(0, len(data), 2)]
    assert samples == [0, 32767, -32768, 32767, -32768, 16384]


# ------------------------------------------------------------------ what the page sends
def chirp(rate: int, seconds: float, lead: float = 0.3, tail: float = 0.5) -> np.ndarray:
    """A 200 Hz → 3 kHz sweep between silences: unmistakable under cross-correlation."""
    t = np.arange(int(rate * seconds)) / rate
    sweep = 0.5 * np.sin(2 * np.pi * (200 * t + (3000 - 200) * t**2 / (2 * seconds)))
    return np.concatenate([np.zeros(int(rate * lead)), sweep, np.zeros(int(rate * tail))]).astype(np.float32)


@pytest.fixture
def recorder(background: BackgroundLoop) -> Iterator[RecordingServer]:
    server = RecordingServer()
    background.run(server.start())
    yield server
    background.run(server.stop())


@contextlib.contextmanager
def serving_page(background: BackgroundLoop, ws_port: int) -> Iterator[str]:
    """The page on the real HTTP server, configured for a WebSocket on ``ws_port``; its URL."""
    config = PageConfig(ws_port=ws_port, auth_required=False, model_version="v-test", model_sha256=None)
    http, port = start_page_server(background, config)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        background.run(http.stop())


@pytest.fixture
def recorder_page_url(background: BackgroundLoop, recorder: RecordingServer) -> Iterator[str]:
    with serving_page(background, recorder.port) as url:
        yield url


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def assert_protocol_framing(recorder: RecordingServer) -> None:
    assert recorder.texts[0] == {"type": "start", "sample_rate": 16000, "encoding": "s16le"}
    assert recorder.texts[-1] == {"type": "eof"}
    sizes = {len(frame) for frame in recorder.frames[:-1]}
    assert sizes == {3200}, f"every frame but the last must carry 100 ms (3200 bytes), got {sizes}"


# Chromium's fake microphone is paced by timers: on a starved machine it now and then loses a
# few milliseconds of the file (the capture FIFO underruns and fills with silence), which
# shifts the rest of the clip. Such a run says nothing about the page, so it is repeated; a
# clean run must then pass every assertion. A broken capture path fails every attempt.
CLEAN_CAPTURE = 0.98  # normalised cross-correlation of what the server got with the clip
CAPTURE_ATTEMPTS = 3


class AudioSink(Protocol):
    def audio(self) -> np.ndarray: ...


def until_clean_capture(attempt: Callable[[], None], sinks: list[AudioSink], clip: np.ndarray) -> None:
    """Run ``attempt`` until the server received the clip whole; then its assertions must hold.

    ``attempt`` appends the sink that records what the page sent to ``sinks`` before using it,
    so a failed assertion can still be judged against the audio that was actually sent.
    """
    peaks = []
    for _ in range(CAPTURE_ATTEMPTS):
        failure: AssertionError | None = None
        try:
            attempt()
        except AssertionError as error:
            failure = error
        _lag, peak = best_alignment(sinks[-1].audio(), clip)
        if peak > CLEAN_CAPTURE:
            if failure is not None:
                raise failure
            return
        peaks.append(round(peak, 3))
    pytest.fail(
        f"the server never received the microphone clip intact in {CAPTURE_ATTEMPTS} attempts "
        f"(correlations {peaks}; ~0.9 means Chromium's fake device dropped audio on a loaded "
        "machine, ~0 means the page's capture path is broken)"
    )


@pytest.mark.slow  # a few seconds of real-time audio per attempt, up to three attempts
def test_browser_microphone_sends_the_captured_clip_at_16khz(playwright, tmp_path, background):
    clip = chirp(16000, 1.5)
    wav = tmp_path / "chirp.wav"
    sf.write(wav, clip, 16000, subtype="PCM_16")
    recorders: list[AudioSink] = []

    def attempt() -> None:
        recorder = RecordingServer()
        recorders.append(recorder)
        background.run(recorder.start())
        browser = launch_chromium(playwright, fake_microphone_flags(wav))
        try:
            with serving_page(background, recorder.port) as url:
                page = browser.new_page()
                page.goto(url)
                page.click("#mic-button")
                wait_until(lambda: len(recorder.frames) * 0.1 >= len(clip) / 16000 + 0.5, 20, "the clip")
                page.click("#stop-button")
                expect(page.locator("#state")).to_have_attribute("data-state", "closed", timeout=10_000)
                assert page.inner_text("#finals") == "recorded"
        finally:
            browser.close()
            background.run(recorder.stop())
        assert_protocol_framing(recorder)
        # Chromium plays the 16 kHz file at its device rate (44.1 or 48 kHz); the page's
        # worklet brings it back to 16 kHz: the chirp must come back whole, near the start.
        received = recorder.audio()
        lag, _peak = best_alignment(received, clip)
        assert lag < 16000 or lag > len(received) + len(clip) - 16000, f"clip found at lag {lag}"

    until_clean_capture(attempt, recorders, clip)


def test_browser_file_picker_streams_a_44k_stereo_file_at_real_time_pace(
    browser, tmp_path, recorder, recorder_page_url
):
    seconds = 2.0
    stereo = np.stack([chirp(44100, seconds, 0.0, 0.0), chirp(44100, seconds, 0.0, 0.0)], axis=1)
    path = tmp_path / "sweep.wav"
    sf.write(path, stereo, 44100, subtype="PCM_16")
    page = browser.new_page()
    try:
        page.goto(recorder_page_url)
        page.set_input_files("#file-input", str(path))
        page.wait_for_selector('#state[data-state="closed"]', timeout=15_000)
        assert page.inner_text("#finals") == "recorded"
        assert page.inner_text("#segment-count") == "1"
    finally:
        page.close()
    assert_protocol_framing(recorder)
    received = recorder.audio()
    assert abs(received.size / 16000 - seconds) < 0.01
    lag, peak = best_alignment(received, chirp(16000, seconds, 0.0, 0.0))
    assert lag == 0 and peak > 0.99, f"lag {lag}, correlation {peak:.3f}"
    # Real-time pace: 2 s of audio is spread over about 2 s, not sent in one burst.
    spread = recorder.frame_times[-1] - recorder.frame_times[0]
    assert 1.7 < spread < 3.0, f"{seconds} s of audio was sent over {spread:.2f} s"


# ------------------------------------------------------------------ the routes themselves
def http_get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - a local test URL
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_browser_routes_serve_the_page_its_files_and_config(background):
    config = PageConfig(ws_port=43210, auth_required=True, model_version="demo-3", model_sha256="ab" * 32)
    http, port = start_page_server(background, config)
    base = f"http://127.0.0.1:{port}"
    try:
        status, headers, body = http_get(f"{base}/")
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        assert b'src="ui/app.js"' in body
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        for name, kind in [
            ("app.js", "text/javascript"),
            ("audio-worklet.js", "text/javascript"),
            ("style.css", "text/css"),
        ]:
            status, headers, _ = http_get(f"{base}/ui/{name}")
            assert status == 200 and headers["Content-Type"].startswith(kind), name
        status, headers, body = http_get(f"{base}/ui/config.json")
        assert status == 200 and headers["Content-Type"] == "application/json"
        assert json.loads(body) == {
            "ws_port": 43210,
            "ws_path": "/",
            "auth_required": True,
            "sample_rate": 16000,
            "model": {"version": "demo-3", "sha256": "ab" * 32},
        }
        for missing in ["/ui/", "/ui/../settings.py", "/ui/__init__.py", "/ui/nope.js", "/index.html"]:
            assert http_get(f"{base}{missing}")[0] == 404, missing
    finally:
        background.run(http.stop())


# ------------------------------------------------------------------ the page against the real server
# The real AsrServer (tests/asr_service/helpers.py: port 0, a background loop) on the fake tone
# model: each 200 Hz pitch band is a letter, so an exact transcript is known for any clip.
FAKE_SHA256 = "cd" * 32
TONE_WORDS = ["a", "a a a"]


def spoken_letters(letters: str, rate: int = 16000) -> np.ndarray:
    """The fake model's "speech": one tone per letter at the centre of its pitch band.

    Each tone fades in and out over 20 ms. A hard edge would make both resamplers on the way
    (Chromium's, to its device rate, and the page's, back to 16 kHz) ring for a few samples
    around zero, and the fake model counts those sign flips as pitch.
    """
    fade = rate // 50
    ramp = np.sin(np.linspace(0, np.pi / 2, fade)) ** 2
    parts = []
    for letter in letters:
        burst = tone(LETTERS.index(letter) * 200 + 100, 0.24, rate)
        burst[:fade] *= ramp
        burst[-fade:] *= ramp[::-1]
        parts += [burst, silence(0.06, rate)]
    return np.concatenate(parts)


def tone_clip() -> np.ndarray:
    """Two utterances, each ended by more silence than the endpoint needs, then a tail.

    Only "a" (100 Hz): the microphone starts at an arbitrary point, so the fake model's 20 ms
    frames straddle tone edges, and a frame only partly covered by a tone counts fewer crossings,
    i.e. a lower letter. Below "a" there is none, so "a" survives any alignment; a file (next
    test) starts on a frame boundary and can spell any letters.
    """
    return np.concatenate(
        [silence(0.3), spoken_letters("a"), silence(1.0), spoken_letters("aaa"), silence(1.0)]
    )


def fake_model_loader(settings: Any, device: Any) -> tuple[Any, dict[str, Any]]:
    source = "s3://models-bucket/models/tones.pt?versionId=v42"
    return FakeStreamingModel(), {"model_source": source, "model_sha256": FAKE_SHA256}


def finals_of(page: Page) -> list[str]:
    return page.locator("#finals li").all_inner_texts()


@pytest.mark.slow  # a few seconds of real-time audio per attempt, up to three attempts
def test_browser_microphone_shows_the_real_servers_transcript(playwright, tmp_path, background, start_server):
    asr = start_server(fake_model_loader)
    clip = tone_clip()
    wav = tmp_path / "tones.wav"
    sf.write(wav, clip, 16000, subtype="PCM_16")
    page_url = f"http://127.0.0.1:{asr.health_port}/"
    relays: list[AudioSink] = []

    def attempt() -> None:
        relay = RecordingRelay(asr.server.ws_port)
        relays.append(relay)
        background.run(relay.start())
        browser = launch_chromium(playwright, fake_microphone_flags(wav))
        try:
            page = browser.new_page()
            page.goto(page_url)
            # What the page learned from /ui/config.json: the WebSocket port and the model.
            expect(page.locator("#ws-url")).to_have_value(f"ws://127.0.0.1:{asr.server.ws_port}/")
            expect(page.locator("#model-version")).to_have_text(f"tones.pt@v42 · {FAKE_SHA256[:12]}")
            expect(page.locator("#token-row")).to_be_hidden()
            # The same page pointed at the relay with the ?ws= override.
            page.goto(f"{page_url}?ws=ws://127.0.0.1:{relay.port}/")
            page.click("#mic-button")
            expect(page.locator("#state")).to_have_attribute("data-state", "streaming")
            expect(page.locator("#partial")).not_to_be_empty(timeout=10_000)
            expect(page.locator("#finals li")).to_have_count(2, timeout=15_000)
            page.click("#stop-button")
            expect(page.locator("#state")).to_have_text("closed (1000 done)", timeout=10_000)
            assert finals_of(page) == TONE_WORDS
            assert page.inner_text("#segment-count") == "2"
            assert re.fullmatch(r"\d+ ms", page.inner_text("#latency"))
            assert page.inner_text("#message") == ""
        finally:
            browser.close()
            background.run(relay.stop())

    until_clean_capture(attempt, relays, clip)


def test_browser_file_picker_passes_the_token_when_auth_is_on(browser, tmp_path, start_server):
    asr = start_server(fake_model_loader, auth_tokens=("s3cret",))
    path = tmp_path / "tones-44k.wav"
    sf.write(path, np.concatenate([spoken_letters("bad", 44100), silence(0.5, 44100)]), 44100)
    page = browser.new_page()
    try:
        page.goto(f"http://127.0.0.1:{asr.health_port}/")
        expect(page.locator("#token-row")).to_be_visible()  # config.json says a token is required
        page.set_input_files("#file-input", str(path))
        expect(page.locator("#state")).to_have_attribute("data-state", "error", timeout=10_000)
        expect(page.locator("#message")).to_have_text("server error: a valid token is required")
        assert finals_of(page) == []

        page.fill("#token", "s3cret")
        page.set_input_files("#file-input", str(path))
        expect(page.locator("#state")).to_have_text("closed (1000 done)", timeout=15_000)
        assert finals_of(page) == ["b a d"]
    finally:
        page.close()


def test_browser_page_is_hidden_when_ui_is_disabled(start_server):
    asr = start_server(fake_model_loader, ui_enabled=False)
    for path in ["/", "/ui/app.js", "/ui/config.json"]:
        assert conftest_http_get(asr.health_port, path)[0] == 404, path
    assert conftest_http_get(asr.health_port, "/health")[0] == 200


@pytest.mark.parametrize(
    ("source", "label"),
    [
        ("s3://models-bucket/models/demo-v3.pt?versionId=3HL4kqtJ", "demo-v3.pt@3HL4kqtJ"),
        ("s3://models-bucket/models/demo-v3.pt", "demo-v3.pt"),
        ("default:/app/asr_service/model_files/demo/demo.pt", "demo.pt (built-in)"),
        ("/srv/private/dir/model.pt", "model.pt"),
        (None, None),
    ],
)
def test_browser_page_names_the_model_without_bucket_or_directories(source, label):
    assert model_label(source) == label


def test_browser_says_so_when_the_server_cannot_be_reached(browser, tmp_path, recorder_page_url):
    path = tmp_path / "short.wav"
    sf.write(path, chirp(16000, 0.3), 16000)
    page = browser.new_page()
    try:
        page.goto(f"{recorder_page_url}?ws=ws://127.0.0.1:9/")  # the discard port: nothing listens
        page.set_input_files("#file-input", str(path))
        expect(page.locator("#state")).to_have_attribute("data-state", "error", timeout=10_000)
        expect(page.locator("#message")).to_contain_text("could not open ws://127.0.0.1:9/ (1006)")
        expect(page.locator("#mic-button")).to_be_enabled()  # ready for another try
    finally:
        page.close()


# ------------------------------------------------------------------ the shipped demo model
# Held-out sentences synthesised for the demo model (tests/data/clips), through the page, to
# the real server loading the shipped checkpoint the way production does (no model settings).
CLIPS = Path(__file__).resolve().parents[1] / "data" / "clips"


def demo_clip(name: str) -> tuple[np.ndarray, str]:
    audio, rate = sf.read(CLIPS / name, dtype="float32")
    assert rate == 16000 and audio.ndim == 1, f"{name}: expected 16 kHz mono"
    return audio, json.loads((CLIPS / "transcripts.json").read_text())[name]


def shipped_model_label() -> str:
    digest = hashlib.sha256(DEFAULT_MODEL_PATH.read_bytes()).hexdigest()
    return f"{DEFAULT_MODEL_PATH.name} (built-in) · {digest[:12]}"


@pytest.mark.slow  # real-time audio through the real model
def test_browser_microphone_transcribes_a_demo_clip_with_the_shipped_model(
    playwright, tmp_path, background, start_server
):
    asr = start_server(load_configured_model)
    speech, expected = demo_clip("clip1_en-us_m3.wav")
    clip = np.concatenate([silence(0.3), speech, silence(1.5)])
    wav = tmp_path / "clip1.wav"
    sf.write(wav, clip, 16000, subtype="PCM_16")
    relays: list[AudioSink] = []

    def attempt() -> None:
        relay = RecordingRelay(asr.server.ws_port)
        relays.append(relay)
        background.run(relay.start())
        browser = launch_chromium(playwright, fake_microphone_flags(wav))
        try:
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{asr.health_port}/?ws=ws://127.0.0.1:{relay.port}/")
            expect(page.locator("#model-version")).to_have_text(shipped_model_label())
            page.click("#mic-button")
            expect(page.locator("#partial")).not_to_be_empty(timeout=15_000)
            # Stop once the whole clip (it ends in silence) went out; eof flushes the last final.
            wait_until(lambda: relay_seconds(relay) > len(clip) / 16000, 30, "the whole clip")
            page.click("#stop-button")
            expect(page.locator("#state")).to_have_text("closed (1000 done)", timeout=15_000)
            shown = " ".join(finals_of(page))
            assert shown == expected, f"the page shows {shown!r}, the clip says {expected!r}"
        finally:
            browser.close()
            background.run(relay.stop())

    until_clean_capture(attempt, relays, clip)


def relay_seconds(relay: RecordingRelay) -> float:
    return sum(len(frame) for frame in relay.frames) / 32000


def transcribe_directly(ws_url: str, audio: np.ndarray) -> list[str]:
    """The finals a plain WebSocket client gets for ``audio`` (16 kHz), sent as fast as it can."""
    pcm = (np.clip(audio, -1, 1) * 32767).round().astype("<i2").tobytes()
    finals = []
    with websockets_sync_connect(ws_url) as ws:
        ws.recv()  # connection
        ws.send(json.dumps({"type": "start", "sample_rate": 16000, "encoding": "s16le"}))
        for offset in range(0, len(pcm), 3200):
            ws.send(pcm[offset : offset + 3200])
        ws.send(json.dumps({"type": "eof"}))
        for message in ws:
            event = json.loads(message)
            if event["type"] == "final" and event["text"]:
                finals.append(event["text"])
            if event["type"] == "done":
                break
    return finals


@pytest.mark.slow  # real-time audio through the real model
def test_browser_file_picker_shows_what_the_server_says_with_the_shipped_model(browser, start_server):
    """The page adds and loses nothing: its finals for a two-sentence file are exactly the ones a
    plain client gets for the same file (whatever the model's own mistakes are: the ground truth
    is the microphone test's business). Also takes the README's screenshot when UI_SCREENSHOT
    names a file (make ui-screenshot)."""
    asr = start_server(load_configured_model, endpoint_silence_ms=600.0)  # the default endpoint
    speech, _truth = demo_clip("clip5_two_sentences.wav")
    direct = transcribe_directly(asr.url, speech)
    assert len(direct) == 2, f"the server should end a segment between the sentences: {direct}"
    page = browser.new_page(viewport={"width": 1000, "height": 600})
    try:
        page.goto(f"http://127.0.0.1:{asr.health_port}/")
        expect(page.locator("#model-version")).to_have_text(shipped_model_label())
        page.set_input_files("#file-input", str(CLIPS / "clip5_two_sentences.wav"))
        expect(page.locator("#finals li")).to_have_count(1, timeout=20_000)
        screenshot = os.environ.get("UI_SCREENSHOT")
        if screenshot:
            # In use: the first sentence committed and, with luck, the second arriving as a partial.
            with contextlib.suppress(AssertionError):
                expect(page.locator("#partial")).to_have_text(re.compile(r"\w+ \w+"), timeout=5_000)
            page.screenshot(path=screenshot)
        expect(page.locator("#state")).to_have_text("closed (1000 done)", timeout=20_000)
        assert finals_of(page) == direct
        assert re.fullmatch(r"\d+ ms", page.inner_text("#latency-median"))
    finally:
        page.close()
