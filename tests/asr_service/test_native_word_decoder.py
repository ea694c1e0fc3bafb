"""The native (flashlight-text) lexicon + word-LM search on finals: the demo model's clips, the ARPA
export, refusal of a broken LM or lexicon at load, and the WORD_DECODER setting end to end."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import soundfile
import torch

from asr_service.model.checkpoint import (
    DEFAULT_MODEL_PATH,
    CheckpointFormatError,
    load_checkpoint,
)
from asr_service.model.lexicon_beam import PYTHON_MAX_BEAM, BeamSettings, LexiconBeamDecoder
from asr_service.model.native_lexicon import (
    LN10,
    NativeDecoderError,
    NativeLexiconDecoder,
    native_available,
    write_arpa,
)
from asr_service.model.transcribe import transcribe
from asr_service.model.word_lm import BigramLm
from asr_service.server import load_configured_model
from asr_service.settings import SettingsError, load_settings
from tests.asr_service.helpers import TEST_SETTINGS, ServerThread, http_get, payload, to_bytes
from tests.asr_service.test_model_word_decoding import (
    SENTENCES,
    TOKENS,
    WORDS,
    log_probs,
    say,
    sentence,
)
from tests.asr_service.wsclient import stream_native

REPO = Path(__file__).resolve().parents[2]
CLIPS = REPO / "tests" / "data" / "clips"
TRANSCRIPTS: dict[str, str] = (
    json.loads((CLIPS / "transcripts.json").read_text()) if (CLIPS / "transcripts.json").exists() else {}
)

pytestmark = pytest.mark.skipif(not native_available(), reason="flashlight-text is not installed")
needs_demo = pytest.mark.skipif(
    not DEFAULT_MODEL_PATH.is_file() or not TRANSCRIPTS, reason="demo model or clips not in this checkout"
)


@pytest.fixture(scope="module")
def lm() -> BigramLm:
    return BigramLm.train(WORDS, SENTENCES)


@pytest.fixture(scope="module")
def native_demo():
    return load_checkpoint(DEFAULT_MODEL_PATH, word_decoder="native")


# ------------------------------------------------------------------------ the demo model
@needs_demo
@pytest.mark.parametrize("clip", sorted(TRANSCRIPTS))
def test_native_decoder_gives_each_demo_clip_its_reference_transcript(native_demo, clip: str) -> None:
    assert isinstance(native_demo.word_decoder, NativeLexiconDecoder)
    audio, _rate = soundfile.read(str(CLIPS / clip), dtype="float32")
    assert transcribe(native_demo.model, torch.from_numpy(audio)) == TRANSCRIPTS[clip]


@needs_demo
def test_the_setting_picks_the_search_and_auto_prefers_native() -> None:
    python = load_checkpoint(DEFAULT_MODEL_PATH, word_decoder="python").word_decoder
    auto = load_checkpoint(DEFAULT_MODEL_PATH).word_decoder
    assert isinstance(python, LexiconBeamDecoder) and python.name == "python"
    assert isinstance(auto, NativeLexiconDecoder) and auto.name == "native"
    # Both read the same tuned settings from the checkpoint; the Python search caps its width.
    assert python.settings == replace(auto.settings, beam=min(auto.settings.beam, PYTHON_MAX_BEAM))
    with pytest.raises(ValueError, match="auto, native or python"):
        load_checkpoint(DEFAULT_MODEL_PATH, word_decoder="kenlm")


@needs_demo
def test_loading_the_native_decoder_prints_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    # KenLM draws a progress bar on stderr while it reads ARPA; it must not reach the service's logs.
    load_checkpoint(DEFAULT_MODEL_PATH, word_decoder="native")
    out, err = capfd.readouterr()
    assert out == "" and err == ""


# ------------------------------------------------------------------- ARPA export and search
def test_arpa_file_scores_every_word_pair_like_the_checkpoint_lm(lm: BigramLm, tmp_path: Path) -> None:
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import Dictionary

    write_arpa(lm, tmp_path / "lm.arpa")
    kenlm = KenLM(str(tmp_path / "lm.arpa"), Dictionary([*WORDS, "<unk>"]))
    start = kenlm.start(False)
    for previous in range(lm.boundary + 1):
        state = start if previous == lm.boundary else kenlm.score(start, previous)[0]
        for word in range(lm.boundary + 1):
            got = kenlm.finish(state)[1] if word == lm.boundary else kenlm.score(state, word)[1]
            assert got * LN10 == pytest.approx(lm.log_prob(previous, word), abs=1e-5)


def test_native_search_reads_clear_speech(lm: BigramLm) -> None:
    decoder = NativeLexiconDecoder(TOKENS, 0, WORDS, lm)
    assert decoder.decode(log_probs(sentence("an old dog was kind"))) == "an old dog was kind"


def test_native_search_pulls_a_misspelling_to_a_lexicon_word(lm: BigramLm) -> None:
    frames = sentence("a kind dog was poor")
    frames[frames.index({"k": 0.9})] = {"k": 0.45, "g": 0.44}
    assert NativeLexiconDecoder(TOKENS, 0, WORDS, lm).decode(log_probs(frames)) == "a kind dog was poor"


def test_native_search_recovers_a_weak_word_from_the_lm_and_not_without_it(lm: BigramLm) -> None:
    weak = [{ch: 0.45} for ch in "safe"] + [{"▁": 0.45}]
    x = log_probs(say("a") + weak + sentence("officer was poor"))
    # Spelling "safe" costs 1.6 nats of acoustics here: the word bonus alone (1) does not pay for
    # it, the bonus plus twice the LM's preference for "a safe officer" (0.49) does.
    settings = BeamSettings(lm_weight=2.0, word_bonus=1.0)
    assert NativeLexiconDecoder(TOKENS, 0, WORDS, lm, settings).decode(x) == "a safe officer was poor"
    assert NativeLexiconDecoder(TOKENS, 0, WORDS, None, settings).decode(x) != "a safe officer was poor"


def test_native_search_with_nothing_spellable_gives_none(lm: BigramLm) -> None:
    decoder = NativeLexiconDecoder(TOKENS, 0, WORDS, lm)
    assert decoder.decode(log_probs(say("zzz", boundary=False))) is None
    assert decoder.decode(torch.zeros(0, len(TOKENS))) is None


# ------------------------------------------------------------------ refused at load
def test_a_garbage_arpa_file_is_refused_with_kenlms_reason(lm: BigramLm, tmp_path: Path) -> None:
    broken = tmp_path / "broken.arpa"
    broken.write_text("this is not an ARPA file\n")
    with pytest.raises(NativeDecoderError, match=r"cannot load the ARPA LM broken\.arpa: .*not \\data\\"):
        NativeLexiconDecoder(TOKENS, 0, WORDS, lm, arpa_path=broken)
    with pytest.raises(NativeDecoderError, match="does not exist"):
        NativeLexiconDecoder(TOKENS, 0, WORDS, lm, arpa_path=tmp_path / "missing.arpa")


def test_an_arpa_lacking_a_lexicon_word_is_refused(tmp_path: Path) -> None:
    smaller = [w for w in WORDS if w != "officer"]
    write_arpa(BigramLm.train(smaller, [s for s in SENTENCES if "officer" not in s]), tmp_path / "lm.arpa")
    with pytest.raises(NativeDecoderError, match=r"lacks 1 lexicon words, e\.g\. 'officer'"):
        NativeLexiconDecoder(TOKENS, 0, WORDS, None, arpa_path=tmp_path / "lm.arpa")


def test_an_arpa_from_other_counts_is_refused(lm: BigramLm, tmp_path: Path) -> None:
    write_arpa(BigramLm.train(WORDS, [*SENTENCES, "a poor dog was old"]), tmp_path / "other.arpa")
    with pytest.raises(NativeDecoderError, match="does not match the checkpoint's word LM"):
        NativeLexiconDecoder(TOKENS, 0, WORDS, lm, arpa_path=tmp_path / "other.arpa")


@pytest.mark.parametrize(
    ("tokens", "words", "match"),
    [
        (TOKENS, [], "lexicon is empty"),
        (TOKENS, ["dog", "dog"], "twice"),
        (TOKENS, ["ΩΩ"], "no lexicon word can be spelled"),
        ([t for t in TOKENS if t != "▁"], WORDS, "word-boundary token"),
        (["<blank>", "▁", "▁the", "a"], ["the"], "single-character"),
    ],
)
def test_a_lexicon_the_search_cannot_use_is_refused(tokens: list[str], words: list[str], match: str) -> None:
    with pytest.raises(NativeDecoderError, match=match):
        NativeLexiconDecoder(tokens, 0, words, None)


def test_a_checkpoint_whose_lm_counts_are_broken_fails_the_native_load(lm: BigramLm) -> None:
    data = payload() | {"lexicon": WORDS, "word_lm": lm.to_payload() | {"decoder": {}}}
    data["word_lm"]["bigrams"] = torch.tensor([[0, 500, 1]])
    with pytest.raises(CheckpointFormatError, match=r"bad 'word_lm'.*outside"):
        load_checkpoint(to_bytes(data), word_decoder="native")


# ------------------------------------------------------------------ setting and server
def test_word_decoder_setting_reads_env_and_flag_and_refuses_others() -> None:
    assert load_settings([], {}).word_decoder == "auto"
    assert load_settings([], {"WORD_DECODER": "python"}).word_decoder == "python"
    assert load_settings(["--word-decoder", "native"], {"WORD_DECODER": "python"}).word_decoder == "native"
    with pytest.raises(SettingsError, match="word_decoder must be one of auto, native, python"):
        load_settings([], {"WORD_DECODER": "fast"})


@needs_demo
def test_without_flashlight_auto_falls_back_to_python_and_native_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "flashlight.lib.text.decoder", None)  # import now fails
    assert not native_available()
    assert isinstance(load_checkpoint(DEFAULT_MODEL_PATH).word_decoder, LexiconBeamDecoder)
    with pytest.raises(SettingsError, match="WORD_DECODER is native but flashlight-text does not import"):
        load_settings([], {"WORD_DECODER": "native"})
    with pytest.raises(CheckpointFormatError, match="needs flashlight-text"):
        load_checkpoint(DEFAULT_MODEL_PATH, word_decoder="native")


@needs_demo
@pytest.mark.parametrize("choice", ["native", "python"])
def test_the_server_decodes_finals_with_the_configured_search(choice: str) -> None:
    settings = TEST_SETTINGS.__class__(**{**vars(TEST_SETTINGS), "word_decoder": choice})
    server = ServerThread(settings, load_configured_model).start()
    try:
        status, _headers, body = http_get(server.health_port, "/metrics")
        assert status == 200 and json.loads(body)["word_decoder"] == choice
        clip = "clip3_en-gb-x-rp_m1.wav"  # greedy drops "safe": only the word-LM search gets it right
        audio, rate = soundfile.read(str(CLIPS / clip), dtype="float32")
        events, code = stream_native(server.url, audio, sample_rate=rate, frame_ms=40)
        assert code == 1000
        assert events[-1]["text"] == TRANSCRIPTS[clip]
    finally:
        server.stop()
