"""Phoneme models: words found by how they sound (a pronunciation table in the checkpoint), by
both word searches, in partials and finals, and the table's checks at save and load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from asr_service.model.checkpoint import (
    CheckpointFormatError,
    CheckpointModelError,
    load_checkpoint,
    save_checkpoint,
)
from asr_service.model.ctc import IncrementalGreedyDecoder
from asr_service.model.features import LogMelSettings
from asr_service.model.lexicon_beam import LexiconBeamDecoder
from asr_service.model.native_lexicon import NativeLexiconDecoder, native_available
from asr_service.model.streaming_ctc import ARCH_NAME, StreamingGruCtc
from asr_service.model.transcribe import transcribe
from asr_service.model.word_lm import BigramLm
from tests.asr_service.helpers import SMALL_CONFIG, payload, to_bytes

#: Multi-character phoneme tokens, as espeak-ng writes them.
TOKENS = ["<blank>", "▁", "D", "e@", "I", "z", "m", "aI", "d", "0", "g", "k", "a", "t", "@2"]
PRONUNCIATIONS = {
    "there": [["D", "e@"]],
    "their": [["D", "e@"]],  # sounds like "there": only the LM tells them apart
    "is": [["I", "z"]],
    "my": [["m", "aI"]],
    "dog": [["d", "0", "g"]],
    "cat": [["k", "a", "t"]],
    "the": [["D", "@2"], ["D", "I"]],  # two pronunciations
}
WORDS = sorted(PRONUNCIATIONS)
SENTENCES = [
    "there is my dog",
    "there is my cat",
    "their dog",
    "their cat",
    "the dog",
    "the cat",
    "there is the dog",
]

needs_native = pytest.mark.skipif(not native_available(), reason="flashlight-text is not installed")
SEARCHES = [pytest.param("native", marks=needs_native), "python"]


def log_probs(phonemes: list[str], prob: float = 0.9) -> torch.Tensor:
    """[T, V]: each phoneme ("|" for a word gap) on one frame, a blank frame after each."""
    out = torch.full((2 * len(phonemes), len(TOKENS)), 1e-4)
    for n, symbol in enumerate(phonemes):
        out[2 * n, TOKENS.index("▁" if symbol == "|" else symbol)] = prob
        out[2 * n, 0] = 1 - prob
        out[2 * n + 1, 0] = 1.0
    return (out / out.sum(-1, keepdim=True)).log()


def spoken(text: str) -> list[str]:
    """The phonemes of ``text`` (first pronunciation of each word), "|" between words."""
    out: list[str] = []
    for n, word in enumerate(text.split()):
        out += (["|"] if n else []) + PRONUNCIATIONS[word][0]
    return out


@pytest.fixture(scope="module")
def lm() -> BigramLm:
    return BigramLm.train(WORDS, SENTENCES)


def search(kind: str, lm: BigramLm) -> NativeLexiconDecoder | LexiconBeamDecoder:
    if kind == "native":
        return NativeLexiconDecoder(TOKENS, 0, WORDS, lm, pronunciations=PRONUNCIATIONS)
    return LexiconBeamDecoder(TOKENS, 0, WORDS, lm, pronunciations=PRONUNCIATIONS)


@pytest.mark.parametrize("kind", SEARCHES)
@pytest.mark.parametrize(
    ("phonemes", "expected"),
    [
        (spoken("there is my dog"), "there is my dog"),
        # The same sounds, D e@, are "their" before a noun: the LM decides.
        (spoken("their cat"), "their cat"),
        # The second pronunciation of "the".
        (["D", "I", "|", "d", "0", "g"], "the dog"),
    ],
)
def test_words_are_found_by_their_sound(kind: str, lm: BigramLm, phonemes: list[str], expected: str) -> None:
    assert search(kind, lm).decode(log_probs(phonemes)) == expected


@pytest.mark.parametrize("kind", SEARCHES)
def test_a_sound_no_word_makes_gives_no_words(kind: str, lm: BigramLm) -> None:
    assert search(kind, lm).decode(log_probs(["z", "z", "t"])) is None


@pytest.mark.parametrize("kind", SEARCHES)
def test_a_pronunciation_using_a_token_the_model_lacks_is_left_out(kind: str, lm: BigramLm) -> None:
    table = PRONUNCIATIONS | {"dog": [["d", "Q", "g"]]}  # "Q" is no token: "dog" cannot be heard
    decoder = (
        NativeLexiconDecoder(TOKENS, 0, WORDS, lm, pronunciations=table)
        if kind == "native"
        else LexiconBeamDecoder(TOKENS, 0, WORDS, lm, pronunciations=table)
    )
    assert decoder.decode(log_probs(spoken("there is my cat"))) == "there is my cat"
    assert "dog" not in (decoder.decode(log_probs(spoken("there is my dog"))) or "")


@pytest.mark.parametrize("kind", SEARCHES)
def test_partials_and_finals_of_a_phoneme_model_are_words_never_phonemes(kind: str, lm: BigramLm) -> None:
    decoder = IncrementalGreedyDecoder(TOKENS, 0, 0.03, word_decoder=search(kind, lm))
    frames = log_probs(spoken("there is my dog"))
    decoder.accept(frames[:10])  # "D e@ | I z" so far
    # A word shows once the gap after it is heard (the incremental search does not guess ends).
    assert decoder.partial_text in ("there", "there is")
    assert decoder.has_speech
    decoder.accept(frames[10:12])  # the gap after "is"
    assert decoder.partial_text == "there is"
    decoder.accept(frames[12:])
    assert decoder.partial_text in ("there is my", "there is my dog")
    segment = decoder.finalize()
    assert segment is not None and segment.text == "there is my dog"
    # The next segment holds only blanks: no speech, no text, no segment.
    blanks = torch.full((6, len(TOKENS)), -20.0)
    blanks[:, 0] = 0.0
    decoder.accept(blanks)
    assert not decoder.has_speech and decoder.partial_text == ""
    assert decoder.finalize() is None


@pytest.mark.parametrize("kind", SEARCHES)
def test_unrecognisable_phonemes_give_an_empty_final_not_phoneme_text(kind: str, lm: BigramLm) -> None:
    decoder = IncrementalGreedyDecoder(TOKENS, 0, 0.03, word_decoder=search(kind, lm))
    decoder.accept(log_probs(["z", "z", "t"]))
    assert decoder.has_speech and decoder.partial_text == ""
    assert decoder.finalize() is None


@pytest.mark.parametrize("kind", SEARCHES)
def test_beyond_six_homophones_the_likeliest_words_are_kept(
    kind: str, capfd: pytest.CaptureFixture[str]
) -> None:
    # Eight words sound alike; the LM has only seen the last ones alphabetically.
    words = [f"w{i}" for i in range(8)]
    lm = BigramLm.train(words, ["w7", "w7", "w7 w6", "w6"])
    table = {w: [["D", "e@"]] for w in words}
    if kind == "native":
        decoder: NativeLexiconDecoder | LexiconBeamDecoder = NativeLexiconDecoder(
            TOKENS, 0, words, lm, pronunciations=table
        )
    else:
        decoder = LexiconBeamDecoder(TOKENS, 0, words, lm, pronunciations=table)
    assert decoder.decode(log_probs(["D", "e@"])) == "w7"
    assert decoder.decode(log_probs(["D", "e@", "|", "D", "e@"])) == "w7 w6"
    assert "Trie" not in capfd.readouterr().err  # no word silently dropped by the native trie


@needs_native
def test_the_incremental_native_search_ends_where_the_whole_segment_search_does(lm: BigramLm) -> None:
    whole = search("native", lm)
    assert isinstance(whole, NativeLexiconDecoder)
    stream = whole.open_stream()
    torch.manual_seed(5)
    noisy = [
        log_probs(spoken(text)) + 0.5 * torch.randn(2 * len(spoken(text)), len(TOKENS))
        for text in ("there is my dog", "their cat", "the dog")
    ]
    for frames in noisy:
        for start in range(0, frames.shape[0], 3):  # blocks of 3 frames, as the engine's chunks
            stream.step(frames[start : start + 3])
        # Each segment starts clean: the previous one's words do not leak into it.
        assert stream.finish() == whole.decode(frames)
    assert stream.finish() is None  # nothing fed since


# ------------------------------------------------------------------------ checkpoint
def phoneme_model() -> StreamingGruCtc:
    torch.manual_seed(0)
    return StreamingGruCtc(SMALL_CONFIG, LogMelSettings(), TOKENS)


def save_phoneme_checkpoint(path: Path, lm: BigramLm | None) -> str:
    return save_checkpoint(
        path,
        arch=ARCH_NAME,
        hparams=SMALL_CONFIG.to_dict(),
        features=LogMelSettings().to_dict(),
        tokens=TOKENS,
        blank_id=0,
        state_dict=phoneme_model().state_dict(),
        lexicon=WORDS,
        word_lm=lm,
        pronunciations=PRONUNCIATIONS,
    )


@pytest.mark.parametrize("kind", SEARCHES)
def test_the_pronunciation_table_travels_with_the_checkpoint(tmp_path: Path, lm: BigramLm, kind: str) -> None:
    path = tmp_path / "phonemes.pt"
    save_phoneme_checkpoint(path, lm)
    loaded = load_checkpoint(path, word_decoder=kind)
    assert loaded.word_decoder is not None and loaded.word_decoder.pronounced
    assert loaded.lexicon is None  # nothing to snap a phoneme string to
    assert loaded.word_decoder.decode(log_probs(spoken("their dog"))) == "their dog"
    # The untrained model hears nothing in particular, but whatever it returns is words.
    text = transcribe(loaded.model, torch.randn(16000) * 0.1)
    assert set(text.split()) <= set(WORDS)


def test_a_loaded_payload_saves_again_unchanged(tmp_path: Path, lm: BigramLm) -> None:
    # What make demo does to make its v2 and its wrong-token v3: the stored entries passed back.
    first = tmp_path / "first.pt"
    save_phoneme_checkpoint(first, lm)
    stored = torch.load(first, weights_only=True)
    content = {k: v for k, v in stored.items() if k not in ("format", "version", "metadata")}
    save_checkpoint(tmp_path / "again.pt", **content)
    again = torch.load(tmp_path / "again.pt", weights_only=True)
    assert again["pronunciations"] == stored["pronunciations"]
    assert again["pronunciations"]["the"] == ["D @2", "D I"]


def test_pronunciations_without_a_word_lm_are_refused_at_save(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="word LM"):
        save_phoneme_checkpoint(tmp_path / "x.pt", None)


@pytest.mark.parametrize(
    ("table", "match"),
    [
        ({"dog": ["d Q g"]}, "'Q', which is not a token"),
        ({"dog": ["d ▁ g"]}, "not a token"),
        ({"wolf": ["w U l f"]}, "'wolf' is not in the lexicon"),
        ({"dog": []}, "non-empty strings"),
        ({"dog": [" "]}, "non-empty strings"),
        ({}, "non-empty dict"),
        (["dog"], "non-empty dict"),
    ],
)
def test_a_broken_pronunciation_table_is_refused_at_load(lm: BigramLm, table: object, match: str) -> None:
    data = payload(phoneme_model()) | {
        "tokens": TOKENS,
        "lexicon": WORDS,
        "word_lm": lm.to_payload() | {"decoder": {}},
        "lexicon_correction": False,
        "pronunciations": table,
    }
    with pytest.raises(CheckpointFormatError, match=match):
        load_checkpoint(to_bytes(data))


def test_a_pronunciation_table_without_a_word_lm_is_refused_at_load() -> None:
    data = payload(phoneme_model()) | {
        "tokens": TOKENS,
        "lexicon": WORDS,
        "pronunciations": {"dog": ["d 0 g"]},
    }
    with pytest.raises(CheckpointFormatError, match="need a 'word_lm'"):
        load_checkpoint(to_bytes(data))


def test_a_phoneme_table_on_a_full_context_model_is_refused(
    lm: BigramLm, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(StreamingGruCtc, "streaming", False)
    data = payload(phoneme_model()) | {
        "tokens": TOKENS,
        "lexicon": WORDS,
        "word_lm": lm.to_payload() | {"decoder": {}},
        "pronunciations": {"dog": ["d 0 g"]},
    }
    with pytest.raises(CheckpointModelError, match="streaming strategy only"):
        load_checkpoint(to_bytes(data))
