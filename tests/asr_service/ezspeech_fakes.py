"""Fakes of EzSpeech's files for the conversion/serving tests: checkpoints with EzSpeech's exact
key layout (random weights), its config as pickled OmegaConf-like objects whose classes do not
exist when the file is read, and a tiny SentencePiece model trained on the spot."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import sys
import types
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from asr_service.ezspeech.features import FilterbankFeatures, FilterbankSettings

DATA = Path(__file__).resolve().parents[1] / "data" / "ezspeech"

#: Pieces of the test tokenizer: the reduced layout's CTC head has 2048 + blank outputs.
TEST_VOCAB = 2048

WORDS = [
    *("the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "speech", "recognition"),
    *("model", "streams", "audio", "into", "text", "server", "client", "checkpoint", "convert"),
    *("tokenizer", "piece", "blank", "frame", "window", "chunk", "final", "partial", "segment"),
    *("latency", "green", "river", "stone", "cloud", "night", "morning", "deploy", "service"),
]


def sentences(count: int = 48) -> list[str]:
    rng = np.random.default_rng(7)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(4, 10)))) for _ in range(count)]


def train_tokenizer(path: Path, vocab_size: int = TEST_VOCAB) -> Path:
    """A real SentencePiece model: BPE over a few dozen sentences for small vocabularies; for
    EzSpeech's 2048 pieces a word model over ~2600 made-up three-syllable words (a small corpus
    has too few distinct pieces for BPE to reach that size)."""
    import sentencepiece as spm

    if vocab_size > 256:
        syllables = ("ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "de", "gu", "ba", "fe", "zo", "hi", "ju")
        words = ["".join(p) for p in itertools.product(syllables, repeat=3)][: vocab_size + 600]
        corpus, model_type = [" ".join(words[i : i + 50]) for i in range(0, len(words), 50)], "word"
    else:
        corpus, model_type = sentences(), "bpe"
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus),
        model_writer=model,
        vocab_size=vocab_size,
        model_type=model_type,
        num_threads=1,
        minloglevel=2,
    )
    path.write_bytes(model.getvalue())
    return path


def layout(name: str = "state_dict_keys_small.json", vocab_size: int = TEST_VOCAB) -> dict[str, list[int]]:
    """EzSpeech's key list (with the CTC head sized for ``vocab_size`` pieces + blank: by default
    exactly the list as it is)."""
    shapes: dict[str, list[int]] = json.loads((DATA / name).read_text())
    head = "ctc_decoder.decoder_layers.0."
    shapes[head + "weight"] = [vocab_size + 1, *shapes[head + "weight"][1:]]
    shapes[head + "bias"] = [vocab_size + 1]
    return shapes


def random_state_dict(shapes: dict[str, list[int]], seed: int = 0) -> OrderedDict[str, torch.Tensor]:
    """Random weights of the right scale; the featurizer buffers are the real window/filterbank."""
    generator = torch.Generator().manual_seed(seed)
    featurizer = FilterbankFeatures(FilterbankSettings())
    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, shape in shapes.items():
        if key == "preprocessor.featurizer.window":
            state[key] = featurizer.window.clone()
        elif key == "preprocessor.featurizer.fb":
            state[key] = featurizer.fb.clone()
        elif key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1000, dtype=torch.long)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=generator)
        elif key.endswith("running_mean"):
            state[key] = 0.1 * torch.randn(shape, generator=generator)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
            state[key] = torch.randn(shape, generator=generator) / np.sqrt(max(fan_in, 1))
    return state


# --- OmegaConf / Lightning look-alikes, pickled under those libraries' class names from
# throwaway modules that are removed again before loading, so loading cannot import them. ------


class Foreign:
    """Marks plain data to be pickled as an OmegaConf DictConfig (dict), ListConfig (list) or,
    with ``attribute_dict``, as Lightning's AttributeDict."""

    def __init__(self, value: Any, attribute_dict: bool = False) -> None:
        self.value = value
        self.attribute_dict = attribute_dict


def _init_node(self: Any, value: Any) -> None:
    self._val = value
    self._metadata = {"ref_type": "Any"}


def _init_container(self: Any, content: Any) -> None:
    self._content = content
    self._metadata = {"object_type": type(content).__name__}


@contextlib.contextmanager
def _foreign_classes() -> Iterator[dict[str, type]]:
    specs = {
        "node": ("omegaconf.nodes", "AnyNode", (object,), _init_node),
        "dict": ("omegaconf.dictconfig", "DictConfig", (object,), _init_container),
        "list": ("omegaconf.listconfig", "ListConfig", (object,), _init_container),
        "attrdict": ("lightning_fabric.utilities.data", "AttributeDict", (dict,), None),
    }
    added: list[str] = []
    classes: dict[str, type] = {}
    try:
        for key, (module_name, class_name, bases, init) in specs.items():
            parts = module_name.split(".")
            for i in range(1, len(parts) + 1):
                name = ".".join(parts[:i])
                if name not in sys.modules:
                    sys.modules[name] = types.ModuleType(name)
                    added.append(name)
            namespace: dict[str, Any] = {"__module__": module_name}
            if init is not None:
                namespace["__init__"] = init
            cls = type(class_name, bases, namespace)
            setattr(sys.modules[module_name], class_name, cls)
            classes[key] = cls
        yield classes
    finally:
        for name in reversed(added):
            del sys.modules[name]


