"""connection.peer_gone: the admission check's view of a client that already left. A client that
sent audio and then closed is gone even while its audio is still unread (a busy event loop)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from websockets.protocol import State

from asr_service.connection import peer_gone


@pytest.fixture
def accepted() -> Iterator[tuple[socket.socket, socket.socket]]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    yield client, server
    client.close()
    server.close()


def as_connection(raw: socket.socket) -> Any:  # the two attributes peer_gone reads
    transport = SimpleNamespace(get_extra_info=lambda name: raw if name == "socket" else None)
    return SimpleNamespace(state=State.OPEN, transport=transport)


def settle(predicate: Callable[[], bool], timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_a_connected_client_is_not_gone(accepted: tuple[socket.socket, socket.socket]) -> None:
    client, server = accepted
    client.sendall(b"audio")
    assert not peer_gone(as_connection(server))


def test_a_client_that_closed_with_audio_still_unread_is_gone(
    accepted: tuple[socket.socket, socket.socket],
) -> None:
    client, server = accepted
    client.sendall(b"audio the server has not read yet")
    client.shutdown(socket.SHUT_WR)  # its FIN, behind the unread bytes
    assert settle(lambda: peer_gone(as_connection(server)))
    assert server.recv(5, socket.MSG_PEEK) == b"audio"  # nothing was consumed


def test_a_closed_connection_is_gone() -> None:
    closed: Any = SimpleNamespace(state=State.CLOSED, transport=None)
    assert peer_gone(closed)
