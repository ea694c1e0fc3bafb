"""The Conformer encoder of EzSpeech's ``ctc_sc`` model (Gulati et al. 2020, "Conformer:
Convolution-augmented Transformer for Speech Recognition").

Every attribute name below is part of the checkpoint format: the state-dict keys of EzSpeech
(``encoder.pre_encode.conv.0.weight``, ``encoder.layers.3.conv.batch_norm.running_mean``, ...)
are these module paths, so its weights load without renaming.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from asr_service.ezspeech.attention import RelPositionMultiHeadAttention, sinusoid_relative_embedding

# Depthwise-separable strided subsampling: kernel 3, stride 2, padding 1 along time and frequency.
_SUB_KERNEL, _SUB_STRIDE, _SUB_PADDING = 3, 2, 1


def _strided_length(length: int) -> int:
    return (length + 2 * _SUB_PADDING - _SUB_KERNEL) // _SUB_STRIDE + 1


class DwStridingSubsampling(nn.Module):
    """Features [B, T, F] -> [B, T / factor, d_model].

    ``conv`` is a Sequential whose indices match EzSpeech: a full 3×3 conv from one input channel
    (0), ReLU (1), then per further halving a depthwise 3×3 (2, 5, ...), a pointwise 1×1 (3, 6, ...)
    and a ReLU. ``out`` projects channels × remaining frequency bins to d_model.
    """

    def __init__(self, feat_in: int, d_model: int, channels: int, factor: int) -> None:
        super().__init__()
        stages = int(math.log2(factor))
        if factor < 2 or 2**stages != factor:
            raise ValueError(f"subsampling factor must be a power of two >= 2, got {factor}")
        self.stages = stages
        layers: list[nn.Module] = [
            nn.Conv2d(1, channels, _SUB_KERNEL, _SUB_STRIDE, _SUB_PADDING),
            nn.ReLU(),
        ]
        for _ in range(stages - 1):
            layers += [
                nn.Conv2d(channels, channels, _SUB_KERNEL, _SUB_STRIDE, _SUB_PADDING, groups=channels),
                nn.Conv2d(channels, channels, 1),
                nn.ReLU(),
            ]
        freq = feat_in
        for _ in range(stages):
            freq = _strided_length(freq)
        # Registered before ``conv`` only to keep EzSpeech's state-dict key order.
        self.out = nn.Linear(channels * freq, d_model)
        self.conv = nn.Sequential(*layers)

    def output_length(self, length: int) -> int:
        for _ in range(self.stages):
            length = _strided_length(length)
        return length

    def output_lengths(self, lengths: torch.Tensor, stages: int | None = None) -> torch.Tensor:
        for _ in range(self.stages if stages is None else stages):
            lengths = (
                torch.div(lengths + 2 * _SUB_PADDING - _SUB_KERNEL, _SUB_STRIDE, rounding_mode="floor") + 1
            )
        return lengths

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, T, F] -> [B, T', d_model] and the new lengths."""
        x = x.unsqueeze(1)  # [B, 1, T, F]
        padded = bool((lengths < x.shape[2]).any())
        for module in self.conv:
            x = module(x)
            if padded and isinstance(module, nn.ReLU):
                # Zero the frames past each sequence's end after every stage, so that a padded
                # sequence in a batch gets exactly the result it gets alone.
                lengths = self.output_lengths(lengths, stages=1)
                valid = torch.arange(x.shape[2], device=x.device)[None, :] < lengths[:, None]
                x = x * valid[:, None, :, None]
        if not padded:
            lengths = self.output_lengths(lengths)
        batch, _, time, _ = x.shape
        return self.out(x.transpose(1, 2).reshape(batch, time, -1)), lengths


class ConformerFeedForward(nn.Module):
    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ff)
        self.activation = nn.SiLU()
        self.linear2 = nn.Linear(d_ff, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.activation(self.linear1(x)))


