"""A tiny deterministic streaming model of the AcousticModel interface, for engine/server tests.

Each 20 ms frame becomes one CTC frame: silence → blank; a tone → the letter of its pitch band
(200 Hz per letter: 0-199 Hz "a", 200-399 Hz "b", ...), found by counting zero crossings. The
crossing count at a chunk edge needs the previous chunk's last sample, which is carried in the
state, so decoding each chunk on its own (no state) gives a different answer than streaming.
Pitch makes resampling visible: a 48 kHz tone read as 16 kHz would land three bands higher.
"""

from __future__ import annotations

import numpy as np
import torch

SAMPLE_RATE = 16000
FRAME = 320  # 20 ms
LETTERS = "abcdefgh"
TOKENS = ["<blank>"] + [f"▁{c}" for c in LETTERS]


class FakeStreamingModel(torch.nn.Module):
    sample_rate = SAMPLE_RATE
    chunk_samples = 1600  # 100 ms
    lookahead_samples = 0
    frame_shift_s = FRAME / SAMPLE_RATE
    tokens = TOKENS
    blank_id = 0
    streaming = True

    def __init__(self, chunk_samples: int = 1600) -> None:
        super().__init__()
        self.chunk_samples = chunk_samples
        self.steps = 0
        self.batch_sizes: list[int] = []

    def initial_state(self, batch_size: int, device: torch.device) -> tuple[torch.Tensor, ...]:
        return (torch.zeros(batch_size, 1, device=device),)

    def _frames(self, audio: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        batch = audio.shape[0]
        frames = audio.reshape(batch, -1, FRAME)
        energy = frames.pow(2).mean(-1)
        shifted = torch.cat([previous, audio[:, :-1]], dim=1).reshape(batch, -1, FRAME)
        crossings = ((frames >= 0) != (shifted >= 0)).sum(-1).float()
        freq = crossings * (SAMPLE_RATE / FRAME) / 2
        letter = torch.clamp(freq // 200, max=len(LETTERS) - 1).long() + 1
        ids = torch.where(energy > 1e-4, letter, torch.zeros_like(letter))
        logits = torch.full((batch, ids.shape[1], len(TOKENS)), -10.0)
        logits.scatter_(2, ids.unsqueeze(-1), 10.0)
        return torch.log_softmax(logits, dim=-1)

    def stream_step(self, audio: torch.Tensor, state: tuple[torch.Tensor, ...]):
        self.steps += 1
        self.batch_sizes.append(audio.shape[0])
        return self._frames(audio, state[0]), (audio[:, -1:].clone(),)

    def forward_full(self, audio: torch.Tensor, lengths: torch.Tensor):
        out = self._frames(audio, torch.zeros(audio.shape[0], 1))
        return out, torch.tensor([self.num_frames(int(n)) for n in lengths])

    def num_frames(self, num_samples: int) -> int:
        return -(-num_samples // FRAME)


def tone(freq: float, seconds: float, rate: int = SAMPLE_RATE, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    # A small phase offset keeps samples off exact zeros, so crossings are counted cleanly.
    return (amplitude * np.sin(2 * np.pi * freq * t + 0.1)).astype(np.float32)


def silence(seconds: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    return np.zeros(round(seconds * rate), dtype=np.float32)


def word_audio(letters: str, rate: int = SAMPLE_RATE, tone_s: float = 0.2, gap_s: float = 0.06) -> np.ndarray:
    """Tones whose pitch bands spell ``letters`` (separated by short gaps: one word per letter)."""
    parts = []
    for letter in letters:
        parts += [tone(LETTERS.index(letter) * 200 + 100, tone_s, rate), silence(gap_s, rate)]
    return np.concatenate(parts)
