"""Word-level decoding of finals: the bigram LM, the lexicon beam search, and their checkpoint entry."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from asr_service.model.checkpoint import CheckpointFormatError, load_checkpoint, save_checkpoint
from asr_service.model.ctc import IncrementalGreedyDecoder, greedy_decode
from asr_service.model.lexicon_beam import BeamSettings, LexiconBeamDecoder
from asr_service.model.streaming_ctc import ARCH_NAME, CHAR_TOKENS
from asr_service.model.transcribe import transcribe
from asr_service.model.word_lm import BigramLm, WordLmError
from tests.asr_service.helpers import SMALL_CONFIG, payload, small_model, to_bytes

TOKENS = list(CHAR_TOKENS)
WORDS = sorted(["a", "an", "safe", "old", "officer", "was", "poor", "kind", "dog"])
SENTENCES = [
    "a safe dog was poor",
    "an officer was poor",
    "a safe officer was kind",
    "an old officer was kind",
    "a kind dog was safe",
    "a safe dog was kind",
    "an old dog was poor",
]


def log_probs(frames: list[dict[str, float]]) -> torch.Tensor:
    """[T, V] log-probs: each frame gives some tokens a probability, the blank takes the rest."""
    out = torch.full((len(frames), len(TOKENS)), 1e-4)
    for t, frame in enumerate(frames):
        for token, prob in frame.items():
            out[t, TOKENS.index(token)] = prob
        out[t, 0] = max(1e-4, 1 - sum(frame.values()))
    return (out / out.sum(-1, keepdim=True)).log()


def say(word: str, prob: float = 0.9, boundary: bool = True) -> list[dict[str, float]]:
    frames: list[dict[str, float]] = []
    for ch in word:
        frames += [{ch: prob}, {}]  # a blank after each letter, so doubled letters stay doubled
    return frames + ([{"▁": prob}] if boundary else [])


def sentence(text: str) -> list[dict[str, float]]:
    words = text.split()
    return [f for i, w in enumerate(words) for f in say(w, boundary=i < len(words) - 1)]


@pytest.fixture(scope="module")
def lm() -> BigramLm:
    return BigramLm.train(WORDS, SENTENCES)


# ------------------------------------------------------------------------------- the LM
@pytest.mark.parametrize("context", ["a", "safe", "poor", "<s>"])
def test_next_word_probabilities_sum_to_one(lm: BigramLm, context: str) -> None:
    previous = lm.boundary if context == "<s>" else lm.index[context]
    total = sum(math.exp(lm.log_prob(previous, w)) for w in range(lm.boundary + 1))
    assert total == pytest.approx(1.0, abs=1e-9)


def test_seen_word_pairs_beat_unseen_ones(lm: BigramLm) -> None:
    assert lm.sentence_log_prob("a safe officer was poor") > lm.sentence_log_prob("a officer safe was poor")
    # Unseen but possible: every lexicon word keeps a finite probability.
    assert math.isfinite(lm.sentence_log_prob("poor poor poor"))


def test_lm_round_trips_through_its_stored_form(lm: BigramLm) -> None:
    again = BigramLm.from_payload(lm.to_payload(), WORDS)
    for previous in range(lm.boundary + 1):
        for word in range(lm.boundary + 1):
            assert again.log_prob(previous, word) == lm.log_prob(previous, word)


@pytest.mark.parametrize(
    ("stored", "match"),
    [
        ({"type": "word-trigram", "bigrams": torch.zeros(0, 3, dtype=torch.int64)}, "type"),
        ({"type": "word-bigram", "bigrams": [[0, 1, 2]]}, "tensor"),
        ({"type": "word-bigram", "bigrams": torch.ones(2, 3)}, "integers"),
        ({"type": "word-bigram", "bigrams": torch.tensor([[0, 99, 1]])}, "outside"),
        ({"type": "word-bigram", "bigrams": torch.tensor([[0, 1, -3]])}, "outside"),
        ({"type": "word-bigram", "bigrams": torch.tensor([[0, 1, 1], [0, 1, 2]])}, "twice"),
    ],
)
def test_broken_stored_lm_is_refused(stored: object, match: str) -> None:
    with pytest.raises(WordLmError, match=match):
        BigramLm.from_payload(stored, WORDS)


def test_lm_training_text_must_use_lexicon_words() -> None:
    with pytest.raises(WordLmError, match="'cat'"):
        BigramLm.train(WORDS, ["a cat was poor"])


# ------------------------------------------------------------------------ beam search
def test_clear_speech_decodes_to_the_spoken_words(lm: BigramLm) -> None:
    decoder = LexiconBeamDecoder(TOKENS, 0, WORDS, lm)
    assert decoder.decode(log_probs(sentence("an old dog was kind"))) == "an old dog was kind"


def test_misspelling_is_pulled_to_a_lexicon_word(lm: BigramLm) -> None:
    frames = sentence("a kind dog was poor")
    frames[frames.index({"k": 0.9})] = {"k": 0.45, "g": 0.44}  # "kind" or "gind"?
    x = log_probs(frames)
    decoder = LexiconBeamDecoder(TOKENS, 0, WORDS, lm)
    assert decoder.decode(x) == "a kind dog was poor"


def test_weakly_spoken_word_is_recovered_from_context(lm: BigramLm) -> None:
    """The demo clip 3 failure in miniature: greedy drops a quiet "safe" between "a" and
    "officer"; the beam with the LM restores it, the same beam without the LM does not."""
    weak = [{ch: 0.45} for ch in "safe"] + [{"▁": 0.45}]
    x = log_probs(say("a") + weak + sentence("officer was poor"))
    assert greedy_decode(x, TOKENS, 0) == "a officer was poor"
    settings = BeamSettings(lm_weight=1.0, word_bonus=1.0)
    assert LexiconBeamDecoder(TOKENS, 0, WORDS, lm, settings).decode(x) == "a safe officer was poor"
    assert LexiconBeamDecoder(TOKENS, 0, WORDS, None, settings).decode(x) != "a safe officer was poor"


def test_a_missing_word_gap_still_splits_words(lm: BigramLm) -> None:
    frames = say("an") + say("old", boundary=False) + sentence("dog was kind")  # "olddog": no ▁
    assert LexiconBeamDecoder(TOKENS, 0, WORDS, lm).decode(log_probs(frames)) == "an old dog was kind"


def test_nothing_spellable_gives_none(lm: BigramLm) -> None:
    decoder = LexiconBeamDecoder(TOKENS, 0, WORDS, lm)
    assert decoder.decode(log_probs(say("zzz", boundary=False))) is None


def test_only_character_vocabularies_are_supported() -> None:
    with pytest.raises(ValueError, match="single-character"):
        LexiconBeamDecoder(["<blank>", "▁", "▁the", "a"], 0, ["the"], None)


@pytest.mark.parametrize(
    "bad", [{"beam": 0}, {"beam": 10**6}, {"lm_weight": float("nan")}, {"word_bonus": "2"}, {"beam": 2.5}]
)
def test_bad_beam_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        BeamSettings(**bad)  # type: ignore[arg-type]


# ------------------------------------------------------------- incremental decoder
class FixedWords:
    def __init__(self, text: str | None) -> None:
        self.text = text
        self.frames_seen = 0

    def decode(self, log_probs: torch.Tensor) -> str | None:
        self.frames_seen = log_probs.shape[0]
        return self.text


def test_finals_use_the_word_decoder_and_partials_stay_greedy() -> None:
    second_pass = FixedWords("an old dog")
    decoder = IncrementalGreedyDecoder(TOKENS, 0, 0.03, word_decoder=second_pass)
    first, rest = log_probs(say("an") + say("old")), log_probs(say("dob", boundary=False))
    decoder.accept(first)
    decoder.accept(rest)
    assert decoder.partial_text == "an old dob"
    segment = decoder.finalize()
    assert segment is not None and segment.text == "an old dog"
    assert second_pass.frames_seen == first.shape[0] + rest.shape[0]  # the whole segment, once


def test_greedy_text_stands_when_no_word_path_exists() -> None:
    decoder = IncrementalGreedyDecoder(TOKENS, 0, 0.03, word_decoder=FixedWords(None))
    decoder.accept(log_probs(sentence("an old dob")))
    segment = decoder.finalize()
    assert segment is not None and segment.text == "an old dob"


# ------------------------------------------------------------------------ checkpoint
def test_word_lm_travels_with_the_checkpoint(tmp_path: Path, lm: BigramLm) -> None:
    settings = BeamSettings(lm_weight=0.7, word_bonus=2.0)
    path = tmp_path / "with-lm.pt"
    save_checkpoint(
        path,
        arch=ARCH_NAME,
        hparams=SMALL_CONFIG.to_dict(),
        features=payload()["features"],
        tokens=TOKENS,
        blank_id=0,
        state_dict=small_model().state_dict(),
        lexicon=WORDS,
        word_lm=lm,
        decoder_settings=settings,
    )
    loaded = load_checkpoint(path)
    assert loaded.word_decoder is not None
    assert loaded.word_decoder.settings == settings
    assert loaded.module.word_decoder is loaded.word_decoder
    # The untrained model says nothing in particular, but whatever it says is lexicon words.
    text = transcribe(loaded.model, torch.randn(16000) * 0.1)
    assert set(text.split()) <= set(WORDS)


def test_word_lm_must_match_the_lexicon(tmp_path: Path, lm: BigramLm) -> None:
    with pytest.raises(ValueError, match="lexicon"):
        save_checkpoint(
            tmp_path / "x.pt",
            arch=ARCH_NAME,
            hparams=SMALL_CONFIG.to_dict(),
            features=payload()["features"],
            tokens=TOKENS,
            blank_id=0,
            state_dict=small_model().state_dict(),
            lexicon=[*WORDS, "extra"],
            word_lm=lm,
        )


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"lexicon": None}, "needs a 'lexicon'"),
        ({"word_lm": {"type": "word-bigram", "bigrams": torch.tensor([[0, 500, 1]])}}, "outside"),
        ({"word_lm": "not a dict"}, "type"),
        ({"decoder": {"beam": -1}}, "beam"),
        ({"decoder": {"lm_weight": float("inf")}}, "lm_weight"),
        ({"decoder": {"temperature": 2.0}}, "unknown"),
    ],
)
def test_bad_word_lm_entries_are_refused(lm: BigramLm, change: dict[str, object], match: str) -> None:
    data = payload() | {"lexicon": WORDS, "word_lm": lm.to_payload() | {"decoder": {}}}
    if "decoder" in change:
        data["word_lm"] = data["word_lm"] | {"decoder": change.pop("decoder")}
    data |= change
    if data.get("lexicon") is None:
        data.pop("lexicon")
    with pytest.raises(CheckpointFormatError, match=match):
        load_checkpoint(to_bytes(data))


def test_a_stored_word_lm_passes_through_a_resave(tmp_path: Path, lm: BigramLm) -> None:
    """Re-releasing a file with new metadata (what `make demo` does for v2) keeps its LM."""
    data = payload() | {"lexicon": WORDS, "word_lm": lm.to_payload() | {"decoder": {"beam": 7}}}
    content = {k: v for k, v in data.items() if k not in ("format", "version", "metadata")}
    save_checkpoint(tmp_path / "v2.pt", **content, metadata={"model_version": "v2"})
    loaded = load_checkpoint(tmp_path / "v2.pt")
    assert loaded.word_decoder is not None and loaded.word_decoder.settings.beam == 7
    broken = content | {"word_lm": {"type": "word-bigram", "bigrams": torch.tensor([[0, 99, 1]])}}
    with pytest.raises(WordLmError, match="outside"):
        save_checkpoint(tmp_path / "v3.pt", **broken)
