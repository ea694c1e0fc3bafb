"""The tools of bench/gpu_check.sh: the random full-size stand-in must behave like a model whose
text follows the audio (or a load test times no partials), and the held-out audio must reach a
machine without espeak-ng unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from asr_service.ezspeech import EzSpeechCTC, EzSpeechHParams, FilterbankSettings
from asr_service.model.ctc import greedy_decode
from asr_service.wav import read_wav
from bench.ezspeech_full_model import CLIPS, centre_head
from bench.ezspeech_precision import read_audio, save_audio

# ctc_sc's layout at a size a test can run; the effect is the same at full size.
SMALL = EzSpeechHParams(vocab_size=127, d_model=144, n_layers=2, n_heads=4, subsampling_conv_channels=64)


def _texts(model: EzSpeechCTC) -> list[str]:
    texts = []
    for path in sorted(CLIPS.glob("*.wav")):
        pcm, _rate = read_wav(path)
        audio = torch.from_numpy(pcm.astype(np.float32) / 32768.0)[None]
        with torch.inference_mode():
            log_probs, frames = model.forward_full(audio, torch.tensor([audio.shape[1]]))
        texts.append(greedy_decode(log_probs[0], model.tokens, model.blank_id, int(frames[0])))
    return texts


def test_a_centred_head_makes_a_random_conformers_text_follow_the_audio() -> None:
    torch.manual_seed(0)
    tokens = [f"▁p{i}" for i in range(SMALL.vocab_size)] + ["<blank>"]
    model = EzSpeechCTC(SMALL, FilterbankSettings(), tokens).eval()
    before = _texts(model)
    # Untouched: one piece on (nearly) every frame, so every clip reads about the same.
    assert max(len(set(t.split())) for t in before) <= 2
    centre_head(model, sorted(CLIPS.glob("*.wav")))
    after = _texts(model)
    assert len(set(after)) == len(after)  # each clip its own text
    assert min(len(set(t.split())) for t in after) >= 5


def test_held_out_audio_survives_the_trip_to_a_machine_without_espeak(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    clips = [rng.uniform(-0.5, 0.5, n).astype(np.float32) for n in (16000, 8000, 24000)]
    texts = ["one sentence", "another one", "a third"]
    save_audio(tmp_path / "heldout.npz", texts, clips)
    read_texts, audio = read_audio(tmp_path / "heldout.npz")
    assert read_texts == texts
    assert [a.numel() for a in audio] == [16000, 8000, 24000]
    assert all(np.abs(a.numpy() - c).max() < 1 / 32000 for a, c in zip(audio, clips, strict=True))
