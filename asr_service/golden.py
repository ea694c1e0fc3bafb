"""The golden-set gate: a model that loads but recognizes badly never turns ready.

A checkpoint can load, verify its SHA-256 and warm up, and still be wrong: a permuted token list,
a half-trained export, a swapped file. Before ``/ready`` turns 200 the server transcribes a small
golden set (WAVs + their reference transcripts) through the engine its sessions use and compares
with the references. Above ``GOLDEN_MAX_WER`` it logs ONE ``golden_set_failed`` line (per-clip WER,
the worst hypotheses, the model's SHA-256) and the process exits with :data:`EXIT_GATE_FAILED`,
so the ECS deployment circuit breaker rolls the service back exactly as for a model that does not
load. A golden set that cannot be read fails closed (:data:`EXIT_GOLDEN_UNREADABLE`): a gate that
is configured but cannot check anything must not wave the model through.

Where the golden set comes from (``GOLDEN_SET``):

- a local directory with ``transcripts.json`` beside the audio files (``{"clip.wav": "text"}``),
  e.g. ``tests/data/clips``, the demo model's golden set;
- ``s3://bucket/prefix/?versionId=V``: ``V`` is the version of ``prefix/transcripts.json``, and that
  manifest pins every clip by version id and SHA-256 (``make upload-model GOLDEN=dir`` writes it),
  so one version id pins the whole set, as ``MODEL_URI`` pins the model.

The clip audio takes the sessions' path: read and quantized to 16-bit PCM as the client sends it,
decoded and resampled as ``Session`` does, fed to ``BatchingEngine.open_stream`` and finished with
an eof; the hypothesis is the finals joined, the ``done`` event's text.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asr_service.logging_setup import get_logger
from asr_service.model.wer import edit_distance, normalize_words
from asr_service.model_fetch import ModelSourceError, S3Location, download_s3, parse_s3_uri, sha256_file

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from asr_service.engine import BatchingEngine
    from asr_service.settings import Settings

log = get_logger(component="golden")

#: Exit status of a task whose model failed its golden set (deploy_watch names the gate by it).
EXIT_GATE_FAILED = 3
#: Exit status of a task whose golden set could not be read or is malformed (the gate fails closed).
EXIT_GOLDEN_UNREADABLE = 4

TRANSCRIPTS_FILE = "transcripts.json"
#: Clip names are plain file names: they become S3 keys and local paths, never a way out of the set.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: How many of the worst clips the failure line quotes in full (reference and hypothesis).
WORST_SHOWN = 3
_FEED_MS = 100  # what the client sends per message
#: The gate's time budget: generous (the engine runs at a fraction of real time) but finite, so a
#: wedged engine fails the gate instead of leaving the task starting forever.
_MIN_BUDGET_S = 60.0
_BUDGET_PER_AUDIO_S = 5.0


class GoldenSetError(RuntimeError):
    """The golden set cannot be read or is malformed: the gate fails closed."""

    exit_code = EXIT_GOLDEN_UNREADABLE


class GoldenGateFailedError(GoldenSetError):
    """The model's golden-set WER is above GOLDEN_MAX_WER (or it could not transcribe the set)."""

    exit_code = EXIT_GATE_FAILED


@dataclass(frozen=True)
class ManifestEntry:
    """One line of ``transcripts.json``: a clip file and its reference transcript."""

    file: str
    text: str
    version_id: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class GoldenClip:
    name: str
    path: Path
    text: str


@dataclass(frozen=True)
class GoldenSet:
    source: str
    clips: tuple[GoldenClip, ...]


@dataclass(frozen=True)
class ClipScore:
    name: str
    reference: str
    hypothesis: str
    words: int
    errors: int

    @property
    def wer(self) -> float:
        return self.errors / max(1, self.words)


@dataclass(frozen=True)
class GateResult:
    source: str
    max_wer: float
    clips: tuple[ClipScore, ...]
    audio_seconds: float
    seconds: float

    @property
    def wer(self) -> float:
        """Corpus WER: all edits over all reference words (long clips weigh more, as in eval)."""
        return sum(c.errors for c in self.clips) / max(1, sum(c.words for c in self.clips))

    @property
    def passed(self) -> bool:
        return self.wer <= self.max_wer