class ConformerConvolution(nn.Module):
    """Pointwise conv to 2×d, GLU, depthwise conv (same padding), batch norm, Swish, pointwise."""

    def __init__(self, d_model: int, kernel_size: int) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"conv_kernel_size must be odd, got {kernel_size}")
        self.pointwise_conv1 = nn.Conv1d(d_model, 2 * d_model, 1)
        self.depthwise_conv = nn.Conv1d(
            d_model, d_model, kernel_size, padding=(kernel_size - 1) // 2, groups=d_model
        )
        self.batch_norm = nn.BatchNorm1d(d_model)
        self.activation = nn.SiLU()
        self.pointwise_conv2 = nn.Conv1d(d_model, d_model, 1)

    def forward(self, x: torch.Tensor, padding: torch.Tensor | None) -> torch.Tensor:
        x = nn.functional.glu(self.pointwise_conv1(x.transpose(1, 2)), dim=1)
        if padding is not None:
            # Padded frames must not leak into real ones through the depthwise kernel.
            x = x.masked_fill(padding.unsqueeze(1), 0.0)
        x = self.activation(self.batch_norm(self.depthwise_conv(x)))
        return self.pointwise_conv2(x).transpose(1, 2)


class ConformerLayer(nn.Module):
    """Macaron block: ½·FF, self-attention, convolution, ½·FF, each pre-normed and residual,
    then a final layer norm."""

    def __init__(self, d_model: int, d_ff: int, n_heads: int, conv_kernel_size: int) -> None:
        super().__init__()
        self.norm_feed_forward1 = nn.LayerNorm(d_model)
        self.feed_forward1 = ConformerFeedForward(d_model, d_ff)
        self.norm_conv = nn.LayerNorm(d_model)
        self.conv = ConformerConvolution(d_model, conv_kernel_size)
        self.norm_self_att = nn.LayerNorm(d_model)
        self.self_attn = RelPositionMultiHeadAttention(n_heads, d_model)
        self.norm_feed_forward2 = nn.LayerNorm(d_model)
        self.feed_forward2 = ConformerFeedForward(d_model, d_ff)
        self.norm_out = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, pos_emb: torch.Tensor, padding: torch.Tensor | None) -> torch.Tensor:
        x = x + 0.5 * self.feed_forward1(self.norm_feed_forward1(x))
        x = x + self.self_attn(self.norm_self_att(x), pos_emb, padding)
        x = x + self.conv(self.norm_conv(x), padding)
        x = x + 0.5 * self.feed_forward2(self.norm_feed_forward2(x))
        return self.norm_out(x)


class ConformerEncoder(nn.Module):
    """Features [B, F, T] and lengths -> encodings [B, T', d_model] and lengths."""

    def __init__(
        self,
        *,
        feat_in: int,
        d_model: int,
        n_layers: int,
        n_heads: int,
        ff_expansion_factor: int,
        conv_kernel_size: int,
        subsampling_factor: int,
        subsampling_conv_channels: int,
        xscaling: bool,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        # EzSpeech's ctc_sc trains with xscaling off; other configs scale inputs by sqrt(d_model).
        self.xscale = math.sqrt(d_model) if xscaling else 1.0
        self.pre_encode = DwStridingSubsampling(
            feat_in, d_model, subsampling_conv_channels, subsampling_factor
        )
        self.layers = nn.ModuleList(
            ConformerLayer(d_model, d_model * ff_expansion_factor, n_heads, conv_kernel_size)
            for _ in range(n_layers)
        )

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, lengths = self.pre_encode(features.transpose(1, 2), lengths)
        x = x * self.xscale
        time = x.shape[1]
        padding = torch.arange(time, device=x.device)[None, :] >= lengths[:, None]
        # One sequence has no padding: skip the masks (and their cost) entirely.
        mask = padding if bool(padding.any()) else None
        pos_emb = sinusoid_relative_embedding(time, self.d_model, x.device).to(x.dtype)
        for layer in self.layers:
            x = layer(x, pos_emb, mask)
        return x, lengths
