"""The kernel's view of the task's client sockets, readable by any of its processes.

A worker learns that a client left only when its event loop runs; while a long model step holds
the GIL that can be a while, and the supervisor keeps counting the session against
``MAX_SESSIONS``. A busy worker therefore made the *other* worker answer 503 while slots were in
fact free (the soak saw it now and then). The supervisor does not hold the clients' sockets, but
the kernel lists every TCP socket of the network namespace in ``/proc/net/tcp`` and
``/proc/net/tcp6`` with its state and inode, and the inode is the same in every process that
shares the socket. So, at capacity only, the supervisor reads that table once and counts the
sessions whose socket is closed, reset (gone from the table) or half-closed by the peer.
"""

from __future__ import annotations

import functools
import math
import os
import socket
import time
from collections.abc import Iterable
from pathlib import Path

from asr_service.connection import PEER_CLOSED_STATES

TABLES = ("/proc/net/tcp", "/proc/net/tcp6")


@functools.cache
def readable() -> bool:
    """Whether this machine has the tables (Linux): then the supervisor counts every worker's gone
    clients itself, and a worker need not count its own."""
    return any(os.access(path, os.R_OK) for path in TABLES)


def socket_inode(sock: socket.socket) -> int:
    """The socket's inode: the number ``/proc/net/tcp`` lists it under, in every process."""
    return os.fstat(sock.fileno()).st_ino


def live_inodes(tables: Iterable[str] = TABLES) -> frozenset[int] | None:
    """Inodes of the sockets whose peer has not closed or reset; None where no table is readable
    (not Linux): the caller then keeps its own, narrower count."""
    live: set[int] = set()
    read_any = False
    for path in tables:
        try:
            lines = Path(path).read_text(encoding="ascii").splitlines()[1:]  # first: column names
        except OSError:
            continue
        read_any = True
        for line in lines:
            fields = line.split()
            # sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
            if len(fields) < 10:
                continue
            try:
                state, inode = int(fields[3], 16), int(fields[9])
            except ValueError:
                continue
            if inode and state not in PEER_CLOSED_STATES:
                live.add(inode)
    return frozenset(live) if read_any else None


class CachedTable:
    """``live_inodes`` read at most once per ``ttl_s``: under an overload storm every refused
    handshake asks, and one read costs about a millisecond per thousand sockets. A socket made
    after the read is not in it: callers count a socket as gone only if it is older than the read
    (``read_at``), or a new session would look gone and be admitted past the limit."""

    def __init__(self, ttl_s: float = 0.1, tables: Iterable[str] = TABLES) -> None:
        self.ttl_s = ttl_s
        self.tables = tuple(tables)
        self.read_at = -math.inf
        self._live: frozenset[int] | None = None

    def live(self) -> frozenset[int] | None:
        now = time.monotonic()
        if now - self.read_at >= self.ttl_s:
            self._live, self.read_at = live_inodes(self.tables), now
        return self._live
