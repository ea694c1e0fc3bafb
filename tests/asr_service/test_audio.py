"""PCM decoding and the streaming resampler (equal to torchaudio's whole-signal resample)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchaudio

from asr_service.audio import AudioFormatError, StreamingResampler, decode_pcm16, encode_pcm16


def test_pcm16_round_trip_and_odd_length_refused():
    samples = np.array([0.0, 0.5, -0.5, -1.0, 0.99997], dtype=np.float32)
    decoded = decode_pcm16(encode_pcm16(samples))
    assert torch.allclose(decoded, torch.from_numpy(samples), atol=1 / 32768)
    assert decode_pcm16(b"\x00\x80").item() == -1.0  # little-endian
    with pytest.raises(AudioFormatError):
        decode_pcm16(b"\x00\x01\x02")


@pytest.mark.parametrize("rate", [8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000])
def test_streaming_resampler_equals_whole_signal_resampling_for_any_cut(rate):
    generator = torch.Generator().manual_seed(rate)
    signal = torch.randn(rate + 321, generator=generator) * 0.3
    expected = torchaudio.functional.resample(signal, rate, 16000)
    resampler = StreamingResampler(rate, 16000)
    pieces, offset = [], 0
    while offset < signal.numel():
        size = int(torch.randint(1, 2500, (1,), generator=generator))
        pieces.append(resampler.push(signal[offset : offset + size]))
        offset += size
    pieces.append(resampler.flush())
    got = torch.cat(pieces)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-4)


def test_resampler_output_keeps_pace_with_input():
    resampler = StreamingResampler(48000, 16000)
    produced = sum(resampler.push(torch.zeros(480)).numel() for _ in range(100))
    assert 16000 - 40 <= produced <= 16000  # only the filter's look-ahead is held back
