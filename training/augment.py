"""Noise, level and channel augmentation, applied on the fly (a new draw every epoch)."""

from __future__ import annotations

import numpy as np
import torch
import torchaudio

SAMPLE_RATE = 16000


def colored_noise(n: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Noise with power spectrum ∝ 1/f^exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1] if n > 2 else 1.0
    noise = np.fft.irfft(spectrum / freqs ** (exponent / 2), n)
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


def augment(
    audio_int16: np.ndarray,
    rng: np.random.Generator,
    snr_db: tuple[float, float] = (5.0, 40.0),
    noise_prob: float = 0.85,
) -> np.ndarray:
    """One augmented copy: random silence padding, band limiting, level, additive noise."""
    audio = audio_int16.astype(np.float32) / 32768.0
    lead = int(rng.uniform(0.0, 0.4) * SAMPLE_RATE)
    tail = int(rng.uniform(0.0, 0.3) * SAMPLE_RATE)
    audio = np.concatenate([np.zeros(lead, np.float32), audio, np.zeros(tail, np.float32)])

    band = rng.random()
    if band < 0.15:  # telephone-like channel
        tensor = torch.from_numpy(audio)
        tensor = torchaudio.functional.highpass_biquad(tensor, SAMPLE_RATE, float(rng.uniform(200, 400)))
        tensor = torchaudio.functional.lowpass_biquad(tensor, SAMPLE_RATE, float(rng.uniform(3000, 3600)))
        audio = tensor.numpy()
    elif band < 0.3:  # muffled
        tensor = torchaudio.functional.lowpass_biquad(
            torch.from_numpy(audio), SAMPLE_RATE, float(rng.uniform(2500, 5000))
        )
        audio = tensor.numpy()

    speech_rms = float(np.sqrt(np.mean(audio**2))) + 1e-9
    level_db = rng.uniform(-38.0, -14.0)
    audio = audio * (10 ** (level_db / 20) / speech_rms)
    if rng.random() < noise_prob:
        noise = colored_noise(audio.size, rng, exponent=float(rng.choice([0.0, 1.0, 2.0])))
        snr = rng.uniform(*snr_db)
        audio = audio + noise * (10 ** (level_db / 20) / 10 ** (snr / 20))
    return np.clip(audio, -1.0, 1.0).astype(np.float32)
