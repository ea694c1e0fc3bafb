"""Multi-head self-attention with relative positional encoding (Transformer-XL, Dai et al. 2019),
as used by the Conformer (Gulati et al. 2020).

Score between query i and key j: ``(q_i + u)·k_j + (q_i + v)·W_pos·r_{i-j}``, scaled by 1/sqrt(d_k),
where ``r`` is a sinusoidal embedding of the signed distance and ``u``/``v`` are learned per-head
biases (``pos_bias_u``/``pos_bias_v``, one pair per layer: EzSpeech unties them).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoid_relative_embedding(length: int, d_model: int, device: torch.device) -> torch.Tensor:
    """Embeddings of the distances ``length-1, ..., 0, ..., -(length-1)`` -> [1, 2*length-1, d_model].

    Even channels hold sines and odd channels cosines of ``distance / 10000^(2k/d_model)``.
    """
    distances = torch.arange(length - 1, -length, -1, device=device, dtype=torch.float32).unsqueeze(1)
    inverse_freq = torch.exp(
        torch.arange(0, d_model, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / d_model)
    )
    table = torch.zeros(2 * length - 1, d_model, device=device)
    table[:, 0::2] = torch.sin(distances * inverse_freq)
    table[:, 1::2] = torch.cos(distances * inverse_freq)
    return table.unsqueeze(0)


def relative_to_absolute(scores: torch.Tensor) -> torch.Tensor:
    """[B, H, T, 2T-1] scores indexed by distance row -> [B, H, T, T] indexed by key position.

    Column ``c`` of the input holds distance ``T-1-c``; query ``i`` and key ``j`` are ``i-j`` apart,
    so the output takes column ``T-1-i+j``. In a contiguous tensor that is a strided view (row
    stride ``2T-2``, start ``T-1``): no copy, no index tensor.
    """
    batch, heads, time, width = scores.shape
    if width != 2 * time - 1:
        raise ValueError(f"expected {2 * time - 1} relative positions, got {width}")
    scores = scores.contiguous()
    return scores.as_strided(
        (batch, heads, time, time),
        (heads * time * width, time * width, width - 1, 1),
        storage_offset=scores.storage_offset() + time - 1,
    )


class RelPositionMultiHeadAttention(nn.Module):
    """Parameter names follow EzSpeech: linear_q/k/v/out (with bias), linear_pos (no bias),
    pos_bias_u/pos_bias_v [heads, d_k]."""

    def __init__(self, n_heads: int, d_model: int) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.d_k = d_model // n_heads
        self.linear_q = nn.Linear(d_model, d_model)
        self.linear_k = nn.Linear(d_model, d_model)
        self.linear_v = nn.Linear(d_model, d_model)
        self.linear_out = nn.Linear(d_model, d_model)
        self.linear_pos = nn.Linear(d_model, d_model, bias=False)
        self.pos_bias_u = nn.Parameter(torch.zeros(n_heads, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.zeros(n_heads, self.d_k))
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)

    def forward(
        self, x: torch.Tensor, pos_emb: torch.Tensor, key_padding: torch.Tensor | None
    ) -> torch.Tensor:
        """x [B, T, D]; pos_emb [1, 2T-1, D]; key_padding [B, T] True where padded (or None)."""
        batch, time, _ = x.shape
        heads, d_k = self.n_heads, self.d_k
        q = self.linear_q(x).view(batch, time, heads, d_k)
        k = self.linear_k(x).view(batch, time, heads, d_k).transpose(1, 2)
        v = self.linear_v(x).view(batch, time, heads, d_k).transpose(1, 2)
        p = self.linear_pos(pos_emb).view(1, -1, heads, d_k).transpose(1, 2)

        q_content = (q + self.pos_bias_u).transpose(1, 2)
        q_position = (q + self.pos_bias_v).transpose(1, 2)
        position_scores = relative_to_absolute(torch.matmul(q_position, p.transpose(-2, -1)))
        # The positional term enters as an additive bias; SDPA applies the same 1/sqrt(d_k) to the
        # content term, so both are scaled exactly as in the paper.
        bias = position_scores / math.sqrt(d_k)
        if key_padding is not None:
            bias = bias.masked_fill(key_padding[:, None, None, :], torch.finfo(bias.dtype).min)
        context = nn.functional.scaled_dot_product_attention(q_content, k, v, attn_mask=bias)
        return self.linear_out(context.transpose(1, 2).reshape(batch, time, heads * d_k))
