"""A pytest plugin that fails a test which opens a network connection off this machine.

Every server a test talks to is one a fixture or the test started here: a real server on port 0,
moto in server mode, ``python -m asr_service``, nginx, Chromium, all on the loopback interface.
moto's in-process mock answers boto3 before any socket is opened. So a connection to anything
but loopback (or a Unix socket) is a test reaching the internet or a real AWS account: the
guard refuses it with an error naming the address, and fails the test even when the code under
test catches the error (it is recorded, and the test fails with the record at the end).

A test that really needs another host says so: ``@pytest.mark.allow_network("203.0.113.5")``
(those hosts) or ``@pytest.mark.allow_network`` (any host).

The root conftest registers this plugin (``pytest_plugins``).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import pytest

MARKER = "allow_network"


class NetworkGuardError(AssertionError):
    """A test opened a connection the guard does not allow. Not an OSError on purpose: code that
    retries or swallows connection errors does not hide it."""


@dataclass
class _Policy:
    test: str = ""
    any_host: bool = False
    hosts: frozenset[str] = frozenset()
    refused: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


_POLICY = _Policy()
_ORIGINAL: dict[str, Any] = {}


def is_local(host: str) -> bool:
    """Loopback and "any" addresses, and names that only ever mean this machine."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False  # another host name: it resolves off this machine as far as we can tell
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified


def _check(sock: socket.socket, address: Any) -> None:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return  # Unix sockets, netlink: never leave the machine
    host, port = str(address[0]), address[1]
    if is_local(host) or _POLICY.any_host or host in _POLICY.hosts:
        return
    message = (
        f"{_POLICY.test or 'a test'} opened a network connection to {host}:{port}; tests talk only "
        f"to servers on this machine (mark the test @pytest.mark.{MARKER}({host!r}) if it must)"
    )
    with _POLICY.lock:
        _POLICY.refused.append(message)
    raise NetworkGuardError(message)


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check(self, address)
    _ORIGINAL["connect"](self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check(self, address)
    result: int = _ORIGINAL["connect_ex"](self, address)
    return result


def _guarded_sendto(self: socket.socket, data: bytes, *args: Any) -> int:
    _check(self, args[-1])
    result: int = _ORIGINAL["sendto"](self, data, *args)
    return result


def install() -> None:
    if _ORIGINAL:
        return
    for name, guarded in (
        ("connect", _guarded_connect),
        ("connect_ex", _guarded_connect_ex),
        ("sendto", _guarded_sendto),
    ):
        _ORIGINAL[name] = getattr(socket.socket, name)
        setattr(socket.socket, name, guarded)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(*hosts): the test may connect to these hosts (any host without arguments)",
    )
    install()


def _fail_on_refusals() -> None:
    with _POLICY.lock:
        refused, _POLICY.refused[:] = list(_POLICY.refused), []
    if refused:
        pytest.fail("network guard: " + "; ".join(dict.fromkeys(refused)), pytrace=False)


def _checked() -> Generator[None, None, None]:
    """Runs one test phase; a refused connection fails it, also when the code under test caught
    the error and failed (or passed) some other way: the refusal is the cause worth reading."""
    try:
        yield
    except BaseException:
        _fail_on_refusals()
        raise
    _fail_on_refusals()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    marker = item.get_closest_marker(MARKER)
    _POLICY.test = item.nodeid
    _POLICY.any_host = marker is not None and not marker.args
    _POLICY.hosts = frozenset(str(host) for host in marker.args) if marker is not None else frozenset()
    with _POLICY.lock:
        _POLICY.refused.clear()
    return (yield from _checked())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    return (yield from _checked())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    return (yield from _checked())
