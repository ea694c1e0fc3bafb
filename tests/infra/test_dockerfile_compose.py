"""docker-compose.yml and the nginx WebSocket proxy of its `with-nginx` profile.

No Docker engine runs here, so the compose file is checked as data; the nginx configuration is
checked by nginx itself (`nginx -t`) and then run for real in front of a real websockets server,
when nginx is installed.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

ROOT = Path(__file__).resolve().parents[2]
NGINX_CONF = ROOT / "deploy" / "nginx" / "nginx.conf"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
needs_nginx = pytest.mark.skipif(NGINX is None, reason="nginx not installed (apt-get install nginx-light)")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_default_service_publishes_both_ports_and_drains_within_the_stop_timeout(
    compose: dict[str, Any],
) -> None:
    server = compose["services"]["asr-server"]
    assert server["build"]["dockerfile"] == "Dockerfile"
    assert set(server["ports"]) == {"8765:8765", "8080:8080"}
    assert server["stop_signal"] == "SIGTERM"
    assert server["stop_grace_period"] == "120s"
    assert int(server["environment"]["DRAIN_TIMEOUT_S"]) < 120
    assert "profiles" not in server  # `docker compose up` runs it
    assert server["read_only"] is True and any(t.startswith("/tmp:") for t in server["tmpfs"])


def test_gpu_variant_reserves_an_nvidia_gpu_behind_a_profile(compose: dict[str, Any]) -> None:
    gpu = compose["services"]["asr-server-gpu"]
    assert gpu["profiles"] == ["gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert gpu["environment"]["DEVICE"] == "cuda"
    assert set(gpu["ports"]) == {"8765:8765", "8080:8080"}


def test_nginx_profile_mounts_the_proxy_config(compose: dict[str, Any]) -> None:
    nginx = compose["services"]["nginx"]
    assert nginx["profiles"] == ["with-nginx"]
    assert "./deploy/nginx/nginx.conf:/etc/nginx/nginx.conf:ro" in nginx["volumes"]
    published = {int(mapping.split(":")[1]) for mapping in nginx["ports"]}
    assert re.search(rf"listen {published.pop()};", NGINX_CONF.read_text())


def test_nginx_proxies_websockets_with_long_timeouts() -> None:
    text = NGINX_CONF.read_text()
    assert "proxy_set_header Upgrade $http_upgrade;" in text
    assert "proxy_set_header Connection $connection_upgrade;" in text
    assert "proxy_http_version 1.1;" in text
    for directive in ("proxy_read_timeout", "proxy_send_timeout"):
        match = re.search(rf"{directive} (\d+)s;", text)
        assert match and int(match.group(1)) >= 300, f"{directive} must outlast the ALB's 300 s minimum"
    assert "http://asr:8765" in text


@needs_nginx
def test_nginx_accepts_the_configuration(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            str(NGINX),
            "-t",
            "-q",
            "-p",
            str(tmp_path),
            "-e",
            str(tmp_path / "error.log"),
            "-c",
            str(NGINX_CONF),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------------------------ live proxy
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def nginx_in_front_of(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """(nginx port, upstream port): the repository's config, pointed at a local upstream."""
    upstream_port, nginx_port = _free_port(), _free_port()
    conf = NGINX_CONF.read_text()
    conf = conf.replace("listen 8000;", f"listen 127.0.0.1:{nginx_port};")
    conf = conf.replace("http://asr:8765", f"http://127.0.0.1:{upstream_port}")
    conf = conf.replace("pid /tmp/nginx.pid;", f"pid {tmp_path}/nginx.pid;")
    temp_paths = "".join(f"    {kind}_temp_path {tmp_path}/{kind};\n" for kind in ("client_body", "proxy"))
    temp_paths += "".join(
        f"    {kind}_temp_path {tmp_path}/{kind};\n" for kind in ("fastcgi", "uwsgi", "scgi")
    )
    conf = conf.replace("http {\n", "http {\n" + temp_paths, 1)
    assert f"127.0.0.1:{upstream_port}" in conf and f"127.0.0.1:{nginx_port}" in conf
    path = tmp_path / "nginx.conf"
    path.write_text(conf)
    argv = [str(NGINX), "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(path)]
    process = subprocess.Popen(
        [*argv, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", nginx_port), timeout=0.2).close()
                break
            except OSError:
                assert process.poll() is None, (
                    f"nginx exited: {process.stderr.read() if process.stderr else ''}"
                )
                assert time.monotonic() < deadline, "nginx did not start listening"
                time.sleep(0.05)
        yield nginx_port, upstream_port
    finally:
        process.terminate()
        process.wait(timeout=10)


@needs_nginx
def test_websocket_session_passes_through_nginx_and_internal_paths_do_not(
    nginx_in_front_of: tuple[int, int],
) -> None:
    nginx_port, upstream_port = nginx_in_front_of
    seen_headers: dict[str, str] = {}

    async def echo(connection: ServerConnection) -> None:
        assert connection.request is not None
        seen_headers.update({k.lower(): v for k, v in connection.request.headers.raw_items()})
        async for message in connection:
            await connection.send(message if isinstance(message, bytes) else f"echo:{message}")

    async def scenario() -> list[str | bytes]:
        async with (
            serve(echo, "127.0.0.1", upstream_port),
            connect(f"ws://127.0.0.1:{nginx_port}/", open_timeout=10) as client,
        ):
            replies: list[str | bytes] = []
            for message in ("start", b"\x00\x01" * 320, "eof"):
                await client.send(message)
                replies.append(await asyncio.wait_for(client.recv(), 10))
            return replies

    assert asyncio.run(scenario()) == ["echo:start", b"\x00\x01" * 320, "echo:eof"]
    assert seen_headers["x-forwarded-for"] == "127.0.0.1"
    for path in ("/health", "/metrics", "/ready"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{nginx_port}{path}", timeout=5)
        assert refused.value.code == 404
