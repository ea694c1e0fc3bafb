"""workers.tcp_table: the supervisor's kernel-side view of clients that left, for sockets it does
not hold (they live in a worker). Real loopback sockets, the real /proc tables."""

from __future__ import annotations

import socket
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from asr_service.workers.tcp_table import live_inodes, socket_inode

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="/proc/net/tcp is Linux's")


def settle(predicate: Callable[[], bool], timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def pair(listener: socket.socket) -> tuple[socket.socket, socket.socket]:
    client = socket.create_connection(listener.getsockname()[:2])
    server, _ = listener.accept()
    return client, server


def live(inode: int) -> bool:
    table = live_inodes()
    assert table is not None
    return inode in table


@pytest.mark.parametrize("family, host", [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_a_connected_client_is_live_and_one_that_left_is_not(family: int, host: str) -> None:
    if family == socket.AF_INET6 and not socket.has_ipv6:
        pytest.skip("no IPv6")
    with socket.create_server((host, 0), family=family) as listener:
        staying, staying_server = pair(listener)
        closing, closing_server = pair(listener)
        resetting, resetting_server = pair(listener)
        try:
            inodes = [socket_inode(s) for s in (staying_server, closing_server, resetting_server)]
            assert all(live(inode) for inode in inodes)
            closing.sendall(b"audio nobody has read yet")
            closing.close()  # FIN behind unread data: CLOSE_WAIT on the server's side
            resetting.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            resetting.close()  # RST: the socket leaves the table
            assert settle(lambda: not live(inodes[1]) and not live(inodes[2]))
            assert live(inodes[0])
        finally:
            for sock in (staying, staying_server, closing_server, resetting_server):
                sock.close()


def test_no_readable_table_means_no_answer(tmp_path: Path) -> None:
    assert live_inodes([str(tmp_path / "missing")]) is None


def test_a_table_line_it_cannot_read_is_skipped(tmp_path: Path) -> None:
    table = tmp_path / "tcp"
    table.write_text(
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000 0 0 4242 1\n"
        "   1: 0100007F:1F90 0100007F:D432 08 00000000:00000000 00:00000000 00000000 0 0 4343 1\n"
        "   2: garbage\n"
        "   3: 0100007F:1F90 0100007F:D433 zz 00000000:00000000 00:00000000 00000000 0 0 4444 1\n"
    )
    assert live_inodes([str(table)]) == frozenset({4242})  # 4343 is CLOSE_WAIT: its peer left
