"""Client credentials: who is calling, decided in constant time, and never a token in a log line.

``AUTH_TOKENS`` holds the named-client table. In AWS it is the Secrets Manager secret that ECS
injects through the task definition's ``secrets`` (DESIGN.md): a JSON object mapping client names
to their credentials::

    {"web-app": "sha256:3f0a…",                                  # the token's SHA-256 (64 hex)
     "partner": ["sha256:<new>", "sha256:<previous>"],           # two valid during a rotation
     "batch":   {"tokens": ["raw-token"], "max_sessions": 4}}    # per-client session limit

A credential is either the token itself or ``sha256:`` + the hex SHA-256 of it (what
``make rotate-tokens`` writes, so the secret and the task's environment never hold a usable
token). The older form, comma-separated tokens (``make serve``, tests), is still read: each token
becomes a client named ``token-1``, ``token-2``, ...

The client presents its token as ``Authorization: Bearer <token>`` on the handshake or as
``?token=<token>`` in the URL (browsers cannot set headers). Exactly one credential is accepted:
two Authorization headers, two ``token`` parameters or one of each are refused as ambiguous, so a
proxy adding its own header can never smuggle a second identity in.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from websockets.datastructures import Headers

SHA256_PREFIX = "sha256:"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
#: Names go into log lines, Prometheus labels and EMF dimensions: keep them plain.
CLIENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: A longer credential is refused without hashing it (the handshake's own limit is 8 KiB a line).
MAX_TOKEN_CHARS = 1024

RefusalReason = Literal["missing", "repeated", "malformed", "unknown"]


class AuthConfigError(ValueError):
    """The client table cannot be read. The message names the client, never a credential."""


class CredentialError(Exception):
    """The request's credential is missing, repeated or malformed (always: ``unauthorized``)."""

    def __init__(self, reason: RefusalReason) -> None:
        super().__init__(reason)
        self.reason: RefusalReason = reason


@dataclass(frozen=True)
class Client:
    name: str
    #: Concurrent sessions this client may hold on one task; None: only MAX_SESSIONS applies.
    max_sessions: int | None = None


class ClientTable:
    """The named clients and the SHA-256 of every token each may use."""

    def __init__(self, entries: Iterable[tuple[Client, Iterable[bytes]]] = ()) -> None:
        self.clients: tuple[Client, ...] = ()
        self._digests: list[tuple[bytes, int]] = []
        clients: list[Client] = []
        for client, digests in entries:
            index = len(clients)
            clients.append(client)
            self._digests.extend((digest, index) for digest in digests)
        self.clients = tuple(clients)

    @classmethod
    def from_tokens(cls, tokens: Iterable[str]) -> ClientTable:
        """Anonymous tokens (the comma-separated form): clients ``token-1``, ``token-2``, ..."""
        return cls((Client(f"token-{number}"), [_digest(token)]) for number, token in enumerate(tokens, 1))

    def __len__(self) -> int:
        return len(self.clients)

    def __bool__(self) -> bool:
        return bool(self._digests)

    def __repr__(self) -> str:  # never the digests: they are as good as the token to a brute-forcer
        return f"ClientTable({len(self.clients)} clients)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ClientTable):
            return NotImplemented
        return self.clients == other.clients and sorted(self._digests) == sorted(other._digests)

    def __hash__(self) -> int:
        return hash(self.clients)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(client.name for client in self.clients)

    def match(self, token: str) -> Client | None:
        """The client ``token`` belongs to, or None.

        The presented token is hashed and its digest compared with every stored digest, all of
        them, with ``hmac.compare_digest``: the time taken depends on neither which entry matched
        nor how much of a token was right.
        """
        presented = _digest(token)
        found = -1
        for digest, index in self._digests:
            if hmac.compare_digest(presented, digest):
                found = index
        return self.clients[found] if found >= 0 else None


