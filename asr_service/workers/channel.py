"""The control channel between the supervisor and one worker: a Unix ``SOCK_SEQPACKET`` pair.

SEQPACKET keeps message boundaries (one JSON object per datagram, no framing code) and carries
file descriptors (``SCM_RIGHTS``) with a message, which is how an accepted client socket moves
from the supervisor to a worker. Messages (``"t"`` names the kind):

- supervisor → worker: ``conn`` (with the client socket and its ``id``), ``reserved`` (``id``,
  ``ok``: whether the task has a ``MAX_SESSIONS`` slot for it), ``metrics`` (``id``: answer with
  a snapshot);
- worker → supervisor: ``state`` (``ready``, ``draining``, ``model_info``), ``reserve`` (``id``,
  ``stale``: a slot for a handshake about to be accepted), ``released`` (the session of connection
  ``id`` ended: its slot is free), ``closed`` (the connection ``id`` is gone), ``metrics``
  (``id`` and the snapshot, ``aggregate.Snapshot``).

The channel keeps order: a ``closed`` sent before a ``metrics`` answer is seen first, so the
task's ``/metrics`` never shows a session that its slot count has already forgotten, or back.

When either side's process ends, the kernel closes its end: the other reads end-of-file, and
client sockets still queued in the channel are closed with it (their clients see a TCP close).
"""

from __future__ import annotations

import json
import socket
from typing import Any

CONTROL_FD_ENV = "ASR_WORKER_CONTROL_FD"
INDEX_ENV = "ASR_WORKER_INDEX"
WS_PORT_ENV = "ASR_WORKER_WS_PORT"
# A metrics snapshot (Prometheus text of one worker) is tens of KiB; leave room.
_MAX_MESSAGE = 4 << 20


class ChannelClosedError(ConnectionError):
    """The other side's process has gone (end-of-file on the channel)."""


def control_pair() -> tuple[socket.socket, socket.socket]:
    """(supervisor end, worker end); the worker end is inherited by the worker process."""
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for end in (parent, child):
        end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _MAX_MESSAGE)
        end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _MAX_MESSAGE)
    child.set_inheritable(True)
    return parent, child


def send(sock: socket.socket, message: dict[str, Any], fd: int | None = None, *, wait: bool = True) -> None:
    """Send one message (and a descriptor); ``wait=False`` raises BlockingIOError when the peer's
    queue is full instead of blocking (the supervisor never waits on a stuck worker)."""
    data = json.dumps(message, separators=(",", ":")).encode()
    flags = 0 if wait else socket.MSG_DONTWAIT
    socket.send_fds(sock, [data], [fd] if fd is not None else [], flags)


def receive(sock: socket.socket) -> list[tuple[dict[str, Any], int | None]]:
    """Every message waiting now (never blocks); ChannelClosedError at end-of-file."""
    messages: list[tuple[dict[str, Any], int | None]] = []
    while True:
        try:
            data, fds, _flags, _address = socket.recv_fds(sock, _MAX_MESSAGE, 1, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return messages
        if not data and not fds:
            for _message, fd in messages:  # the caller never sees these: do not leak them
                if fd is not None:
                    socket.close(fd)
            raise ChannelClosedError("control channel closed")
        messages.append((json.loads(data), fds[0] if fds else None))
