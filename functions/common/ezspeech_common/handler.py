"""What every handler module does the same way: its Powertools singletons and their decorator
stack, the strict parse of its event, and its once-only unit built on first use.

The handlers keep their own module-level names (``logger``, ``tracer``, ``metrics``), their own
settings and their own ``IdempotencyConfig``; only the shared mechanics live here, so a change to
how events are rejected or how results are stored is made once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.serialization.base import BaseIdempotencySerializer

from ezspeech_common.errors import EventShapeError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

    from ezspeech_common.aws import AwsClients

EventT = TypeVar("EventT")
DataT = TypeVar("DataT")
ResultT = TypeVar("ResultT", bound="StoredResult")
StoredT = TypeVar("StoredT", bound="StoredResult")

#: The template sets the namespace (Globals); the default keeps local runs (demo, tests) working.
DEFAULT_METRICS_NAMESPACE = "EzSpeech/Automation"


def powertools(metrics_namespace: str) -> tuple[Logger, Tracer, Metrics]:
    """The three Powertools singletons a handler module creates at import (cold start). The
    handler reads the namespace from its environment: the shared layer never reads it."""
    return Logger(), Tracer(patch_modules=("boto3",)), Metrics(namespace=metrics_namespace)


Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def instrumented(
    logger: Logger,
    tracer: Tracer,
    metrics: Metrics,
    correlation_id_path: str = correlation_paths.EVENT_BRIDGE,
) -> Callable[[Handler], Handler]:
    """The Powertools decorators in the one order every handler uses: tracer, then logger (with
    the correlation id, EventBridge's event id by default), then metrics (cold-start metric)."""

    def decorate(handler: Handler) -> Handler:
        with_metrics = metrics.log_metrics(capture_cold_start_metric=True)(handler)
        with_logger = logger.inject_lambda_context(correlation_id_path=correlation_id_path)(with_metrics)
        traced: Handler = tracer.capture_lambda_handler(with_logger)
        return traced

    return decorate


def parse_event(parse: Callable[[dict[str, Any]], EventT], event: dict[str, Any], logger: Logger) -> EventT:
    """``parse(event)``; a malformed event is logged as ``event_rejected`` (naming the field) and
    re-raised, so EventBridge's retries and the DLQ keep it."""
    try:
        return parse(event)
    except EventShapeError as error:
        logger.error("event_rejected", extra={"error": str(error)})
        raise


class StoredResult(Protocol):
    """A dataclass result that idempotency stores and hands back: ``duplicate`` marks a replay."""

    duplicate: bool

    def as_dict(self) -> dict[str, Any]: ...


class _DataclassRecord(BaseIdempotencySerializer, Generic[StoredT]):
    """Stores a result dataclass as its dict and rebuilds it with its ``from_dict`` (which knows
    its nested dataclasses), so a duplicate gets the same type back as the first call."""

    def __init__(self, result_type: type[StoredT]) -> None:
        self._from_dict: Callable[[dict[str, Any]], StoredT] = result_type.from_dict  # type: ignore[attr-defined]

    def to_dict(self, data: Any) -> dict[str, Any]:
        return dict(data.as_dict())

    def from_dict(self, data: dict[str, Any]) -> StoredT:
        return self._from_dict(data)


def mark_duplicate(response: Any, idempotent_data: DataRecord) -> Any:
    """Powertools calls this only when it returns a stored result instead of running again."""
    return dataclasses.replace(response, duplicate=True)


class OncePerKey(Generic[DataT, ResultT]):
    """``function(data)`` guarded by a DynamoDB idempotency record on ``config``'s key of ``data``.

    Built on the first call, so a cold start (and every event a function ignores) never loads the
    DynamoDB client or its service model. A duplicate gets the stored result back as
    ``result_type`` with ``duplicate=True``; an exception deletes the in-progress record, so a retry
    runs again.
    """

    def __init__(
        self,
        function: Callable[[DataT], ResultT],
        result_type: type[ResultT],
        *,
        table_name: str,
        clients: AwsClients,
        config: IdempotencyConfig,
    ) -> None:
        self._function = function
        self._result_type = result_type
        self._table_name = table_name
        self._clients = clients
        self._config = config
        self._guarded: Callable[..., ResultT] | None = None

    def __call__(self, data: DataT) -> ResultT:
        if self._guarded is None:
            persistence = DynamoDBPersistenceLayer(
                table_name=self._table_name, boto3_client=self._clients.dynamodb
            )
            function = self._function

            def run(data: DataT) -> ResultT:
                return function(data)

            self._guarded = idempotent_function(
                data_keyword_argument="data",
                persistence_store=persistence,
                config=self._config,
                output_serializer=_DataclassRecord(self._result_type),
            )(run)
        return self._guarded(data=data)
