"""workers.tcp_table: the supervisor's kernel-side view of clients that left, for sockets it does
not hold (they live in a worker). Real loopback sockets, the real /proc tables."""

from __future__ import annotations

import socket
import struct
import sys
import time
from pathlib import Path

import pytest

from asr_service.settings import Settings
from asr_service.workers.supervisor import Handed, Supervisor, Worker
from asr_service.workers.tcp_table import CachedTable, live_inodes, socket_inode
from tests.asr_service.helpers import wait_until

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="/proc/net/tcp is Linux's")


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
    try:
        listener = socket.create_server((host, 0), family=family)
    except OSError as error:  # a container without IPv6 loopback
        pytest.skip(f"cannot listen on {host}: {error}")
    with listener:
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
            wait_until(lambda: not live(inodes[1]) and not live(inodes[2]), timeout=2.0)
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


def write_table(path: Path, rows: list[tuple[int, int]]) -> None:
    """(state, inode) rows in /proc/net/tcp's layout."""
    lines = ["  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt uid timeout inode"]
    for index, (state, inode) in enumerate(rows):
        lines.append(
            f"   {index}: 0100007F:1F90 0100007F:{0xD000 + index:04X} {state:02X} 00000000:00000000 "
            f"00:00000000 00000000 0 0 {inode} 1"
        )
    path.write_text("\n".join(lines) + "\n")


def test_the_cached_table_is_read_at_most_once_per_ttl(tmp_path: Path) -> None:
    table = tmp_path / "tcp"
    write_table(table, [(1, 10)])
    cached = CachedTable(ttl_s=0.2, tables=[str(table)])
    assert cached.live() == frozenset({10})
    write_table(table, [(1, 10), (1, 11)])
    assert cached.live() == frozenset({10})  # within the TTL: the same read
    time.sleep(0.25)
    assert cached.live() == frozenset({10, 11})


def test_the_supervisor_counts_gone_sessions_of_every_worker_but_never_a_newer_one(tmp_path: Path) -> None:
    table = tmp_path / "tcp"
    supervisor = Supervisor(Settings(), 2, [])
    supervisor._sockets = CachedTable(ttl_s=60, tables=[str(table)])
    before = time.monotonic()
    busy = Worker(0, 0, process=None, control=None)  # type: ignore[arg-type]  # never started here
    other = Worker(1, 1, process=None, control=None)  # type: ignore[arg-type]
    busy.connections = {1: Handed(101, before), 2: Handed(102, before), 3: Handed(103, before)}
    busy.sessions = {1, 2, 3}
    other.connections = {4: Handed(104, before)}
    other.sessions = {4}
    supervisor.workers = {0: busy, 1: other}
    # 101 is established, 102 half-closed by its client, 103 reset (gone from the table); 104 lives.
    write_table(table, [(1, 101), (8, 102), (1, 104)])
    assert supervisor._gone_sessions() == 2
    # A session handed over after the (cached) read is not in it, and must not look gone.
    other.connections[5] = Handed(105, time.monotonic() + 1)
    other.sessions.add(5)
    assert supervisor._gone_sessions() == 2
