"""The verdicts of the image-test runner (image/image_test.py) that need no podman: the drain
verdict over recorded outcomes, the transcript comparison, option errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from image.image_test import ImageTestError, Report, check_drain, error_rate, model_options

CLEAN: dict[str, object] = {
    "close_code": 1001,
    "close_reason": "draining",
    "events": ["connection", "partial", "final", "closing"],
    "events_after_stop": ["final", "closing"],
    "stop_s": 1.2,
    "exit_code": 0,
    "ready_during_drain": [200, 200, 503],
}


def test_clean_drain_passes() -> None:
    check_drain(dict(CLEAN), 30, "log line\n", Report())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"close_code": 1000}, "not 1001"),
        ({"close_code": "timeout"}, "not 1001"),
        ({"events_after_stop": ["closing"]}, "no final result after SIGTERM"),
        ({"events": ["connection", "partial", "final"]}, "no event said why"),
        ({"exit_code": 137}, "137: killed"),
        ({"stop_s": 30.0}, "did not finish in time"),
        ({"ready_during_drain": [200, 200]}, "/ready still answered 200"),
    ],
)
def test_unclean_drain_fails_with_the_reason(change: dict[str, object], message: str) -> None:
    with pytest.raises(ImageTestError, match="SIGTERM drain was not clean") as failure:
        check_drain({**CLEAN, **change}, 30, "", Report())
    assert message in str(failure.value)


def test_traceback_in_the_container_output_fails_the_drain() -> None:
    with pytest.raises(ImageTestError, match="traceback"):
        check_drain(dict(CLEAN), 30, "Traceback (most recent call last):\n", Report())


def test_error_rate_over_words_and_characters() -> None:
    assert error_rate(["the", "blue", "street"], ["the", "blue", "street"]) == 0.0
    assert error_rate(["the", "blue", "street"], ["the", "street"]) == pytest.approx(1 / 3)
    assert error_rate(["a", "b"], ["x", "y", "z"]) == pytest.approx(3 / 2)
    assert error_rate(list("beach"), list("bech")) == pytest.approx(1 / 5)


def test_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ImageTestError, match="no such file"):
        model_options(tmp_path / "absent.pt")
    assert model_options(None) == []
