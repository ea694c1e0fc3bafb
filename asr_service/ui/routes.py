"""Hook the browser page into the health port's route table (``asr_service.http``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Protocol
from urllib.parse import parse_qs

from asr_service.http import HttpServer, Request, Response
from asr_service.settings import Settings
from asr_service.ui import (
    ASSET_PREFIX,
    CONFIG_PATH,
    INDEX_PATH,
    SECURITY_HEADERS,
    config_document,
    load_assets,
)


@dataclass(frozen=True)
class PageConfig:
    """What the page is told at start; read per request, since the WebSocket port (port 0 in
    tests) and the model are only known once the server has bound and loaded."""

    ws_port: int
    auth_required: bool
    model_version: str | None
    model_sha256: str | None


def add_ui_routes(http: HttpServer, page_config: Callable[[], PageConfig]) -> None:
    """Serve ``GET /`` (the page), ``/ui/<file>`` (its scripts and styles) and ``/ui/config.json``."""
    assets = load_assets()
    headers = dict(SECURITY_HEADERS)

    async def static(request: Request) -> Response:
        asset = assets.get(request.path)  # exact names only: no path is ever joined to the disk
        if asset is None:
            return Response(404, b"not found\n")
        return Response(200, asset.body, asset.content_type, dict(headers))

    async def config(_request: Request) -> Response:
        current = page_config()
        body = config_document(
            ws_port=current.ws_port,
            auth_required=current.auth_required,
            model_version=current.model_version,
            model_sha256=current.model_sha256,
        )
        return Response(200, body, "application/json", {**headers, "Cache-Control": "no-store"})

    http.add_route(INDEX_PATH, static)
    http.add_route(CONFIG_PATH, config)
    http.add_prefix_route(ASSET_PREFIX, static)


class RunningServer(Protocol):
    """What :func:`page_config_of` reads from ``asr_service.server.AsrServer``."""

    settings: Settings
    ws_port: int
    model_info: dict[str, Any]


def page_config_of(server: RunningServer) -> PageConfig:
    info = server.model_info
    return PageConfig(
        ws_port=server.ws_port,
        auth_required=server.settings.auth_enabled,
        model_version=info.get("model_version") or model_label(info.get("model_source")),
        model_sha256=info.get("model_sha256"),
    )


def model_label(source: str | None) -> str | None:
    """A short public name for the configured model: the file name and, for S3, its version.

    The bucket and local directories stay out of the page (it may be reachable by anyone).
    """
    if not source:
        return None
    default = source.startswith("default:")
    location, _, query = source.removeprefix("default:").partition("?")
    name = PurePosixPath(location).name or location
    version = parse_qs(query).get("versionId", [""])[0]
    if version:
        return f"{name}@{version}"
    return f"{name} (built-in)" if default else name
