"""Who may open a session (credential, its own session limit, server capacity) and how big one
message may be.

Each refusal is a :class:`~asr_service.protocol.SessionEndError` carrying the event that says why
(``unauthorized``, ``client_session_limit``, ``overloaded``, ``closing``) and its close code, and
each is counted in the rejected-sessions metric by reason. The server's capacity rule itself
(draining, not ready, ``MAX_SESSIONS``) lives in ``AsrServer.admission_refusal``, shared with the
503 check before the upgrade; this module maps its answer to the in-session refusal.
"""

from __future__ import annotations

from collections.abc import Callable

from websockets.asyncio.server import ServerConnection

from asr_service import protocol
from asr_service.auth import Client, CredentialError, authenticate
from asr_service.logging_setup import get_logger
from asr_service.metrics import ServiceMetrics
from asr_service.protocol import CloseCode, SessionEndError
from asr_service.settings import Settings

log = get_logger(component="admission")

REFUSALS = {
    "draining": SessionEndError(
        protocol.closing_event("server_draining", CloseCode.GOING_AWAY), CloseCode.GOING_AWAY, "draining"
    ),
    "max_sessions": SessionEndError.error("overloaded", "too many concurrent sessions", CloseCode.OVERLOADED),
    "not_ready": SessionEndError.error("not_ready", "the server is still starting", CloseCode.OVERLOADED),
}


def authenticate_client(
    connection: ServerConnection, settings: Settings, metrics: ServiceMetrics
) -> Client | None:
    """Who is calling (None when auth is off); ``unauthorized`` and 1008 whatever is wrong."""
    if not settings.auth_enabled:
        return None
    request = connection.request
    try:
        if request is None:
            raise CredentialError("missing")
        return authenticate(settings.auth_tokens, request.headers, request.path)
    except CredentialError as refused:
        metrics.reject("unauthorized")
        log.warning("auth_refused", reason=refused.reason)  # the reason only, never the credential
        raise SessionEndError.error("unauthorized", "a valid token is required", CloseCode.POLICY) from None


def check_client_limit(client: Client, sessions_of: Callable[[str], int], metrics: ServiceMetrics) -> None:
    """A client over its own ``max_sessions`` gets ``client_session_limit`` and 1008."""
    name, limit = client.name, client.max_sessions
    if limit is not None and sessions_of(name) >= limit:
        metrics.reject("client_session_limit", name)
        raise SessionEndError.error(
            "client_session_limit", f"client {name} already has {limit} open sessions", CloseCode.POLICY
        )


def check_message_size(message: str | bytes, limit: int, metrics: ServiceMetrics) -> None:
    """Refuse (and count) a message over ``MAX_MESSAGE_BYTES``, whatever protocol it belongs to."""
    size = len(message)
    # A text message arrives decoded: up to 4 bytes per character on the wire. Count the
    # bytes only when the characters alone cannot settle it.
    if isinstance(message, str) and size * 4 > limit >= size:
        size = len(message.encode("utf-8"))
    if size > limit:
        metrics.reject("message_too_big")
        raise SessionEndError.error(
            "message_too_big", f"message of {size} bytes exceeds {limit}", CloseCode.TOO_BIG
        )
