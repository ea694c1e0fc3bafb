"""Powertools idempotency as the functions use it: once per key, duplicates marked in the result.

A function keeps its own ``IdempotencyConfig`` (key, expiry) at module level, and builds the
guarded callable with ``once_per_key`` lazily, inside a ``functools.cache``d function: the
DynamoDB client and its service model then load on the first event that needs the guard, not at
cold start, and events a function ignores never touch the table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
    from mypy_boto3_dynamodb import DynamoDBClient


def mark_duplicate(response: Any, idempotent_data: DataRecord) -> Any:
    """Powertools calls this only when it returns a stored result instead of running again."""
    return {**response, "duplicate": True}


def once_per_key(
    function: Callable[..., dict[str, Any]],
    *,
    data_keyword: str,
    table_name: str,
    dynamodb: DynamoDBClient,
    config: IdempotencyConfig,
) -> Callable[..., dict[str, Any]]:
    """``function`` guarded by a DynamoDB idempotency record on ``config``'s key of the argument
    named ``data_keyword`` (call it with that keyword). Its result must be JSON-serialisable: a
    duplicate gets the stored result back, with ``duplicate: True`` when ``config`` uses
    ``mark_duplicate``. An exception deletes the in-progress record, so a retry runs again."""
    persistence = DynamoDBPersistenceLayer(table_name=table_name, boto3_client=dynamodb)
    guarded: Callable[..., dict[str, Any]] = idempotent_function(
        data_keyword_argument=data_keyword, persistence_store=persistence, config=config
    )(function)
    return guarded
