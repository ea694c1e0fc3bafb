"""The chunked-geometry sweep's command line: geometries are read as left,chunk,right seconds."""

from __future__ import annotations

import argparse

import pytest

from bench.chunked_geometry import DEFAULT_GEOMETRIES, parse_geometry


def test_a_geometry_is_left_chunk_right_in_seconds() -> None:
    settings = parse_geometry("1.6,2.4,0.8")
    assert (settings.left_s, settings.chunk_s, settings.right_s) == (1.6, 2.4, 0.8)


@pytest.mark.parametrize("text", ["1.6,2.4", "a,b,c", "1.6,0,0.8", "-1,1.6,0.8", "30,30,30"])
def test_a_bad_geometry_is_a_clear_command_line_error(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="left,chunk,right"):
        parse_geometry(text)


def test_the_default_sweep_includes_the_shipped_default() -> None:
    from asr_service.decoding.chunked import ChunkedSettings

    default = ChunkedSettings()
    assert any(parse_geometry(g) == default for g in DEFAULT_GEOMETRIES)
