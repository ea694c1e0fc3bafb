"""Reading EzSpeech's own checkpoint files (converter only; the server never comes here).

Two layouts exist:

- a PyTorch Lightning ``.ckpt``: ``{"state_dict": {"encoder.layers.0...": tensor, ...},
  "hyper_parameters": {"config": <the whole training config>}, "optimizer_states": ..., ...}``;
- EzSpeech's slim export: ``{"state_dict": {"preprocessor": {...}, "encoder": {...},
  "ctc_decoder": {...}}, "hyper_parameters": <the model config>}``.

Both carry the config as pickled OmegaConf objects, so they cannot be read with
``torch.load(weights_only=True)``. Reading them needs an explicit opt-in, and even then no pickled
code runs: :class:`_InertUnpickler` resolves only tensor-rebuilding globals and plain containers;
every other class named in the file (OmegaConf nodes, Lightning's AttributeDict, callbacks, ...)
becomes an inert :class:`PickledObject` that merely records the data it was given. OmegaConf
and Lightning need not be installed.
"""

from __future__ import annotations

import collections
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch


class SourceError(ValueError):
    """The input file is not a readable EzSpeech checkpoint; the message says why."""


class PickledObject(dict[Any, Any]):
    """Stand-in for a class the file names but that is never imported or called.

    Dict items (SETITEMS), list items (APPENDS), constructor arguments and ``__setstate__``
    state are recorded so the data stays reachable (see :func:`plain`).
    """

    pickled_name = "?"
    # Class-level defaults: pickle's NEWOBJ creates instances without calling __init__.
    args: tuple[Any, ...] = ()
    state: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state

    @property
    def items_list(self) -> list[Any]:
        items: list[Any] = self.__dict__.setdefault("_items", [])
        return items

    def append(self, item: Any) -> None:
        self.items_list.append(item)

    def extend(self, items: Any) -> None:
        self.items_list.extend(items)

    def __reduce__(self) -> Any:  # never re-pickled: make that loud instead of lossy
        raise TypeError(f"{self.pickled_name} is an inert stand-in and cannot be pickled")


def _stand_in(module: str, name: str) -> type[PickledObject]:
    return type(name, (PickledObject,), {"pickled_name": f"{module}.{name}", "__module__": __name__})


def _allowed_globals() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch", "Size"): torch.Size,
        ("torch", "device"): torch.device,
        ("torch", "Tensor"): torch.Tensor,
        ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
        ("torch._tensor", "_rebuild_from_type_v2"): torch._tensor._rebuild_from_type_v2,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "complex"): complex,
        ("builtins", "bytearray"): bytearray,
        ("builtins", "slice"): slice,
    }
    import codecs

    allowed[("_codecs", "encode")] = codecs.encode
    for rebuild in (
        "_rebuild_tensor",
        "_rebuild_tensor_v2",
        "_rebuild_parameter",
        "_rebuild_parameter_with_state",
    ):
        if hasattr(torch._utils, rebuild):
            allowed[("torch._utils", rebuild)] = getattr(torch._utils, rebuild)
    for attr in dir(torch):
        value = getattr(torch, attr, None)
        if isinstance(value, torch.dtype):
            allowed[("torch", attr)] = value
    return allowed


_ALLOWED = _allowed_globals()


class _InertUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((module, name))
        return found if found is not None else _stand_in(module, name)


# torch.load takes a "pickle module": anything with an Unpickler class and a load function.
_INERT_PICKLE = SimpleNamespace(
    Unpickler=_InertUnpickler,
    load=lambda file, **kwargs: _InertUnpickler(file, **kwargs).load(),
    __name__="ezspeech_convert.source.inert_pickle",
)


def plain(value: Any) -> Any:
    """Turn stand-ins back into dicts/lists: OmegaConf containers keep their data in ``_content``
    (nodes in ``_val``); Lightning's AttributeDict is a dict; anything else becomes its state."""
    if isinstance(value, PickledObject):
        state = value.state
        if isinstance(state, Mapping):
            if "_content" in state:
                return plain(state["_content"])
            if "_val" in state:
                return plain(state["_val"])
        if len(value):
            return {k: plain(v) for k, v in value.items()}
        if value.items_list:
            return [plain(v) for v in value.items_list]
        if state is not None:
            return plain(state)
        return None
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


