"""Noise, level and channel augmentation, applied on the fly (a new draw every epoch)."""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000


def _fast_length(n: int) -> int:
    """A length >= n whose FFT is fast (a multiple of 4096: only small prime factors)."""
    return -(-n // 4096) * 4096


def colored_noise(n: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Noise with power spectrum ∝ 1/f^exponent (0 white, 1 pink, 2 brown), unit RMS.

    Drawn directly in the frequency domain (one inverse FFT of a fast length)."""
    size = _fast_length(max(n, 2))
    bins = size // 2 + 1
    spectrum = rng.standard_normal(bins) + 1j * rng.standard_normal(bins)
    freqs = np.arange(bins, dtype=np.float64)
    freqs[0] = 1.0
    noise = np.fft.irfft(spectrum / freqs ** (exponent / 2), size)[:n]
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


def band_limit(audio: np.ndarray, low_hz: float, high_hz: float) -> np.ndarray:
    """Smooth band-pass by FFT masking (cosine roll-offs 100 Hz wide at the lower and 500 Hz wide
    at the upper edge): a cheap stand-in for a telephone or muffled channel."""
    size = _fast_length(audio.size)
    spectrum = np.fft.rfft(audio, size)
    freqs = np.fft.rfftfreq(size, 1.0 / SAMPLE_RATE)
    rise = np.clip((freqs - (low_hz - 100.0)) / 100.0, 0.0, 1.0) if low_hz > 0 else np.ones_like(freqs)
    fall = np.clip((high_hz - freqs) / 500.0 + 1.0, 0.0, 1.0)
    mask = (0.5 - 0.5 * np.cos(np.pi * rise)) * (0.5 - 0.5 * np.cos(np.pi * fall))
    return np.fft.irfft(spectrum * mask, size)[: audio.size].astype(np.float32)


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
        audio = band_limit(audio, float(rng.uniform(200, 400)), float(rng.uniform(3000, 3600)))
    elif band < 0.3:  # muffled
        audio = band_limit(audio, 0.0, float(rng.uniform(2500, 5000)))

    speech_rms = float(np.sqrt(np.mean(audio**2))) + 1e-9
    level_db = rng.uniform(-38.0, -14.0)
    audio = audio * (10 ** (level_db / 20) / speech_rms)
    if rng.random() < noise_prob:
        noise = colored_noise(audio.size, rng, exponent=float(rng.choice([0.0, 1.0, 2.0])))
        snr = rng.uniform(*snr_db)
        audio = audio + noise * (10 ** (level_db / 20) / 10 ** (snr / 20))
    return np.clip(audio, -1.0, 1.0).astype(np.float32)