def _materialise(value: Any, classes: dict[str, type]) -> Any:
    if isinstance(value, Foreign):
        if value.attribute_dict:
            return classes["attrdict"]({k: _materialise(v, classes) for k, v in value.value.items()})
        return _materialise(value.value, classes)
    if isinstance(value, dict):
        return classes["dict"]({k: _materialise(v, classes) for k, v in value.items()})
    if isinstance(value, list):
        return classes["list"]([_materialise(v, classes) for v in value])
    return classes["node"](value)


def save_with_foreign_classes(obj: dict[str, Any], path: Path) -> None:
    """torch.save ``obj``; ``Foreign`` values inside it become OmegaConf/Lightning objects."""
    with _foreign_classes() as classes:
        torch.save(
            {k: _materialise(v, classes) if isinstance(v, Foreign) else v for k, v in obj.items()}, path
        )


def ctc_sc_config(**encoder_overrides: Any) -> dict[str, Any]:
    encoder = {
        "_target_": "ezspeech.modules.encoder.conformer_offline.ConformerOfflineEncoder",
        "feat_in": 80,
        "feat_out": -1,
        "n_layers": 2,
        "d_model": 256,
        "subsampling": "dw_striding",
        "subsampling_factor": 8,
        "subsampling_conv_channels": 256,
        "ff_expansion_factor": 4,
        "self_attention_model": "rel_pos",
        "n_heads": 4,
        "att_context_size": [-1, -1],
        "xscaling": False,
        "conv_kernel_size": 9,
        "conv_norm_type": "batch_norm",
    }
    encoder.update(encoder_overrides)
    return {
        "preprocessor": {
            "_target_": "ezspeech.modules.data.utils.audio.AudioToMelSpectrogramPreprocessor",
            "sample_rate": 16000,
            "normalize": "per_feature",
            "window_size": 0.025,
            "window_stride": 0.01,
            "window": "hann",
            "features": 80,
            "n_fft": 512,
            "frame_splicing": 1,
            "dither": 1.0e-05,
            "pad_to": 0,
        },
        "encoder": encoder,
        "ctc_decoder": {
            "_target_": "ezspeech.modules.decoder.decoder.ConvASRDecoder",
            "num_classes": TEST_VOCAB,
        },
    }


def write_lightning_ckpt(
    path: Path,
    state: dict[str, torch.Tensor] | None = None,
    config: dict[str, Any] | None = None,
) -> Path:
    state = random_state_dict(layout()) if state is None else state
    checkpoint = {
        "epoch": 3,
        "global_step": 1200,
        "pytorch-lightning_version": "2.4.0",
        "state_dict": OrderedDict(state),
        "hyper_parameters": Foreign(
            {
                "config": Foreign(
                    {"dataset": {"spe_file": "/x/bpe.model"}, "model": config or ctc_sc_config()}
                )
            },
            attribute_dict=True,
        ),
        "optimizer_states": [{"state": {0: {"step": torch.tensor(5.0)}}, "param_groups": [{"lr": 1.0}]}],
        "lr_schedulers": [{"last_epoch": 1200}],
    }
    save_with_foreign_classes(checkpoint, path)
    return path


def write_slim_export(path: Path, state: dict[str, torch.Tensor] | None = None) -> Path:
    state = random_state_dict(layout()) if state is None else state
    modules: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        module, rest = key.split(".", 1)
        modules.setdefault(module, OrderedDict())[rest] = value
    save_with_foreign_classes({"state_dict": modules, "hyper_parameters": Foreign(ctc_sc_config())}, path)
    return path


def write_wav(path: Path, seconds: float, seed: int = 0, sample_rate: int = 16000) -> Path:
    """Tones with pauses and a little noise: speech-like energy changes without needing a TTS."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    envelope = (np.sin(2 * np.pi * 1.3 * t) > -0.2).astype(np.float64)
    signal = 0.3 * envelope * np.sin(2 * np.pi * (180 + 60 * np.sin(2 * np.pi * 0.7 * t)) * t)
    signal += 0.01 * rng.standard_normal(t.size)
    sf.write(path, signal.astype(np.float32), sample_rate, subtype="PCM_16")
    return path


def sentencepiece_pieces(path: Path) -> list[str]:
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_file=str(path))
    return [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
