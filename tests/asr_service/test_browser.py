"""The browser page in a real browser: Debian's Chromium driven headless by Playwright.

No browser is ever downloaded: Playwright drives /usr/bin/chromium (``make test`` apt-installs
it through mk/ui.mk). These tests skip only when that Chromium cannot start at all.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, Route, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from asr_service import ui

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
