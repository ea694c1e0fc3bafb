"""Greedy CTC decoding, whole-utterance and incremental."""

from __future__ import annotations

import math

import pytest
import torch

from asr_service.model.ctc import (
    IncrementalGreedyDecoder,
    Lexicon,
    collapse,
    greedy_decode,
    greedy_decode_batch,
    tokens_to_text,
)

TOKENS = ["<blank>", "▁", "a", "b", "c"]


def frames(best: list[int], prob: float = 0.9) -> torch.Tensor:
    """Log-probs [T, V] whose best token per frame is ``best`` with posterior ``prob``."""
    other = (1 - prob) / (len(TOKENS) - 1)
    out = torch.full((len(best), len(TOKENS)), other)
    for t, token in enumerate(best):
        out[t, token] = prob
    return out.log()


def test_collapse_drops_repeats_then_blanks() -> None:
    assert collapse([2, 2, 0, 2, 3, 3, 0, 0, 4], blank_id=0) == [2, 2, 3, 4]


def test_tokens_to_text_turns_word_marks_into_spaces() -> None:
    assert tokens_to_text([1, 2, 3, 1, 1, 4, 1], TOKENS) == "ab c"


def test_greedy_decode_respects_length() -> None:
    lp = frames([2, 0, 1, 3, 0, 4])
    assert greedy_decode(lp, TOKENS, 0) == "a bc"
    assert greedy_decode(lp, TOKENS, 0, length=4) == "a b"
    batch = torch.stack([lp, frames([3, 3, 0, 3, 0, 0])])
    assert greedy_decode_batch(batch, torch.tensor([6, 6]), TOKENS, 0) == ["a bc", "bb"]


def test_incremental_equals_whole_whatever_the_block_split() -> None:
    best = [0, 2, 2, 0, 2, 1, 1, 3, 3, 3, 0, 4, 0, 0]
    whole = greedy_decode(frames(best), TOKENS, 0)
    for split in range(1, len(best)):
        decoder = IncrementalGreedyDecoder(TOKENS, 0, frame_shift_s=0.03)
        decoder.accept(frames(best[:split]))
        decoder.accept(frames(best[split:]))
        assert decoder.partial_text == whole == "aa bc"


def test_repeat_across_a_segment_cut_is_not_a_new_token() -> None:
    decoder = IncrementalGreedyDecoder(TOKENS, 0, frame_shift_s=0.03)
    decoder.accept(frames([2, 2]))
    first = decoder.finalize()
    decoder.accept(frames([2, 0, 3]))
    assert first is not None and first.text == "a"
    assert decoder.partial_text == "b"


def test_segment_times_and_confidence() -> None:
    decoder = IncrementalGreedyDecoder(TOKENS, 0, frame_shift_s=0.04)
    decoder.accept(frames([0, 0, 2, 0], prob=0.8))
    decoder.accept(frames([3, 3, 0, 0, 0], prob=0.6))
    segment = decoder.finalize()
    assert segment is not None
    assert segment.text == "ab"
    assert segment.start_s == pytest.approx(0.08)
    assert segment.end_s == pytest.approx(0.24)
    # Mean best posterior over the three non-blank frames (0.8, 0.6, 0.6).
    assert segment.confidence == pytest.approx((0.8 + 0.6 + 0.6) / 3, rel=1e-5)
    assert decoder.partial_text == ""
    assert decoder.finalize() is None  # an empty segment is not a segment


def test_confidence_is_lower_for_unsure_frames() -> None:
    sure, unsure = (IncrementalGreedyDecoder(TOKENS, 0, 0.03) for _ in range(2))
    sure.accept(frames([2, 0, 3], prob=0.95))
    unsure.accept(frames([2, 0, 3], prob=0.4))
    a, b = sure.finalize(), unsure.finalize()
    assert a is not None and b is not None
    assert a.text == b.text and a.confidence > b.confidence
    assert math.isclose(b.confidence, 0.4, rel_tol=1e-5)


def test_trailing_silence_counts_blanks_and_word_marks() -> None:
    decoder = IncrementalGreedyDecoder(TOKENS, 0, frame_shift_s=0.03)
    assert decoder.trailing_silence_frames == 0
    decoder.accept(frames([0, 0, 0]))
    assert decoder.trailing_silence_frames == 3 and not decoder.has_speech
    decoder.accept(frames([2, 0, 1, 0, 0]))
    assert decoder.trailing_silence_frames == 4
    assert decoder.trailing_silence_s == pytest.approx(0.12)
    assert decoder.has_speech
    assert decoder.frames_seen == 8


def test_accept_rejects_wrong_vocabulary_size() -> None:
    decoder = IncrementalGreedyDecoder(TOKENS, 0, frame_shift_s=0.03)
    with pytest.raises(ValueError, match="accept wants"):
        decoder.accept(torch.zeros(3, 7))


def test_lexicon_snaps_near_misses_and_keeps_far_ones() -> None:
    lexicon = Lexicon(["beach", "heavy", "office", "the", "a"])
    assert lexicon.correct("bech") == "beach"
    assert lexicon.correct("offece") == "office"
    assert lexicon.correct("the") == "the"
    assert lexicon.correct("zzzzzzzz") == "zzzzzzzz"  # nothing close: keep what was heard
    assert lexicon.correct_text("hevy bech") == "heavy beach"
    assert lexicon.correct_text("hevy bech", last_word_complete=False) == "heavy bech"


def test_decoder_with_lexicon_corrects_finished_words_only() -> None:
    tokens = ["<blank>", "▁", "a", "b", "c"]
    lexicon = Lexicon(["abc", "cab"])
    decoder = IncrementalGreedyDecoder(tokens, 0, frame_shift_s=0.03, lexicon=lexicon)
    # "ab▁ca": the first word is finished ("ab" → "abc"), the second is still being spoken.
    decoder.accept(frames([2, 3, 1, 4, 2]))
    assert decoder.partial_text == "abc ca"
    segment = decoder.finalize()
    assert segment is not None and segment.text == "abc cab"


def test_spelling_distance_gives_up_only_above_its_cutoff():
    import random

    from asr_service.model.ctc import _spelling_distance

    rng = random.Random(5)
    for _ in range(500):
        a = "".join(rng.choice("abeiost") for _ in range(rng.randint(0, 8)))
        b = "".join(rng.choice("abeiost") for _ in range(rng.randint(0, 8)))
        exact = _spelling_distance(a, b)
        cutoff = rng.choice([0.0, 0.5, 1.0, 1.5, 2.0, 3.0])
        found = _spelling_distance(a, b, cutoff)
        assert found == exact if exact <= cutoff else found in (exact, float("inf"))