@dataclass
class EzSpeechSource:
    """What a converter needs from an EzSpeech file."""

    state_dict: dict[str, torch.Tensor]
    #: The ``model:`` section of the training config, when the file carries one.
    model_config: dict[str, Any] | None
    layout: str  # "lightning", "slim" or "state_dict"
    notes: list[str] = field(default_factory=list)


def load_source(path: Path, *, allow_pickle: bool) -> EzSpeechSource:
    """Read ``path``. Without ``allow_pickle`` only weights-only files (a bare state dict) load;
    anything with pickled objects is refused with a message that says how to proceed."""
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    try:
        if allow_pickle:
            raw = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_INERT_PICKLE)
        else:
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if allow_pickle:
            raise SourceError(f"{path}: not a readable PyTorch checkpoint ({exc})") from exc
        raise SourceError(
            f"{path} contains pickled Python objects (EzSpeech checkpoints carry their training "
            "config that way), so it cannot be read in weights-only mode. If you trust the file, "
            "rerun with --allow-pickle: the converter then reads it without importing or running "
            "any class it names."
        ) from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise SourceError(f"{path}: not a readable PyTorch checkpoint ({exc})") from exc
    return interpret(raw)


def _tensors(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in mapping.items():
        if isinstance(value, torch.Tensor):
            out[prefix + str(key)] = value
    return out


def find_model_config(value: Any) -> dict[str, Any] | None:
    """The first mapping, searching breadth-first, that has ``encoder`` and ``preprocessor``."""
    queue = [plain(value)]
    while queue:
        item = queue.pop(0)
        if isinstance(item, Mapping):
            if isinstance(item.get("encoder"), Mapping) and isinstance(item.get("preprocessor"), Mapping):
                return dict(item)
            queue.extend(item.values())
    return None


def interpret(raw: Any) -> EzSpeechSource:
    """Recognise the layout of an already-unpickled checkpoint object."""
    raw = raw if not isinstance(raw, PickledObject) else plain(raw)
    if not isinstance(raw, Mapping):
        raise SourceError(f"expected a checkpoint dict, got {type(raw).__name__}")
    notes: list[str] = []
    state = raw.get("state_dict")
    if isinstance(state, Mapping):
        nested = {k: v for k, v in state.items() if isinstance(v, Mapping)}
        if nested:
            layout = "slim"
            flat: dict[str, torch.Tensor] = {}
            for module, module_state in nested.items():
                flat.update(_tensors(module_state, prefix=f"{module}."))
        else:
            layout = "lightning"
            flat = _tensors(state)
        config = find_model_config(raw.get("hyper_parameters"))
        if config is None:
            notes.append("no model config found in hyper_parameters; using the ctc_sc defaults")
    elif raw and all(isinstance(v, torch.Tensor) for v in raw.values()):
        layout, flat, config = "state_dict", _tensors(raw), None
        notes.append("bare state dict without a config; using the ctc_sc defaults")
    else:
        raise SourceError("no 'state_dict' in the file: not a Lightning checkpoint or EzSpeech export")
    if not flat:
        raise SourceError("the checkpoint's state_dict holds no tensors")
    flat = _strip_wrapper_prefix(flat, notes)
    return EzSpeechSource(state_dict=flat, model_config=config, layout=layout, notes=notes)


def _strip_wrapper_prefix(state: dict[str, torch.Tensor], notes: list[str]) -> dict[str, torch.Tensor]:
    """``model.encoder.…`` (a wrapped LightningModule) -> ``encoder.…``."""
    if any(key.startswith("encoder.") for key in state):
        return state
    heads = {key.split(".", 1)[0] for key in state}
    if len(heads) == 1:
        head = heads.pop()
        stripped = {key[len(head) + 1 :]: value for key, value in state.items()}
        if any(key.startswith("encoder.") for key in stripped):
            notes.append(f"stripped the key prefix {head!r}")
            return stripped
    return state
