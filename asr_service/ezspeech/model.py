"""EzSpeech's CTC Conformer (config ``ctc_sc``) as an :class:`AcousticModel`.

Module paths equal EzSpeech's state-dict keys: ``preprocessor.featurizer.{window,fb}``,
``encoder.pre_encode.*``, ``encoder.layers.N.*`` and ``ctc_decoder.decoder_layers.0.*`` (a 1×1
conv over the encodings whose last output is the CTC blank).

The model attends over the whole utterance, so it is not streamable (``streaming = False``): the
serving engine drives it through ``forward_full`` with the growing-window strategy
(``asr_service.decoding.growing_window``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from asr_service.ezspeech.conformer import ConformerEncoder
from asr_service.ezspeech.features import FilterbankFeatures, FilterbankSettings
from asr_service.model.dataclass_io import dataclass_from_mapping
from asr_service.model.interface import StreamState, register_architecture

ARCH = "ezspeech_ctc_sc"
BLANK_TOKEN = "<blank>"  # noqa: S105 (a vocabulary entry, not a secret)


@dataclass(frozen=True)
class EzSpeechHParams:
    """Architecture hyper-parameters; stored as the checkpoint's ``hparams`` field.

    Defaults are EzSpeech's ``ctc_sc`` config (about 78 M parameters with 2048 word pieces).
    """

    vocab_size: int = 2048  # word pieces, without the blank
    feat_in: int = 80
    d_model: int = 512
    n_layers: int = 12
    n_heads: int = 8
    ff_expansion_factor: int = 4
    conv_kernel_size: int = 9
    subsampling_factor: int = 8
    subsampling_conv_channels: int = 256
    xscaling: bool = False

    def __post_init__(self) -> None:
        for name in ("vocab_size", "feat_in", "d_model", "n_layers", "n_heads", "ff_expansion_factor"):
            if getattr(self, name) <= 0:
                raise ValueError(f"hparam {name} must be positive, got {getattr(self, name)}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> EzSpeechHParams:
        return dataclass_from_mapping(cls, values, f"{ARCH} hparams")


class Preprocessor(nn.Module):
    """Holds the featurizer under the name EzSpeech uses (``preprocessor.featurizer``)."""

    def __init__(self, settings: FilterbankSettings) -> None:
        super().__init__()
        self.featurizer = FilterbankFeatures(settings)


class ConvCTCHead(nn.Module):
    """1×1 convolution from d_model to vocab + blank, then log-softmax."""

    def __init__(self, d_model: int, num_outputs: int) -> None:
        super().__init__()
        self.decoder_layers = nn.Sequential(nn.Conv1d(d_model, num_outputs, kernel_size=1))

    def forward(self, encodings: torch.Tensor) -> torch.Tensor:
        logits = self.decoder_layers(encodings.transpose(1, 2)).transpose(1, 2)
        # In float32 even for a half-precision model: posteriors feed confidences and endpointing.
        return logits.float().log_softmax(dim=-1)


class EzSpeechCTC(nn.Module):
    """Full-context CTC Conformer. Implements ``asr_service.model.interface.AcousticModel``."""

    streaming = False
    #: Audio the engine buffers between decodes (the model itself has no chunk size).
    chunk_samples_s = 0.32

    def __init__(self, hparams: EzSpeechHParams, settings: FilterbankSettings, tokens: list[str]) -> None:
        super().__init__()
        if len(tokens) != hparams.vocab_size + 1:
            raise ValueError(
                f"{len(tokens)} tokens given, the model has {hparams.vocab_size} pieces + blank "
                f"= {hparams.vocab_size + 1} outputs"
            )
        if settings.features != hparams.feat_in:
            raise ValueError(
                f"features={settings.features} but the encoder expects feat_in={hparams.feat_in}"
            )
        self.hparams = hparams
        self.settings = settings
        self.tokens = list(tokens)
        self.blank_id = hparams.vocab_size
        self.sample_rate = settings.sample_rate
        self.chunk_samples = int(self.chunk_samples_s * settings.sample_rate)
        self.lookahead_samples = 0
        self.frame_shift_s = settings.hop_length * hparams.subsampling_factor / settings.sample_rate
        self.preprocessor = Preprocessor(settings)
        self.encoder = ConformerEncoder(
            feat_in=hparams.feat_in,
            d_model=hparams.d_model,
            n_layers=hparams.n_layers,
            n_heads=hparams.n_heads,
            ff_expansion_factor=hparams.ff_expansion_factor,
            conv_kernel_size=hparams.conv_kernel_size,
            subsampling_factor=hparams.subsampling_factor,
            subsampling_conv_channels=hparams.subsampling_conv_channels,
            xscaling=hparams.xscaling,
        )
        self.ctc_decoder = ConvCTCHead(hparams.d_model, hparams.vocab_size + 1)

    def num_frames(self, num_samples: int) -> int:
        return self.encoder.pre_encode.output_length(self.preprocessor.featurizer.num_frames(num_samples))

    def forward_full(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if audio.dim() != 2 or lengths.dim() != 1 or lengths.shape[0] != audio.shape[0]:
            raise ValueError(
                f"expected audio [B, N] and lengths [B], got {tuple(audio.shape)}, {tuple(lengths.shape)}"
            )
        features, frame_lengths = self.preprocessor.featurizer(audio, lengths)
        encodings, out_lengths = self.encoder(features.to(self._dtype()), frame_lengths)
        return self.ctc_decoder(encodings), out_lengths

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_full(audio, lengths)

    def initial_state(self, batch_size: int, device: torch.device) -> StreamState:
        return ()

    def stream_step(self, audio: torch.Tensor, state: StreamState) -> tuple[torch.Tensor, StreamState]:
        raise NotImplementedError(
            f"{ARCH} attends over the whole utterance and has no streaming step; "
            "the engine serves it with a full-context strategy (asr_service.decoding.growing_window)"
        )

    def set_compute_dtype(self, dtype: torch.dtype) -> None:
        """Run the encoder and the CTC head in ``dtype`` (``MODEL_DTYPE``: float16/bfloat16 on a GPU).

        The featurizer stays float32 (log-mel of quiet audio underflows in half precision) and
        the head's log-softmax is taken in float32, so confidences and endpointing see float32
        posteriors either way."""
        self.encoder.to(dtype)
        self.ctc_decoder.to(dtype)

    def _dtype(self) -> torch.dtype:
        return self.encoder.pre_encode.out.weight.dtype


@register_architecture(ARCH)
def build_ezspeech_ctc(
    hparams: Mapping[str, Any], features: Mapping[str, Any], tokens: list[str]
) -> nn.Module:
    return EzSpeechCTC(
        EzSpeechHParams.from_mapping(hparams), FilterbankSettings.from_mapping(features), tokens
    )
