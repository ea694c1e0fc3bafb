"""The health port: a small HTTP/1.1 server with a route table.

``/health`` (alive), ``/ready`` (model warmed up and not draining) and ``/metrics`` (the seed's
JSON, or Prometheus text when the ``Accept`` header asks for it, as scrapers do). Other parts
add routes (the browser page adds ``GET /`` and static files) with :meth:`HttpServer.add_route`
and :meth:`HttpServer.add_prefix_route` instead of editing this module.

It is deliberately tiny: GET/HEAD only, one request per connection, bounded header size, so a
probe or a scraper can never tie up the event loop.

Why not websockets' own ``process_request`` (its documented health-check pattern) on this port:
measured with ``scripts/health_port_compare.py`` (websockets 17.4, the same routes, raw requests
on a loopback port), the library answers GET alike (200/503/404, ``Accept``-dependent
``/metrics``, HTTP/1.0 without Host, promptly beside 200 stalled clients) but

- a request with a body (``POST`` with data, as ``curl -d`` or urllib send) is dropped without
  any response, before ``process_request`` runs; here it is a 405 (a test relies on that);
- two pipelined requests on one connection raise an ``AssertionError`` inside the library
  ("unexpected internal error" in the log) and neither is answered; here the first one is;
- a malformed request line gets a closed socket instead of a 400;
- ``HEAD`` comes back with the GET body unless every route strips it itself.

It does answer a 20 KiB header with 431 where this server closes, and lets a half-sent request
hang 10 s (its handshake timeout) where this one allows 5 s. Revisit when the library answers
requests with bodies and pipelined requests.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from asr_service.logging_setup import get_logger
from asr_service.metrics import ServiceMetrics

log = get_logger(component="http")

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_MAX_HEADER_BYTES = 16 * 1024
_READ_TIMEOUT_S = 5.0
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any) -> Response:
        return cls(status, json.dumps(payload).encode(), "application/json")


Handler = Callable[[Request], Awaitable[Response]]


class ServiceStatus(Protocol):
    """What the health routes read from the running service."""

    metrics: ServiceMetrics

    def is_ready(self) -> bool: ...

    def readiness(self) -> dict[str, Any]: ...

    def metrics_json(self) -> dict[str, Any]: ...


def wants_prometheus(accept: str) -> bool:
    accept = accept.lower()
    return "text/plain" in accept or "application/openmetrics-text" in accept


class HttpServer:
    def __init__(self) -> None:
        self._routes: dict[str, Handler] = {}
        self._prefix_routes: list[tuple[str, Handler]] = []
        self._server: asyncio.Server | None = None

    def add_route(self, path: str, handler: Handler) -> None:
        """Serve GET/HEAD ``path`` exactly."""
        self._routes[path] = handler

    def add_prefix_route(self, prefix: str, handler: Handler) -> None:
        """Serve GET/HEAD for every path under ``prefix`` (e.g. static files); longest prefix wins."""
        self._prefix_routes.append((prefix, handler))
        self._prefix_routes.sort(key=lambda item: len(item[0]), reverse=True)

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._handle, host, port, limit=_MAX_HEADER_BYTES)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _find(self, path: str) -> Handler | None:
        if path in self._routes:
            return self._routes[path]
        for prefix, handler in self._prefix_routes:
            if path.startswith(prefix):
                return handler
        return None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        method = "GET"
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT_S)
            request = _parse_request(head)
            method = request.method
            if request.method not in ("GET", "HEAD"):
                response = Response(405, b"method not allowed\n", headers={"Allow": "GET, HEAD"})
            else:
                handler = self._find(request.path)
                response = await handler(request) if handler else Response(404, b"not found\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            writer.close()
            return
        except ValueError:
            response = Response(400, b"bad request\n")
        except Exception:
            log.exception("http_handler_failed")
            response = Response(500, b"internal error\n")
        try:
            writer.write(_render(response, head_only=method == "HEAD"))
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


def _parse_request(head: bytes) -> Request:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise ValueError("bad request line")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    target = urlsplit(parts[1])
    return Request(parts[0].upper(), target.path or "/", parse_qs(target.query), headers)


def _render(response: Response, head_only: bool) -> bytes:
    reason = _REASONS.get(response.status, "Error")
    headers = {
        "Content-Type": response.content_type,
        "Content-Length": str(len(response.body)),
        "Cache-Control": "no-store",
        "Connection": "close",
        **response.headers,
    }
    head = f"HTTP/1.1 {response.status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode("latin-1") + b"\r\n" + (b"" if head_only else response.body)


def add_health_routes(http: HttpServer, status: ServiceStatus) -> None:
    """The container contract's three endpoints (DESIGN.md)."""

    async def health(_request: Request) -> Response:
        return Response.json(200, {"status": "alive"})

    async def ready(_request: Request) -> Response:
        return Response.json(200 if status.is_ready() else 503, status.readiness())

    async def metrics(request: Request) -> Response:
        if wants_prometheus(request.headers.get("accept", "")):
            return Response(200, status.metrics.prometheus_text(), PROMETHEUS_CONTENT_TYPE)
        return Response.json(200, status.metrics_json())

    http.add_route("/health", health)
    http.add_route("/ready", ready)
    http.add_route("/metrics", metrics)
