"""The health port served two ways, probed the way tests, ALB and ECS checks and scrapers do.

    PYTHONPATH=. python scripts/health_port_compare.py

Server A is ``asr_service.http.HttpServer`` (what the service runs); server B is a websockets
server whose ``process_request`` answers the same routes (the library's documented health-check
pattern). Both get the same raw requests on a real loopback port; one line per case says what
came back. The outcome is why ``asr_service/http.py`` exists (its docstring quotes it).
"""

from __future__ import annotations

import asyncio
import time
from http import HTTPStatus

import websockets
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request as WsRequest
from websockets.http11 import Response as WsResponse

from asr_service.http import HttpServer, Request, Response

CASES: list[tuple[str, bytes]] = [
    ("GET /health", b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("GET /ready (not ready)", b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("GET /metrics, Accept: text/plain", b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n"),
    ("GET /unknown", b"GET /unknown HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("HEAD /health", b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("POST /health, empty body", b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"),
    ("POST /health, 2-byte body", b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"),
    ("GET /health HTTP/1.0, no Host", b"GET /health HTTP/1.0\r\n\r\n"),
    ("two pipelined GETs, one connection", b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" * 2),
    ("GET with a 20 KiB header", b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"),
    ("garbage request line", b"HELLO\r\n\r\n"),
]


async def exchange(port: int, data: bytes, read_timeout_s: float = 8.0) -> tuple[bytes, float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    writer.write(data)
    await writer.drain()
    received = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), read_timeout_s):
            received += chunk
    except (TimeoutError, ConnectionError):
        pass
    writer.close()
    return received, time.monotonic() - started


def describe(received: bytes) -> str:
    if not received:
        return "closed, no response"
    head, _, body = received.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode("latin-1")
    responses = received.count(b"HTTP/1.1 ")
    return f"{status}, {len(body)} body bytes" + (f", {responses} responses" if responses > 1 else "")


def route(path: str, accept: str) -> tuple[int, bytes, str]:
    if path == "/health":
        return 200, b'{"status": "alive"}', "application/json"
    if path == "/ready":
        return 503, b'{"status": "starting"}', "application/json"
    if path == "/metrics":
        if "text/plain" in accept:
            return 200, b"# HELP ...\n", "text/plain; version=0.0.4; charset=utf-8"
        return 200, b"{}", "application/json"
    return 404, b"not found\n", "text/plain; charset=utf-8"


async def start_hand_written() -> tuple[HttpServer, int]:
    server = HttpServer()
    for path in ("/health", "/ready", "/metrics"):

        async def handler(request: Request, path: str = path) -> Response:
            status, body, content_type = route(path, request.headers.get("accept", ""))
            return Response(status, body, content_type)

        server.add_route(path, handler)
    return server, await server.start("127.0.0.1", 0)


def library_response(_connection: ServerConnection, request: WsRequest) -> WsResponse:
    status, body, content_type = route(request.path.split("?")[0], request.headers.get("Accept", ""))
    headers = Headers(
        [("Content-Type", content_type), ("Content-Length", str(len(body))), ("Connection", "close")]
    )
    return WsResponse(status, HTTPStatus(status).phrase, headers, body)


async def probe(name: str, port: int) -> None:
    print(f"== {name}")
    for label, data in CASES:
        received, took = await exchange(port, data)
        print(f"  {label:36s} -> {describe(received)} ({took * 1000:.0f} ms)")
    received, took = await exchange(port, b"GET /hea", read_timeout_s=15.0)
    print(f"  {'half a request line, then silence':36s} -> {describe(received)} after {took:.1f} s")
    stalled = [await asyncio.open_connection("127.0.0.1", port) for _ in range(200)]
    for _reader, writer in stalled:
        writer.write(b"GET /he")
    received, took = await exchange(port, CASES[0][1])
    print(f"  {'GET /health beside 200 stalled ones':36s} -> {describe(received)} ({took * 1000:.0f} ms)")
    for _reader, writer in stalled:
        writer.close()


async def main() -> None:
    hand_written, port_a = await start_hand_written()

    async def unused(connection: ServerConnection) -> None:
        await connection.close()

    library = await serve(unused, "127.0.0.1", 0, process_request=library_response)
    port_b = int(next(iter(library.sockets)).getsockname()[1])
    await probe("A: asr_service/http.py", port_a)
    await probe(f"B: websockets {websockets.__version__} serve + process_request", port_b)
    library.close()
    await hand_written.stop()


if __name__ == "__main__":
    asyncio.run(main())