# ---------------------------------------------------------------------------- the manifest
def parse_manifest(data: bytes, where: str) -> list[ManifestEntry]:
    """``transcripts.json`` → entries. Accepted shapes: ``{"a.wav": "text"}``,
    ``{"a.wav": {"text": ..., "version_id": ..., "sha256": ...}}`` (what the upload writes) and
    ``[{"file": "a.wav", "text": ...}]``. Anything else is a GoldenSetError naming the entry."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, ValueError) as error:
        raise GoldenSetError(f"{where}: not valid JSON ({error})") from None
    if isinstance(document, dict):
        items = [(name, value) for name, value in document.items()]
    elif isinstance(document, list):
        items = []
        for index, item in enumerate(document):
            if not isinstance(item, dict) or "file" not in item:
                raise GoldenSetError(f"{where}: entry {index} must be an object with 'file' and 'text'")
            items.append((item["file"], item))
    else:
        raise GoldenSetError(f"{where}: expected an object {{file: transcript}} or a list of entries")
    entries = []
    for name, value in items:
        fields = value if isinstance(value, dict) else {"text": value}
        text, version, digest = fields.get("text"), fields.get("version_id"), fields.get("sha256")
        if not isinstance(name, str) or not _SAFE_NAME.match(name):
            raise GoldenSetError(f"{where}: clip name {name!r} must be a plain file name (A-Z a-z 0-9 . _ -)")
        if not isinstance(text, str) or not normalize_words(text):
            raise GoldenSetError(f"{where}: clip {name}: the reference transcript must be non-empty text")
        if version is not None and (not isinstance(version, str) or not version):
            raise GoldenSetError(f"{where}: clip {name}: version_id must be a non-empty string")
        if digest is not None and (not isinstance(digest, str) or not _SHA256.match(digest)):
            raise GoldenSetError(f"{where}: clip {name}: sha256 must be 64 lower-case hex characters")
        entries.append(ManifestEntry(name, text, version, digest))
    if not entries:
        raise GoldenSetError(f"{where}: the golden set lists no clips")
    return entries


def manifest_bytes(entries: Sequence[ManifestEntry]) -> bytes:
    """The pinned manifest the upload writes (every clip with its version id and SHA-256)."""
    document = {
        e.file: {k: v for k, v in asdict(e).items() if k != "file" and v is not None} for e in entries
    }
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()


# ---------------------------------------------------------------------------- loading
def _check_digest(path: Path, entry: ManifestEntry) -> None:
    if entry.sha256 is not None and (actual := sha256_file(path)) != entry.sha256:
        raise GoldenSetError(
            f"golden clip {entry.file} has sha256 {actual}, the manifest pins {entry.sha256}"
        )


def load_local(directory: Path) -> GoldenSet:
    manifest = directory / TRANSCRIPTS_FILE if directory.is_dir() else directory
    directory = manifest.parent
    try:
        entries = parse_manifest(manifest.read_bytes(), str(manifest))
    except OSError as error:
        raise GoldenSetError(f"cannot read the golden set's {TRANSCRIPTS_FILE}: {error}") from None
    clips = []
    for entry in entries:
        path = directory / entry.file
        if not path.is_file():
            raise GoldenSetError(f"golden clip {path} listed in {manifest} does not exist")
        _check_digest(path, entry)
        clips.append(GoldenClip(entry.file, path, entry.text))
    return GoldenSet(str(directory), tuple(clips))


def golden_location(uri: str) -> S3Location:
    """``s3://bucket/prefix/?versionId=V`` (or ``.../transcripts.json?versionId=V``) → the manifest's
    location. The version is required: an unpinned set could change under a running rollout."""
    try:
        location = parse_s3_uri(uri)
    except ModelSourceError as error:
        raise GoldenSetError(str(error).replace("MODEL_URI", "GOLDEN_SET")) from None
    if not location.version_id:
        raise GoldenSetError(
            f"GOLDEN_SET {uri} is not pinned: add ?versionId=<version of {TRANSCRIPTS_FILE}> "
            "(make upload-model GOLDEN=... prints the pinned URI)"
        )
    key = location.key
    if not key.endswith("/" + TRANSCRIPTS_FILE) and key != TRANSCRIPTS_FILE:
        key = key.rstrip("/") + "/" + TRANSCRIPTS_FILE
    return S3Location(location.bucket, key, location.version_id)


def load_s3(uri: str, cache_dir: Path) -> GoldenSet:
    manifest_at = golden_location(uri)
    prefix = manifest_at.key[: -len(TRANSCRIPTS_FILE)]
    try:
        manifest = download_s3(manifest_at, cache_dir)
        entries = parse_manifest(manifest.read_bytes(), f"s3://{manifest_at.bucket}/{manifest_at.key}")
        clips = []
        for entry in entries:
            if entry.version_id is None or entry.sha256 is None:
                raise GoldenSetError(
                    f"s3://{manifest_at.bucket}/{manifest_at.key}: clip {entry.file} has no version_id and "
                    "sha256; an S3 golden set pins every clip (upload it with make upload-model GOLDEN=...)"
                )
            path = download_s3(
                S3Location(manifest_at.bucket, prefix + entry.file, entry.version_id), cache_dir
            )
            _check_digest(path, entry)
            clips.append(GoldenClip(entry.file, path, entry.text))
    except ModelSourceError as error:
        raise GoldenSetError(str(error)) from None
    return GoldenSet(uri, tuple(clips))


def load_golden_set(spec: str, cache_dir: Path) -> GoldenSet:
    """GOLDEN_SET → the clips on local disk, verified; GoldenSetError says what is wrong."""
    if spec.startswith("s3://"):
        return load_s3(spec, cache_dir)
    path = Path(spec.removeprefix("file://"))
    if not path.exists():
        raise GoldenSetError(f"GOLDEN_SET {spec}: no such directory")
    return load_local(path)


# ---------------------------------------------------------------------------- transcribing
def read_clip_pcm(path: Path) -> tuple[bytes, int]:
    """The bytes the client would send for this file: 16-bit mono PCM, and its sample rate."""
    from asr_service.wav import WavReadError, read_wav

    try:
        samples, rate = read_wav(path)
    except WavReadError as error:
        raise GoldenSetError(f"golden clip {path.name}: {error}") from None
    if samples.size == 0:
        raise GoldenSetError(f"golden clip {path.name} has no audio")
    return samples.astype("<i2").tobytes(), int(rate)


async def transcribe_through_engine(engine: BatchingEngine, pcm: bytes, rate: int) -> str:
    """One clip through the sessions' path: PCM16 decode, streaming resample, engine stream, eof."""
    from asr_service.audio import StreamingResampler, decode_pcm16
    from asr_service.decoding.results import StreamUpdate
    from asr_service.engine import deliver_to_queue

    updates: asyncio.Queue[StreamUpdate] = asyncio.Queue()
    stream = engine.open_stream(deliver_to_queue(updates))  # as a session's stream is
    try:
        resampler = StreamingResampler(rate, engine.sample_rate)
        step = 2 * rate * _FEED_MS // 1000
        for offset in range(0, len(pcm), step):
            stream.feed(resampler.push(decode_pcm16(pcm[offset : offset + step])))
        tail = resampler.flush()
        if tail.numel():
            stream.feed(tail)
        stream.finish()
        finals: list[str] = []
        while True:
            update = await updates.get()
            if update.error is not None:
                raise GoldenGateFailedError(f"the engine failed on a golden clip: {update.error}")
            finals.extend(segment.text for segment in update.finals)
            if update.done:
                return " ".join(text for text in finals if text)
    finally:
        stream.cancel()


