"""From an EzSpeech state dict (+ its config, when present) to this project's hparams, and a
key-by-key check of the weights against the architecture, with errors that name the key."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from asr_service.ezspeech.features import FilterbankSettings
from asr_service.ezspeech.model import BLANK_TOKEN, EzSpeechCTC, EzSpeechHParams

#: Top-level modules that make up the served model; every key under them must fit exactly.
SERVED_MODULES = ("preprocessor.", "encoder.", "ctc_decoder.")

_CTC_WEIGHT = "ctc_decoder.decoder_layers.0.weight"


class LayoutError(ValueError):
    """The weights do not fit the ctc_sc architecture; the message names the offending key."""


@dataclass(frozen=True)
class Layout:
    hparams: EzSpeechHParams
    features: FilterbankSettings
    state_dict: dict[str, torch.Tensor]
    #: Keys of other training-time modules (auxiliary heads, ...) that serving does not use.
    ignored_keys: list[str]


def _shape(state: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    try:
        return tuple(state[key].shape)
    except KeyError:
        raise LayoutError(f"missing key {key!r}: is this an EzSpeech ctc_sc checkpoint?") from None


def infer_hparams(state: Mapping[str, torch.Tensor], encoder_config: Mapping[str, Any]) -> EzSpeechHParams:
    """Sizes come from tensor shapes (they cannot lie); the config adds what shapes do not show."""
    vocab_plus_blank, d_model, _ = _shape(state, _CTC_WEIGHT)
    heads, _ = _shape(state, "encoder.layers.0.self_attn.pos_bias_u")
    d_ff, _ = _shape(state, "encoder.layers.0.feed_forward1.linear1.weight")
    _, _, kernel = _shape(state, "encoder.layers.0.conv.depthwise_conv.weight")
    channels, *_ = _shape(state, "encoder.pre_encode.conv.0.weight")
    _, feat_in, _ = _shape(state, "preprocessor.featurizer.fb")
    layer_ids = {int(m.group(1)) for key in state if (m := re.match(r"encoder\.layers\.(\d+)\.", key))}
    conv_ids = {
        int(m.group(1)) for key in state if (m := re.match(r"encoder\.pre_encode\.conv\.(\d+)\.", key))
    }
    if d_ff % d_model:
        raise LayoutError(f"feed-forward width {d_ff} is not a multiple of d_model {d_model}")
    hparams = EzSpeechHParams(
        vocab_size=vocab_plus_blank - 1,
        feat_in=feat_in,
        d_model=d_model,
        n_layers=max(layer_ids) + 1 if layer_ids else 0,
        n_heads=heads,
        ff_expansion_factor=d_ff // d_model,
        conv_kernel_size=kernel,
        # conv.0 + ReLU, then (depthwise, pointwise, ReLU) per further halving
        subsampling_factor=2 ** (max(conv_ids) // 3 + 1),
        subsampling_conv_channels=channels,
        # EzSpeech's encoder scales by sqrt(d_model) unless told not to (ctc_sc says xscaling:
        # false); with no config at all, assume the ctc_sc file the converter is meant for.
        xscaling=bool(encoder_config.get("xscaling", True)) if encoder_config else False,
    )
    _cross_check(hparams, encoder_config)
    return hparams


def _cross_check(hparams: EzSpeechHParams, encoder: Mapping[str, Any]) -> None:
    expect = {
        "subsampling": ("dw_striding", "dw-striding"),
        "self_attention_model": ("rel_pos",),
        "conv_norm_type": ("batch_norm",),
        "feat_out": (-1,),
    }
    for name, accepted in expect.items():
        if name in encoder and encoder[name] not in accepted:
            raise LayoutError(f"encoder.{name}={encoder[name]!r} is not supported (only {accepted[0]!r})")
    for name in (
        "d_model",
        "n_layers",
        "n_heads",
        "ff_expansion_factor",
        "conv_kernel_size",
        "subsampling_factor",
    ):
        if name in encoder and encoder[name] is not None and int(encoder[name]) != getattr(hparams, name):
            raise LayoutError(
                f"config says encoder.{name}={encoder[name]} but the weights have {getattr(hparams, name)}"
            )
    context = encoder.get("att_context_size")
    if context is not None and list(context) not in ([-1, -1], []):
        raise LayoutError(f"limited attention context {context} is not supported (full context only)")


def infer_features(state: Mapping[str, torch.Tensor], preprocessor: Mapping[str, Any]) -> FilterbankSettings:
    defaults = FilterbankSettings()
    window = preprocessor.get("window", "hann")
    if window != "hann":
        raise LayoutError(f"preprocessor.window={window!r} is not supported (only 'hann')")
    for name, wanted in (
        ("log", True),
        ("frame_splicing", 1),
        ("log_zero_guard_type", "add"),
        ("exact_pad", False),
    ):
        if name in preprocessor and preprocessor[name] != wanted:
            raise LayoutError(
                f"preprocessor.{name}={preprocessor[name]!r} is not supported (only {wanted!r})"
            )
    (win_length,) = _shape(state, "preprocessor.featurizer.window")
    _, n_mels, n_bins = _shape(state, "preprocessor.featurizer.fb")
    sample_rate = int(preprocessor.get("sample_rate", defaults.sample_rate))
    normalize = preprocessor.get("normalize", defaults.normalize) or "none"
    settings = FilterbankSettings(
        sample_rate=sample_rate,
        window_size=win_length / sample_rate,
        window_stride=float(preprocessor.get("window_stride", defaults.window_stride)),
        n_fft=(n_bins - 1) * 2,
        features=n_mels,
        preemph=float(preprocessor.get("preemph", defaults.preemph) or 0.0),
        normalize=str(normalize),
        log_zero_guard_value=float(preprocessor.get("log_zero_guard_value", defaults.log_zero_guard_value)),
        mag_power=float(preprocessor.get("mag_power", defaults.mag_power)),
        lowfreq=float(preprocessor.get("lowfreq", defaults.lowfreq) or 0.0),
        highfreq=None if preprocessor.get("highfreq") is None else float(preprocessor["highfreq"]),
    )
    if "features" in preprocessor and int(preprocessor["features"]) != n_mels:
        raise LayoutError(
            f"config says {preprocessor['features']} mel features but the filterbank has {n_mels}"
        )
    if settings.win_length != win_length:
        raise LayoutError(f"window of {win_length} samples is not a whole number of ms at {sample_rate} Hz")
    return settings


def check_against_model(state: Mapping[str, torch.Tensor], model: EzSpeechCTC) -> dict[str, torch.Tensor]:
    """Every served key present with the right shape; returns exactly the model's keys."""
    expected = model.state_dict()
    served = {k: v for k, v in state.items() if k.startswith(SERVED_MODULES)}
    missing = [k for k in expected if k not in served]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise LayoutError(f"missing key {missing[0]!r}{more}")
    unexpected = [k for k in served if k not in expected]
    if unexpected:
        more = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
        raise LayoutError(f"unexpected key {unexpected[0]!r}{more}: not part of the ctc_sc architecture")
    for key, reference in expected.items():
        if tuple(served[key].shape) != tuple(reference.shape):
            raise LayoutError(
                f"shape mismatch for {key!r}: checkpoint has {list(served[key].shape)}, "
                f"the architecture needs {list(reference.shape)}"
            )
    # fp16 training keeps fp32 masters, but a half-precision export is cast up here, once.
    return {key: served[key].detach().to(reference.dtype).clone() for key in expected}


def resolve(state: Mapping[str, torch.Tensor], model_config: Mapping[str, Any] | None) -> Layout:
    config = model_config or {}
    encoder_config = config.get("encoder") or {}
    preprocessor_config = config.get("preprocessor") or {}
    hparams = infer_hparams(state, encoder_config)
    features = infer_features(state, preprocessor_config)
    with torch.device("meta"):
        skeleton = EzSpeechCTC(hparams, features, ["?"] * hparams.vocab_size + [BLANK_TOKEN])
    weights = check_against_model(state, skeleton)
    ignored = sorted(k for k in state if not k.startswith(SERVED_MODULES))
    return Layout(hparams=hparams, features=features, state_dict=weights, ignored_keys=ignored)