def _digest(token: str) -> bytes:
    # Any str encodes: websockets decodes header values as ISO-8859-1, parse_qs replaces bad
    # UTF-8; "surrogateescape" covers a str built any other way.
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def parse_client_tokens(raw: str) -> ClientTable:
    """``AUTH_TOKENS`` → ClientTable: a JSON object of named clients, else comma-separated tokens."""
    text = raw.strip()
    if not text:
        return ClientTable()
    if text.startswith(("{", "[")):
        try:
            document = json.loads(text)
        except ValueError:
            # No excerpt of the text: it is the secret.
            raise AuthConfigError(f"AUTH_TOKENS starts with {text[0]!r} but is not valid JSON") from None
        if not isinstance(document, dict):
            raise AuthConfigError("AUTH_TOKENS must be a JSON object of client names")
        return client_table(document)
    tokens = [token.strip() for token in text.split(",") if token.strip()]
    return ClientTable.from_tokens(tokens)


def client_table(document: Mapping[str, Any]) -> ClientTable:
    """The named-client form (the secret's JSON, already decoded)."""
    entries = []
    for name, value in document.items():
        if not isinstance(name, str) or not CLIENT_NAME.match(name):
            raise AuthConfigError(
                f"client name {name!r} must be 1-64 characters of letters, digits, '.', '_' or '-'"
            )
        max_sessions: int | None = None
        if isinstance(value, dict):
            unknown = set(value) - {"tokens", "max_sessions"}
            if unknown:
                raise AuthConfigError(f"client {name}: unknown keys {sorted(unknown)}")
            limit = value.get("max_sessions")
            if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
                raise AuthConfigError(f"client {name}: max_sessions must be a whole number >= 1")
            max_sessions = limit
            value = value.get("tokens", [])
        credentials = [value] if isinstance(value, str) else value
        if not isinstance(credentials, list) or not all(isinstance(c, str) for c in credentials):
            raise AuthConfigError(f"client {name}: give a token, 'sha256:<hex>', or a list of them")
        digests = [_credential_digest(name, credential) for credential in credentials]
        if not digests:
            raise AuthConfigError(f"client {name} has no token")
        entries.append((Client(name, max_sessions), digests))
    return ClientTable(entries)


def _credential_digest(name: str, credential: str) -> bytes:
    credential = credential.strip()
    if credential.lower().startswith(SHA256_PREFIX):
        digest = credential[len(SHA256_PREFIX) :].lower()
        if not _HEX64.match(digest):
            raise AuthConfigError(f"client {name}: a sha256: credential needs 64 hexadecimal characters")
        return bytes.fromhex(digest)
    if not credential:
        raise AuthConfigError(f"client {name} has an empty token")
    return _digest(credential)


def hash_token(token: str) -> str:
    """The stored form of a token: ``sha256:<hex>``."""
    return SHA256_PREFIX + _digest(token).hex()


def presented_token(headers: Headers, path: str) -> str:
    """The one credential of a handshake, or CredentialError saying why there is none.

    Raises for: no credential (``missing``); more than one, including the same token twice
    (``repeated``); an Authorization header that is not ``Bearer <token>``, an empty or overlong
    token (``malformed``).
    """
    header_values = headers.get_all("Authorization")
    query = parse_qs(urlsplit(path).query, keep_blank_values=True).get("token", [])
    if len(header_values) + len(query) > 1:
        raise CredentialError("repeated")
    if header_values:
        scheme, _, token = header_values[0].strip().partition(" ")
        if scheme.lower() != "bearer":
            raise CredentialError("malformed")
        token = token.strip()
    elif query:
        token = query[0]
    else:
        raise CredentialError("missing")
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise CredentialError("malformed")
    return token


def authenticate(table: ClientTable, headers: Headers, path: str) -> Client:
    """The client a handshake authenticates as; CredentialError (reason ``unknown`` too) otherwise."""
    client = table.match(presented_token(headers, path))
    if client is None:
        raise CredentialError("unknown")
    return client
