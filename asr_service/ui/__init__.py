"""The browser page: a live-transcription client served by the service itself.

Plain files in ``static/`` (HTML, ES modules, CSS; no build step, nothing fetched from a CDN)
plus ``/ui/config.json``, which tells the page what it cannot know on its own: the WebSocket
port (it differs from the HTTP port the page comes from), whether a token is needed, and the
model being served. This module knows nothing about sockets; ``asr_service.http`` routes
requests here when ``UI_ENABLED`` is on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATIC_DIR = Path(__file__).parent / "static"

INDEX_PATH = "/"
ASSET_PREFIX = "/ui/"
CONFIG_PATH = "/ui/config.json"

_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}

# The page loads only its own files and talks to a WebSocket on another port of the same host
# (or wherever the user points it), hence ws:/wss: in connect-src and nothing else external.
SECURITY_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "media-src 'self' blob:; connect-src 'self' ws: wss:; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    # The page is tiny and changes with the image: always revalidate rather than serve a stale one.
    ("Cache-Control", "no-cache"),
)


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str


def load_assets(static_dir: Path = STATIC_DIR) -> dict[str, Asset]:
    """URL path -> file, read once at start: ``/`` is index.html, the rest live under ``/ui/``.

    Only files with a known type are served, so nothing else that lands in the folder leaks.
    """
    assets: dict[str, Asset] = {}
    for path in sorted(static_dir.iterdir()):
        content_type = _CONTENT_TYPES.get(path.suffix)
        if content_type is None or not path.is_file():
            continue
        asset = Asset(body=path.read_bytes(), content_type=content_type)
        assets[ASSET_PREFIX + path.name] = asset
        if path.name == "index.html":
            assets[INDEX_PATH] = asset
    if INDEX_PATH not in assets:
        raise FileNotFoundError(f"the browser page is missing: no index.html in {static_dir}")
    return assets


def config_document(
    *, ws_port: int, auth_required: bool, model_version: str | None, model_sha256: str | None
) -> bytes:
    """The JSON the page reads at start (``/ui/config.json``). Never carries a token."""
    document: dict[str, Any] = {
        "ws_port": ws_port,
        "ws_path": "/",
        "auth_required": auth_required,
        "sample_rate": 16000,
        "model": {"version": model_version, "sha256": model_sha256},
    }
    return json.dumps(document, separators=(",", ":")).encode()