def score_clip(name: str, reference: str, hypothesis: str) -> ClipScore:
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    return ClipScore(name, reference, hypothesis, len(ref), edit_distance(ref, hyp))


async def evaluate(engine: BatchingEngine, golden: GoldenSet, max_wer: float) -> GateResult:
    started = time.perf_counter()
    audio = [await asyncio.to_thread(read_clip_pcm, clip.path) for clip in golden.clips]
    audio_seconds = sum(len(pcm) / 2 / rate for pcm, rate in audio)
    budget = max(_MIN_BUDGET_S, _BUDGET_PER_AUDIO_S * audio_seconds)
    # All clips at once, as concurrent sessions would be: the engine batches them.
    try:
        async with asyncio.timeout(budget):
            hypotheses = await asyncio.gather(
                *(transcribe_through_engine(engine, pcm, rate) for pcm, rate in audio)
            )
    except TimeoutError:
        raise GoldenGateFailedError(
            f"the golden set ({audio_seconds:.1f} s of audio) was not transcribed within {budget:.0f} s"
        ) from None
    scores = tuple(
        score_clip(clip.name, clip.text, hyp) for clip, hyp in zip(golden.clips, hypotheses, strict=True)
    )
    return GateResult(golden.source, max_wer, scores, audio_seconds, time.perf_counter() - started)


