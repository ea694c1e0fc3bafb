"""The checkpoint file format: one ``torch.save`` file read back with ``weights_only=True``.

Layout (a plain dict of tensors, strings, numbers, lists and dicts, nothing else)::

    {"format": "ezspeech-aws/ctc-checkpoint", "version": 1,
     "arch": "<name registered with interface.register_architecture>",
     "hparams": {...}, "features": {...}, "tokens": [...], "blank_id": 0,
     "state_dict": {name: tensor}, "metadata": {...free: training info, created_at, ...},
     "lexicon": [...words],   # optional: closed vocabulary for word correction (ctc.Lexicon)
     "word_lm": {"type": "word-bigram", "bigrams": int tensor [N, 3],   # optional, needs a
                 "decoder": {"lm_weight": ..., ...}}}  # lexicon: beam search on finals (lexicon_beam)
     # or, for a broad vocabulary, n-gram tables (asr_service.model.ngram_lm):
     # "word_lm": {"type": "word-ngram", "order": 3, "ngrams": [...], "decoder": {...}}
     # "lexicon_correction": False   # optional: the lexicon serves the word search only
     # "pronunciations": {word: ["D @2", "D i:"]}   # optional, needs a word_lm: the model writes
     #     phonemes (its tokens), each word is found by these token sequences (space-separated),
     #     and every text it returns, partial or final, comes from the word search

The loader never unpickles code: ``torch.load(weights_only=True)`` refuses any global that is not
a tensor or a plain container, and that refusal becomes :class:`UnsafeCheckpointError` before
anything in the file has run. Every other problem is a :class:`CheckpointError` subclass whose
message says what is wrong, so a task with a bad model fails at start-up with a readable reason.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

# Importing the architectures registers them, so every loader user can build any shipped arch.
from asr_service import ezspeech  # noqa: F401
from asr_service.model import streaming_ctc  # noqa: F401
from asr_service.model.ctc import WORD_BOUNDARY, Lexicon
from asr_service.model.dataclass_io import dataclass_from_mapping
from asr_service.model.interface import AcousticModel, architecture_builder
from asr_service.model.lexicon_beam import PYTHON_MAX_BEAM, BeamSettings, LexiconBeamDecoder
from asr_service.model.native_lexicon import NativeLexiconDecoder, native_available
from asr_service.model.ngram_lm import LM_TYPE as NGRAM_LM_TYPE
from asr_service.model.ngram_lm import NgramLm, NgramLmError
from asr_service.model.word_lm import BigramLm, WordLmError

FORMAT_TAG = "ezspeech-aws/ctc-checkpoint"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format", "version", "arch", "hparams", "features", "tokens", "blank_id", "state_dict")

#: The demo model shipped inside the package; what the server loads when no model is configured.
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent.parent / "model_files" / "demo" / "demo.pt"


class CheckpointError(Exception):
    """A checkpoint could not be used. Subclasses say why."""


class UnreadableCheckpointError(CheckpointError):
    """Not a torch checkpoint at all, or a truncated/corrupt one."""


class UnsafeCheckpointError(CheckpointError):
    """The file asks to import or call code while loading; it was refused and nothing ran."""


class CheckpointFormatError(CheckpointError):
    """A readable file, but not in this format: wrong tag or version, missing or ill-typed keys."""


class CheckpointModelError(CheckpointError):
    """The content does not build the model: unknown arch, bad hparams, state-dict mismatch."""


@dataclass
class LoadedModel:
    """A model ready for inference (eval mode), with what came with it."""

    model: AcousticModel
    module: torch.nn.Module
    arch: str
    hparams: dict[str, Any]
    features: dict[str, Any]
    tokens: list[str]
    blank_id: int
    metadata: dict[str, Any] = field(default_factory=dict)
    #: SHA-256 of the checkpoint bytes (what ``MODEL_SHA256`` pins).
    sha256: str = ""
    num_parameters: int = 0
    #: Closed vocabulary shipped with the model (None: open vocabulary). Also set as
    #: ``module.lexicon`` so code holding only the model can find it.
    lexicon: Lexicon | None = None
    #: Beam search with the shipped word LM, used on finals (None: greedy + lexicon only); its
    #: ``name`` says which one ("native" or "python"). Also set as ``module.word_decoder``.
    word_decoder: LexiconBeamDecoder | NativeLexiconDecoder | None = None


def save_checkpoint(
    path: str | Path,
    *,
    arch: str,
    hparams: Mapping[str, Any],
    features: Mapping[str, Any],
    tokens: list[str],
    blank_id: int,
    state_dict: Mapping[str, torch.Tensor],
    metadata: Mapping[str, Any] | None = None,
    lexicon: Iterable[str] | None = None,
    word_lm: BigramLm | NgramLm | Mapping[str, Any] | None = None,
    decoder_settings: BeamSettings | None = None,
    lexicon_correction: bool = True,
    pronunciations: Mapping[str, Iterable[Sequence[str] | str]] | None = None,
) -> str:
    """Write a checkpoint atomically; return its SHA-256. Tensors are stored contiguous on the CPU.

    ``lexicon_correction=False`` stores the lexicon for the word search only: greedy partials are
    not snapped to the nearest word (with tens of thousands of words that costs seconds per
    unknown word, and a broad list has a wrong near neighbour for almost every misspelling).

    ``word_lm`` is a :class:`BigramLm` (stored with ``decoder_settings``), or the ``word_lm``
    entry of a loaded payload passed through as it is (re-saving a file with new metadata).

    ``pronunciations`` (a phoneme model: word -> its token sequences) needs a lexicon and a word
    LM; it turns lexicon correction off, since a phoneme string has no spelling to snap."""
    meta = dict(metadata or {})
    meta.setdefault("created_at", datetime.now(UTC).isoformat(timespec="seconds"))
    payload = {
        "format": FORMAT_TAG,
        "version": FORMAT_VERSION,
        "arch": arch,
        "hparams": dict(hparams),
        "features": dict(features),
        "tokens": list(tokens),
        "blank_id": int(blank_id),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in state_dict.items()},
        "metadata": meta,
    }
    if lexicon is not None:
        payload["lexicon"] = sorted(set(lexicon))
        if not lexicon_correction or pronunciations is not None:
            payload["lexicon_correction"] = False
    if pronunciations is not None:
        if word_lm is None:
            raise ValueError("pronunciations need a lexicon and a word LM (the word search writes the text)")
        # A way is a token sequence, or already the stored space-separated string (re-saving).
        payload["pronunciations"] = {
            word: sorted({way if isinstance(way, str) else " ".join(way) for way in ways})
            for word, ways in sorted(pronunciations.items())
        }
    if isinstance(word_lm, Mapping):
        if decoder_settings is not None:
            raise ValueError("a stored word_lm entry carries its own decoder settings")
        stored = dict(word_lm)
        _stored_lm(stored, sorted(set(lexicon or [])))  # refuse what the loader would
        payload["word_lm"] = stored
    elif word_lm is not None:
        if word_lm.words != payload.get("lexicon"):
            raise ValueError("a word LM must be built over the checkpoint's (sorted) lexicon")
        payload["word_lm"] = word_lm.to_payload() | {"decoder": asdict(decoder_settings or BeamSettings())}
    if pronunciations is not None:
        _check_pronunciations(payload, "checkpoint to save")  # refuse what the loader would
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(target)
    return hashlib.sha256(data).hexdigest()


def load_checkpoint(
    source: str | Path | bytes, *, device: str | torch.device = "cpu", word_decoder: str = "auto"
) -> LoadedModel:
    """Read, validate and build a checkpoint. Raises a :class:`CheckpointError` subclass.

    ``word_decoder`` picks the search for a model with a word LM: ``native`` (flashlight-text,
    ``native_lexicon``), ``python`` (``lexicon_beam``) or ``auto`` (native when it imports). Either
    is built here, so a bad LM or lexicon fails the load, not the first final."""
    if word_decoder not in ("auto", "native", "python"):
        raise ValueError(f"word_decoder must be auto, native or python, got {word_decoder!r}")
    native = word_decoder == "native" or (word_decoder == "auto" and native_available())
    if isinstance(source, bytes):
        data, where = source, "checkpoint bytes"
    else:
        where = str(source)
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise UnreadableCheckpointError(f"cannot read checkpoint {where}: {exc}") from exc
    payload = _safe_load(data, where)
    _check_layout(payload, where)
    model = _build(payload, where)
    model.to(device)
    model.eval()
    if "pronunciations" in payload and not getattr(model, "streaming", False):
        raise CheckpointModelError(
            f"{where}: a phoneme model ('pronunciations') is served by the streaming strategy only; "
            f"{payload['arch']!r} is not a streaming architecture"
        )
    correct = payload.get("lexicon_correction", True) and "pronunciations" not in payload
    lexicon = Lexicon(payload["lexicon"]) if payload.get("lexicon") and correct else None
    search = _word_decoder(payload, where, native)
    # Plain attributes, not submodules or buffers.
    object.__setattr__(model, "lexicon", lexicon)
    object.__setattr__(model, "word_decoder", search)
    return LoadedModel(
        model=model,  # type: ignore[arg-type]  # checked structurally by the Protocol at runtime
        module=model,
        arch=payload["arch"],
        hparams=dict(payload["hparams"]),
        features=dict(payload["features"]),
        tokens=list(payload["tokens"]),
        blank_id=int(payload["blank_id"]),
        metadata=dict(payload.get("metadata") or {}),
        sha256=hashlib.sha256(data).hexdigest(),
        num_parameters=sum(p.numel() for p in model.parameters()),
        lexicon=lexicon,
        word_decoder=search,
    )


def _word_decoder(
    payload: dict[str, Any], where: str, native: bool
) -> LexiconBeamDecoder | NativeLexiconDecoder | None:
    stored = payload.get("word_lm")
    if stored is None:
        return None
    words = payload.get("lexicon")
    if not words:
        raise CheckpointFormatError(f"{where}: 'word_lm' needs a 'lexicon' (its word ids index it)")
    try:
        lm = _stored_lm(stored, words)
        stored_settings = stored.get("decoder") or {}
        settings = dataclass_from_mapping(BeamSettings, stored_settings, "word_lm decoder settings")
        table = payload.get("pronunciations")
        pronunciations = (
            None if table is None else {w: [way.split() for way in ways] for w, ways in table.items()}
        )
        if native:
            return NativeLexiconDecoder(
                payload["tokens"], payload["blank_id"], words, lm, settings, pronunciations=pronunciations
            )
        capped = replace(settings, beam=min(settings.beam, PYTHON_MAX_BEAM))
        return LexiconBeamDecoder(payload["tokens"], payload["blank_id"], words, lm, capped, pronunciations)
    except (WordLmError, NgramLmError, ValueError, TypeError) as exc:
        raise CheckpointFormatError(f"{where}: bad 'word_lm': {exc}") from None


def _stored_lm(stored: Any, words: list[str]) -> BigramLm | NgramLm:
    """The checkpoint's ``word_lm`` entry as an LM: bigram counts, or n-gram tables."""
    if isinstance(stored, Mapping) and stored.get("type") == NGRAM_LM_TYPE:
        return NgramLm.from_payload(dict(stored), words)
    return BigramLm.from_payload(stored, words)


