"""The deterministic slice of `make soak` that runs in `make test`: same code, fewer clients."""

from __future__ import annotations

import asyncio
import random

import pytest

from bench.hostile import GENERATORS, InvalidText, hostile_message
from bench.soak import run_soak
from bench.soak_report import SoakPlan, table

SLICE = SoakPlan(
    seed=11,
    warm_up=10,
    clean=20,
    polite=20,
    abrupt=90,
    hostile_messages=300,
    concurrency=8,
    max_sessions=12,
    overload_extra=6,
    drain_storm=30,
    drain_live=2,
)


def test_hostile_messages_are_reproducible_from_the_seed_and_cover_every_kind():
    first = [hostile_message(random.Random(5)) for _ in range(3)]
    assert first == [hostile_message(random.Random(5)) for _ in range(3)]
    rng = random.Random(1)
    kinds = {hostile_message(rng)[0] for _ in range(3000)}
    assert kinds == {generator.__name__ for generator, _weight in GENERATORS}
    assert any(isinstance(hostile_message(random.Random(s))[1], InvalidText) for s in range(500))


@pytest.mark.slow
def test_soak_slice_meets_every_target():
    report = asyncio.run(run_soak(SLICE))
    print(table(SLICE, report, 0.0))
    assert report.failures(SLICE) == []
    # The run really exercised what it claims: every kind of client, sessions logged one each.
    assert report.hostile_messages >= SLICE.hostile_messages and report.jobs["hostile"] > 0
    assert sum(v for k, v in report.jobs.items() if k.startswith("abrupt")) >= 90 + SLICE.drain_storm
    assert report.accepted == report.summaries > 150
    assert report.overload_refused == SLICE.overload_extra