# ---------------------------------------------------------------------------- the gate
def failure_record(result: GateResult, model_sha256: str) -> dict[str, Any]:
    worst = sorted(result.clips, key=lambda clip: clip.wer, reverse=True)[:WORST_SHOWN]
    return {
        "golden_set": result.source,
        "wer": round(result.wer, 4),
        "max_wer": result.max_wer,
        "model_sha256": model_sha256,
        "clips": {clip.name: round(clip.wer, 4) for clip in result.clips},
        "worst": [
            {"clip": c.name, "wer": round(c.wer, 4), "reference": c.reference, "hypothesis": c.hypothesis}
            for c in worst
        ],
        "seconds": round(result.seconds, 3),
        "exit_code": EXIT_GATE_FAILED,
    }


async def run_golden_gate(
    settings: Settings, engine: BatchingEngine, model_sha256: str, registry: CollectorRegistry
) -> dict[str, Any]:
    """The gate, called by ``AsrServer.start`` after warm-up and before ``/ready`` turns 200.

    Returns the fields ``/metrics`` and the ``server_ready`` line carry (empty when the gate is off);
    raises GoldenSetError (exit 4) or GoldenGateFailedError (exit 3) after logging why.
    """
    if not settings.golden_set:
        return {}
    from prometheus_client import Gauge

    started = time.perf_counter()
    cache_dir = Path(settings.model_cache_dir) / "golden"
    try:
        golden = await asyncio.to_thread(load_golden_set, settings.golden_set, cache_dir)
        result = await evaluate(engine, golden, settings.golden_max_wer)
    except GoldenGateFailedError as error:
        log.error(
            "golden_set_failed",
            golden_set=settings.golden_set,
            error=str(error),
            max_wer=settings.golden_max_wer,
            model_sha256=model_sha256,
            exit_code=EXIT_GATE_FAILED,
        )
        raise
    except GoldenSetError as error:
        # Fail closed: a configured gate that cannot check anything must not let the model through.
        log.error(
            "golden_set_unreadable",
            golden_set=settings.golden_set,
            error=str(error),
            model_sha256=model_sha256,
            exit_code=EXIT_GOLDEN_UNREADABLE,
        )
        raise
    if not result.passed:
        log.error("golden_set_failed", **failure_record(result, model_sha256))
        raise GoldenGateFailedError(
            f"golden-set WER {result.wer:.3f} is above GOLDEN_MAX_WER {result.max_wer}"
        )
    Gauge("asr_golden_wer", "Word error rate on the golden set at start-up", registry=registry).set(
        result.wer
    )
    Gauge("asr_golden_max_wer", "GOLDEN_MAX_WER: the gate's threshold", registry=registry).set(result.max_wer)
    fields = {
        "golden_set": result.source,
        "golden_wer": round(result.wer, 4),
        "golden_max_wer": result.max_wer,
        "golden_clips": len(result.clips),
        "golden_audio_s": round(result.audio_seconds, 2),
        "golden_gate_s": round(time.perf_counter() - started, 3),
    }
    log.info("golden_set_passed", **fields, clips={c.name: round(c.wer, 4) for c in result.clips})
    return fields
