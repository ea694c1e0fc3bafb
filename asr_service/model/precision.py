"""``MODEL_DTYPE``: the number format a model computes in.

Half precision (float16, bfloat16) halves the weights' memory traffic and uses a GPU's tensor
cores; on a CPU bfloat16 is slower than float32 on most hosts and float16 much slower. Only models
that say how to run in half precision (a ``set_compute_dtype`` method: the EzSpeech Conformer)
accept it; asking it of another model fails at start instead of serving something unmeasured.
``bench/ezspeech_precision.py`` measures whether a format changes a model's tokens.
"""

from __future__ import annotations

import torch

from asr_service.settings import MODEL_DTYPES

#: The names live in settings (which must not import torch); each is a torch dtype's name.
TORCH_DTYPES: dict[str, torch.dtype] = {name: getattr(torch, name) for name in MODEL_DTYPES}


def apply_model_dtype(model: torch.nn.Module, name: str, arch: str) -> None:
    """Switch ``model`` to ``name`` (a ``MODEL_DTYPE`` value). float32 leaves it as loaded."""
    if name not in TORCH_DTYPES:
        raise ValueError(f"MODEL_DTYPE must be one of {', '.join(TORCH_DTYPES)}, got {name!r}")
    if name == "float32":
        return
    setter = getattr(model, "set_compute_dtype", None)
    if setter is None:
        raise ValueError(
            f"MODEL_DTYPE={name}: the {arch} model computes in float32 only "
            "(half precision is for the EzSpeech Conformer, ezspeech_ctc_sc)"
        )
    setter(TORCH_DTYPES[name])
