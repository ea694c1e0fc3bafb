"""Client audio → model input: PCM16 decoding and streaming resampling.

The resampler produces exactly what ``torchaudio.functional.resample`` gives for the whole
signal, however the audio is cut into messages: it keeps the filter's look-ahead and history
between pushes instead of resampling each message on its own (which clicks at every edge).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torchaudio


class AudioFormatError(ValueError):
    """Bytes that are not 16-bit PCM."""


def decode_pcm16(data: bytes) -> torch.Tensor:
    """Little-endian signed 16-bit mono PCM → float32 in [-1, 1)."""
    if len(data) % 2:
        raise AudioFormatError(f"PCM16 needs an even number of bytes, got {len(data)}")
    samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    return torch.from_numpy(samples)


def encode_pcm16(samples: np.ndarray) -> bytes:
    """float in [-1, 1] → little-endian PCM16 (used by the client and tests)."""
    clipped = np.clip(np.asarray(samples, dtype=np.float64), -1.0, 32767 / 32768)
    return (clipped * 32768.0).round().astype("<i2").tobytes()


@functools.lru_cache(maxsize=32)
def _kernel(orig_rate: int, new_rate: int) -> tuple[torch.Tensor, int, int, int]:
    """torchaudio's polyphase sinc kernel (cached per rate pair): kernel, width, orig', new'."""
    resample = torchaudio.transforms.Resample(orig_rate, new_rate)
    gcd = int(resample.gcd)
    return resample.kernel.detach(), int(resample.width), orig_rate // gcd, new_rate // gcd


class StreamingResampler:
    """Resample a stream pushed in arbitrary pieces; ``flush`` at end of stream."""

    def __init__(self, orig_rate: int, new_rate: int) -> None:
        self.orig_rate = orig_rate
        self.new_rate = new_rate
        self._passthrough = orig_rate == new_rate
        self._received = 0
        self._emitted = 0
        if not self._passthrough:
            self._kernel, self._width, self._orig_step, self._new_step = _kernel(orig_rate, new_rate)
            # The buffer starts `width` samples before the next block to output; the whole-signal
            # resampler pads with zeros there, so the stream starts with the same zeros.
            self._buffer = torch.zeros(self._width)

    def push(self, samples: torch.Tensor) -> torch.Tensor:
        self._received += samples.numel()
        if self._passthrough:
            self._emitted += samples.numel()
            return samples
        self._buffer = torch.cat([self._buffer, samples])
        return self._emit()

    def flush(self) -> torch.Tensor:
        """Resample what is left (zero look-ahead, as the whole-signal resampler pads)."""
        if self._passthrough:
            return torch.zeros(0)
        tail = (-(self._buffer.numel() - 2 * self._width)) % self._orig_step
        self._buffer = torch.cat([self._buffer, torch.zeros(self._width + self._orig_step + tail)])
        out = self._emit()
        target = -(-self.new_rate * self._received // self.orig_rate)  # ceil, as torchaudio
        keep = max(0, target - (self._emitted - out.numel()))
        self._emitted = self._emitted - out.numel() + min(keep, out.numel())
        return out[:keep]

    def _emit(self) -> torch.Tensor:
        blocks = (self._buffer.numel() - 2 * self._width) // self._orig_step
        if blocks <= 0:
            return torch.zeros(0)
        span = blocks * self._orig_step + 2 * self._width
        with torch.inference_mode():
            out = torch.nn.functional.conv1d(
                self._buffer[None, None, :span], self._kernel, stride=self._orig_step
            )
        out = out[0].transpose(0, 1).reshape(-1)
        self._buffer = self._buffer[blocks * self._orig_step :]
        self._emitted += out.numel()
        return out
