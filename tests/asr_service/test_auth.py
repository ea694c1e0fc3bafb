"""asr_service.auth without a server: the client table, credential parsing, the constant-time match."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from websockets.datastructures import Headers

from asr_service import auth
from asr_service.auth import (
    AuthConfigError,
    Client,
    ClientTable,
    CredentialError,
    authenticate,
    hash_token,
    parse_client_tokens,
    presented_token,
)

ALICE = "alice-token-0123456789"
BOB = "bob-token-abcdefghij"


def sha(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def table() -> ClientTable:
    return parse_client_tokens(
        json.dumps(
            {
                "alice": ALICE,
                "bob": {"tokens": [sha(BOB), sha("bob-previous")], "max_sessions": 2},
            }
        )
    )


def test_named_clients_match_raw_and_hashed_tokens_and_nothing_else():
    clients = table()
    assert clients.names == ("alice", "bob")
    assert clients.match(ALICE) == Client("alice")
    assert clients.match(BOB) == Client("bob", max_sessions=2)
    assert clients.match("bob-previous") == Client("bob", max_sessions=2)  # both valid mid-rotation
    for wrong in ("", ALICE + " ", ALICE[:-1], sha(BOB), hashlib.sha256(BOB.encode()).hexdigest()):
        assert clients.match(wrong) is None, wrong


def test_comma_separated_tokens_become_numbered_clients():
    clients = parse_client_tokens(" one, two ,")
    assert clients.names == ("token-1", "token-2")
    assert clients.match("two") == Client("token-2")
    assert not parse_client_tokens("  ") and len(parse_client_tokens("")) == 0


def test_every_stored_digest_is_compared_whichever_matches(monkeypatch):
    """No early exit: the first, the last and no entry cost the same number of comparisons."""
    calls: list[int] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    clients = table()
    counts = []
    for token in (ALICE, "bob-previous", "nobody"):
        calls.clear()
        clients.match(token)
        counts.append(len(calls))
    assert counts == [3, 3, 3]


def test_hash_token_is_the_stored_form():
    assert hash_token(BOB) == sha(BOB)
    assert parse_client_tokens(json.dumps({"c": hash_token(BOB)})).match(BOB) == Client("c")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["a"]', "JSON object"),
        ('{"bad name!": "t"}', "client name"),
        ('{"c": "sha256:abc"}', "64 hexadecimal"),
        ('{"c": []}', "has no token"),
        ('{"c": ""}', "empty token"),
        ('{"c": 5}', "give a token"),
        ('{"c": {"tokens": ["t"], "max_sessions": 0}}', "max_sessions"),
        ('{"c": {"tokens": ["t"], "limit": 3}}', "unknown keys"),
    ],
)
def test_a_bad_table_names_the_problem_but_never_a_credential(document, message):
    with pytest.raises(AuthConfigError, match=message) as raised:
        parse_client_tokens(document)
    assert '"t"' not in str(raised.value) and "abc" not in str(raised.value)


def test_the_table_never_shows_tokens_or_digests():
    clients = table()
    for text in (repr(clients), str(clients)):
        assert ALICE not in text and BOB not in text
        assert hashlib.sha256(BOB.encode()).hexdigest() not in text
        assert text == "ClientTable(2 clients)"


@pytest.mark.parametrize(
    ("headers", "path", "token"),
    [
        ([("Authorization", f"Bearer {ALICE}")], "/", ALICE),
        ([("authorization", f"bearer   {ALICE} ")], "/", ALICE),
        ([], f"/?token={ALICE}", ALICE),
        ([], f"/stream?lang=en&token={ALICE}", ALICE),
    ],
)
def test_one_credential_is_read_from_the_header_or_the_query(headers, path, token):
    assert presented_token(Headers(headers), path) == token


@pytest.mark.parametrize(
    ("headers", "path", "reason"),
    [
        ([], "/", "missing"),
        ([("Authorization", f"Bearer {ALICE}"), ("Authorization", f"Bearer {ALICE}")], "/", "repeated"),
        ([("Authorization", f"Bearer {ALICE}"), ("Authorization", "Bearer x")], "/", "repeated"),
        ([], f"/?token={ALICE}&token={ALICE}", "repeated"),
        ([("Authorization", f"Bearer {ALICE}")], f"/?token={ALICE}", "repeated"),
        ([("Authorization", f"Basic {ALICE}")], "/", "malformed"),
        ([("Authorization", "Bearer")], "/", "malformed"),
        ([("Authorization", "Bearer ")], "/", "malformed"),
        ([], "/?token=", "malformed"),
        ([], "/?token=" + "x" * 5000, "malformed"),
    ],
)
def test_missing_repeated_or_malformed_credentials_are_refused(headers, path, reason):
    with pytest.raises(CredentialError) as raised:
        presented_token(Headers(headers), path)
    assert raised.value.reason == reason


def test_authenticate_names_the_client_or_refuses_an_unknown_token():
    assert authenticate(table(), Headers([("Authorization", f"Bearer {BOB}")]), "/") == Client("bob", 2)
    with pytest.raises(CredentialError) as raised:
        authenticate(table(), Headers(), "/?token=guess")
    assert raised.value.reason == "unknown"
    # Bytes >= 0x80 in a header arrive decoded as ISO-8859-1: no error, just no match.
    with pytest.raises(CredentialError):
        authenticate(table(), Headers([("Authorization", "Bearer t\u00c3\u00b6k")]), "/")