def _safe_load(data: bytes, where: str) -> Any:
    if not data:
        raise UnreadableCheckpointError(f"{where} is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols before refusing
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        message = str(exc)
        # torch's weights-only unpickler stops at the first global or opcode outside plain data
        # (tensors, containers, numbers, strings); nothing was imported or called by then.
        if "Weights only load failed" in message:
            detail = next((ln for ln in message.splitlines() if "WeightsUnpickler error" in ln), "")
            detail = detail.replace("WeightsUnpickler error:", "").strip()[:160]
            raise UnsafeCheckpointError(
                f"{where} holds objects other than tensors and plain data (e.g. pickled code); "
                f"refused, nothing was executed: {detail or 'unsupported content'}"
            ) from None
        raise UnreadableCheckpointError(f"{where} is not a torch checkpoint: {message[:200]}") from None
    except Exception as exc:  # on garbage the unpickler fails with almost any exception type
        raise UnreadableCheckpointError(
            f"{where} is not a readable torch checkpoint (truncated or corrupt?): {str(exc)[:200]}"
        ) from None


def _check_layout(payload: Any, where: str) -> None:
    if not isinstance(payload, dict):
        raise CheckpointFormatError(f"{where}: expected a dict, found {type(payload).__name__}")
    if payload.get("format") != FORMAT_TAG:
        raise CheckpointFormatError(
            f"{where}: format tag is {payload.get('format')!r}, expected {FORMAT_TAG!r}"
        )
    if payload.get("version") != FORMAT_VERSION:
        raise CheckpointFormatError(
            f"{where}: format version {payload.get('version')!r} is not supported (this loader reads "
            f"version {FORMAT_VERSION})"
        )
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointFormatError(f"{where}: missing keys: {', '.join(missing)}")
    expected_types: dict[str, type | tuple[type, ...]] = {
        "arch": str,
        "hparams": dict,
        "features": dict,
        "tokens": list,
        "blank_id": int,
        "state_dict": dict,
    }
    for key, kind in expected_types.items():
        if not isinstance(payload[key], kind):
            raise CheckpointFormatError(f"{where}: {key!r} has type {type(payload[key]).__name__}")
    tokens = payload["tokens"]
    if not tokens or not all(isinstance(t, str) for t in tokens):
        raise CheckpointFormatError(f"{where}: 'tokens' must be a non-empty list of strings")
    if not 0 <= payload["blank_id"] < len(tokens):
        raise CheckpointFormatError(f"{where}: blank_id {payload['blank_id']} outside {len(tokens)} tokens")
    if not all(isinstance(v, torch.Tensor) for v in payload["state_dict"].values()):
        raise CheckpointFormatError(f"{where}: 'state_dict' must map names to tensors")
    lexicon = payload.get("lexicon")
    if lexicon is not None and not (isinstance(lexicon, list) and all(isinstance(w, str) for w in lexicon)):
        raise CheckpointFormatError(f"{where}: 'lexicon' must be a list of words")
    if not isinstance(payload.get("lexicon_correction", True), bool):
        raise CheckpointFormatError(f"{where}: 'lexicon_correction' must be true or false")
    if payload.get("metadata") is not None and not isinstance(payload["metadata"], dict):
        raise CheckpointFormatError(f"{where}: 'metadata' must be a dict")
    if "pronunciations" in payload:
        _check_pronunciations(payload, where)


def _check_pronunciations(payload: dict[str, Any], where: str) -> None:
    """A phoneme model's table: lexicon words -> non-empty lists of space-separated tokens that the
    model has (not the blank or "▁"); and a word LM, because only the word search writes text."""
    table = payload["pronunciations"]
    if not isinstance(table, dict) or not table:
        raise CheckpointFormatError(f"{where}: 'pronunciations' must be a non-empty dict")
    if "word_lm" not in payload:
        raise CheckpointFormatError(
            f"{where}: 'pronunciations' need a 'word_lm' (the word search writes the text)"
        )
    words = set(payload.get("lexicon") or ())
    tokens = payload["tokens"]
    symbols = set(tokens) - {tokens[payload["blank_id"]], WORD_BOUNDARY}
    for word, ways in table.items():
        if word not in words:
            raise CheckpointFormatError(f"{where}: pronounced word {word!r} is not in the lexicon")
        if not isinstance(ways, list) or not ways or not all(isinstance(w, str) and w.split() for w in ways):
            raise CheckpointFormatError(f"{where}: pronunciations of {word!r} must be non-empty strings")
        unknown = {p for way in ways for p in way.split()} - symbols
        if unknown:
            raise CheckpointFormatError(
                f"{where}: pronunciation of {word!r} uses {sorted(unknown)[0]!r}, which is not a token"
            )


def _build(payload: dict[str, Any], where: str) -> torch.nn.Module:
    try:
        builder = architecture_builder(payload["arch"])
    except KeyError as exc:
        raise CheckpointModelError(f"{where}: {exc.args[0]}") from None
    try:
        model = builder(payload["hparams"], payload["features"], list(payload["tokens"]))
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointModelError(
            f"{where}: hparams/features do not build {payload['arch']!r}: {exc}"
        ) from None
    if hasattr(model, "blank_id"):
        model.blank_id = payload["blank_id"]

    expected = model.state_dict()
    given: dict[str, torch.Tensor] = payload["state_dict"]
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensors ({', '.join(missing[:5])})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} tensors ({', '.join(unexpected[:5])})")
        raise CheckpointModelError(
            f"{where}: state_dict does not match {payload['arch']!r}: {'; '.join(parts)}"
        )
    for name, tensor in given.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise CheckpointModelError(
                f"{where}: tensor {name!r} has shape {tuple(tensor.shape)}, "
                f"the architecture needs {tuple(expected[name].shape)}"
            )
        if not tensor.is_floating_point() and expected[name].is_floating_point():
            raise CheckpointModelError(f"{where}: tensor {name!r} has dtype {tensor.dtype}, expected floats")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointModelError(f"{where}: tensor {name!r} holds NaN or infinite values")
    model.load_state_dict(given, strict=True)
    return model
