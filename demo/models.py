"""The demo's inputs: three checkpoints and one clip with its reference transcript.

- v1: the demo model shipped in the package (``asr_service/model_files/demo/demo.pt``).
- v2: the same content (weights, vocabulary, lexicon) saved again through the checkpoint API
  with new metadata (a new ``model_version`` and release note). It is a genuinely different
  file, so a different object version and SHA-256, which is what a rollout keys on; it
  transcribes exactly like v1, because training a second model is not what this demo is about.
- corrupt: v2 cut in half, as an interrupted copy would leave it. It is uploaded through the same
  path, with its own (correct) SHA-256, so only the server's own checkpoint validation stops it.
- wrong: v2 with its token list rotated by one (:func:`make_wrong_version`): it loads, verifies and
  warms up like a good model and transcribes garbage, so only the golden-set gate stops it.

The golden set of the demo model is its demo clips (``tests/data/clips``, WAVs + transcripts.json).
"""

from __future__ import annotations

import json
from pathlib import Path

from demo.flow import DemoError
from demo.steps import DemoInputs

REPO_ROOT = Path(__file__).resolve().parent.parent
CLIPS_DIR = REPO_ROOT / "tests" / "data" / "clips"


def _reference_texts(clips_dir: Path) -> dict[str, str]:
    """``transcripts.json`` as {wav file name: text}, whichever of the two usual shapes it has."""
    path = clips_dir / "transcripts.json"
    if not path.is_file():
        raise DemoError(f"{path} is missing: the demo clips ship with the model (make demo-model)")
    data = json.loads(path.read_text())
    if isinstance(data, dict):
        return {Path(name).name: str(text) for name, text in data.items()}
    return {Path(item["file"]).name: str(item["text"]) for item in data}


def pick_clip(clips_dir: Path = CLIPS_DIR) -> tuple[Path, str]:
    """The first clip (by name) that has a reference transcript: deterministic across runs."""
    texts = _reference_texts(clips_dir)
    for wav in sorted(clips_dir.glob("*.wav")):
        if wav.name in texts:
            return wav, texts[wav.name]
    raise DemoError(f"no clip in {clips_dir} has a reference transcript")


def make_second_version(first: Path, target: Path) -> None:
    """v2: v1's content re-saved with new metadata (see the module docstring).

    Every field of v1 is passed through ``save_checkpoint`` unchanged (a field it does not know
    fails loudly), and the result is checked to differ from v1 in its metadata only.
    """
    import torch

    from asr_service.model.checkpoint import save_checkpoint

    original = torch.load(first, weights_only=True, map_location="cpu")
    content = {key: value for key, value in original.items() if key not in ("format", "version", "metadata")}
    metadata = {
        **original.get("metadata", {}),
        "model_version": "v2",
        "release_note": "make demo: v1's weights re-released as a new model version",
    }
    save_checkpoint(target, **content, metadata=metadata)
    resaved = torch.load(target, weights_only=True, map_location="cpu")
    if not _same_content(original, resaved):
        raise DemoError(f"re-saving {first} changed more than its metadata")


def make_wrong_version(first: Path, target: Path) -> list[str]:
    """A checkpoint that loads, verifies and warms up but transcribes badly: ``first`` with its
    token list rotated by one (every non-blank token id now spells the next token), as an export
    with the wrong tokenizer would be. Returns the new token list.

    Weights, lexicon and word LM are untouched, so the loader accepts it and nothing short of
    listening to what it says (the golden-set gate) can tell it is wrong.
    """
    import torch

    from asr_service.model.checkpoint import save_checkpoint

    original = torch.load(first, weights_only=True, map_location="cpu")
    content = {key: value for key, value in original.items() if key not in ("format", "version", "metadata")}
    tokens, blank = list(content["tokens"]), int(content["blank_id"])
    others = [index for index in range(len(tokens)) if index != blank]
    rotated = list(tokens)
    for index, source in zip(others, others[1:] + others[:1], strict=True):
        rotated[index] = tokens[source]
    content["tokens"] = rotated
    metadata = {
        **original.get("metadata", {}),
        "model_version": "v3-wrong-tokens",
        "release_note": "make demo: v2 exported with a wrong token list (loads fine, transcribes badly)",
    }
    save_checkpoint(target, **content, metadata=metadata)
    return rotated


def _same_content(a: dict[str, object], b: dict[str, object]) -> bool:
    """Equal apart from ``metadata`` (tensors compared by value)."""
    import torch

    def equal(x: object, y: object) -> bool:
        if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
            return x.dtype == y.dtype and x.shape == y.shape and bool(torch.equal(x, y))
        if isinstance(x, dict) and isinstance(y, dict):
            return x.keys() == y.keys() and all(equal(x[k], y[k]) for k in x)
        if isinstance(x, list | tuple) and isinstance(y, list | tuple):
            return len(x) == len(y) and all(equal(p, q) for p, q in zip(x, y, strict=True))
        return x == y

    keys = (set(a) | set(b)) - {"metadata"}
    return all(equal(a.get(key), b.get(key)) for key in keys)


def prepare_inputs(work_dir: Path, first_model: Path | None = None) -> DemoInputs:
    """v1 is ``first_model`` when given (any checkpoint in the project's format), else the shipped one."""
    from asr_service.model.checkpoint import DEFAULT_MODEL_PATH

    first = first_model or Path(DEFAULT_MODEL_PATH)
    if not first.is_file():
        hint = "" if first_model else " (make demo-model trains it)"
        raise DemoError(f"the model {first} is missing{hint}")
    second = work_dir / "demo-v2.pt"
    make_second_version(first, second)
    corrupt = work_dir / "demo-corrupt.pt"
    data = second.read_bytes()
    corrupt.write_bytes(data[: len(data) // 2])
    wrong = work_dir / "demo-wrong-tokens.pt"
    make_wrong_version(second, wrong)
    clip, reference = pick_clip()
    live_clip = max(sorted(CLIPS_DIR.glob("*.wav")), key=lambda wav: wav.stat().st_size)
    return DemoInputs(
        first_model=first,
        second_model=second,
        second_model_note="Here v2 is v1's weights re-saved with new metadata: a new file and version, "
        "same transcripts.",
        corrupt_model=corrupt,
        wrong_model=wrong,
        golden_set=CLIPS_DIR,
        clip=clip,
        reference_text=reference,
        live_clip=live_clip,
    )
