"""The lexicon + word-LM beam search on finals, run by flashlight-text's native decoder.

Same inputs and the same answer type as :class:`~asr_service.model.lexicon_beam.LexiconBeamDecoder`
(one segment's log-probs [T, V] in, lexicon words or None out), but the search loop is
flashlight-text's C++ ``LexiconDecoder`` with its bundled KenLM, so a final costs a fraction of the
Python search's time and holds the interpreter lock only around the call.

The checkpoint stores bigram *counts* (``word_lm``); KenLM reads ARPA. :func:`write_arpa` writes
the same interpolated Kneser-Ney probabilities :class:`~asr_service.model.word_lm.BigramLm`
computes, as an exact bigram back-off model (a seen pair's interpolated probability; an unseen
pair backs off with the context's leftover mass to the continuation probability), so a word costs
the same under either decoder. At load every seen pair and every context's back-off is read back
through KenLM and compared; a mismatch (a broken or foreign ARPA, a lexicon word missing from it)
is refused there, never at the first final.

Beam settings map onto flashlight's options:

- ``beam`` → ``beam_size`` = ``beam`` × ``BEAM_FACTOR``: a flashlight hypothesis is one (lexicon
  node, LM state, last token, after-blank) state, where a Python prefix sums its blank and
  non-blank endings and every position in its word, so the same number of hypotheses covers
  less; with ``beam_threshold`` (hypotheses that far behind the best are dropped) and every token
  tried at each frame, these were picked on the development sentences ``training.lexicon`` tunes
  on (never the held-out test set): 8 × 12 and 15 give a lower dev WER than the Python search in a
  third of its time, where 1 × 12 doubles its WER. A phoneme model's search over ~88,000 words
  does better wider and tighter (``training.open_vocab.attach`` tunes both on its dev sentences:
  8 × 96 under 10 beats 8 × 12 under 15 and costs less);
- ``lm_weight`` → ``lm_weight`` × ln 10, because KenLM scores are log10 and the Python search
  weighs natural logs;
- ``word_bonus`` → ``word_score``;
- ``missing_space_penalty``: each word is spelled with its closing "▁" (flashlight's silence
  token, ``sil_score`` 0 like the Python search's free "▁" between words), so a word needs a gap
  to end and a missing gap is not allowed at all; the segment's end gets one synthetic "▁" frame
  so that its last word can end. Spelling words without it lets flashlight end a word at any
  letter for free, and with the word bonus it splits words apart (dev WER 15 %);
- ``token_floor`` has no counterpart (``beam_threshold`` prunes instead);
- alignments of one hypothesis are summed (``log_add``), as the Python prefix search does.

A phoneme model's words are inserted by pronunciation (each of a word's token sequences, then
"▁"), words that sound alike on the same trie node (at most six: ``MAX_WORDS_PER_SPELLING``).
Its partials use :meth:`NativeLexiconDecoder.open_stream`: one flashlight decoder per stream over
the shared trie and LM, fed block by block (flashlight's ``decode_step``), so a partial costs the
new frames only and the final equals a whole-segment :meth:`~NativeLexiconDecoder.decode`.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from asr_service.model.lexicon_beam import WORD_BOUNDARY, BeamSettings, word_spellings
from asr_service.model.ngram_lm import NgramLm
from asr_service.model.word_lm import BigramLm

LN10 = math.log(10.0)
#: flashlight hypotheses per Python beam entry: picked on the development sentences (module doc).
BEAM_FACTOR = 8
#: Log-prob of every token but "▁" in the synthetic frame that closes the segment's last word.
END_FRAME_OTHERS = -100.0
#: How far KenLM's float32 scores may drift from the Python LM's (log10 units) at the load check.
SCORE_TOLERANCE = 1e-4
#: Stored n-grams per order read back through KenLM at load (see ``_check_ngram_lm``).
NGRAM_CHECKS = 200
UNKNOWN = "<unk>"


class NativeDecoderError(ValueError):
    """The native decoder cannot be built: package missing, bad ARPA, bad lexicon."""


def native_available() -> bool:
    """Whether flashlight-text's decoder (with KenLM) imports here."""
    try:
        import flashlight.lib.text.decoder  # noqa: F401
        from flashlight.lib.text.decoder.kenlm import KenLM  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def _stderr_captured() -> Iterator[io.StringIO]:
    """Send file descriptor 2 to a buffer for the block: KenLM prints a progress bar of asterisks
    there while it reads an ARPA file, which would land between the service's JSON log lines.
    (Anything another thread writes to stderr meanwhile lands in the buffer too; loading runs
    once, at start-up.)"""
    captured = io.StringIO()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.write(sink.read().decode("utf-8", "replace"))
            captured.seek(0)


def write_arpa(lm: BigramLm, path: str | Path) -> None:
    """Write ``lm`` as a bigram ARPA file whose probabilities are exactly ``lm.log_prob``'s.

    ``<s>`` and ``</s>`` are both the LM's boundary id (as a previous and as a next word);
    ``<unk>`` gets a conventional -99 (the decoder never proposes it)."""
    if any(w in ("<s>", "</s>", UNKNOWN) or not w or any(c.isspace() for c in w) for w in lm.words):
        raise NativeDecoderError("lexicon words must be non-empty, without spaces, and not <s>/</s>/<unk>")
    boundary = lm.boundary

    def name(word: int, as_previous: bool) -> str:
        if word == boundary:
            return "<s>" if as_previous else "</s>"
        return lm.words[word]

    def log10(value: float) -> str:
        return f"{value / LN10:.7f}"

    unigrams = []
    for word in range(boundary):
        backoff = lm.backoff_log_weight(word)
        line = f"{log10(lm.continuation_log_prob(word))}\t{lm.words[word]}"
        unigrams.append(line if backoff is None else f"{line}\t{log10(backoff)}")
    unigrams.append(f"{log10(lm.continuation_log_prob(boundary))}\t</s>")
    start_backoff = lm.backoff_log_weight(boundary)
    unigrams.append("-99\t<s>" + ("" if start_backoff is None else f"\t{log10(start_backoff)}"))
    unigrams.append(f"-99\t{UNKNOWN}")
    bigrams = [f"{log10(lm.log_prob(p, n))}\t{name(p, True)} {name(n, False)}" for p, n in lm.seen_pairs()]
    text = "\n".join(
        [
            "",
            "\\data\\",
            f"ngram 1={len(unigrams)}",
            f"ngram 2={len(bigrams)}",
            "",
            "\\1-grams:",
            *unigrams,
            "",
            "\\2-grams:",
            *bigrams,
            "",
            "\\end\\",
            "",
        ]
    )
    Path(path).write_text(text, encoding="utf-8")


class NativeLexiconDecoder:
    """Decode one segment's log-probs [T, V] into lexicon words with flashlight-text (module doc).

    ``lm`` is the checkpoint's bigram LM; ``arpa_path`` an ARPA file to load instead of one written
    from ``lm`` (with both, the file must score like ``lm``). Neither: words are scored by
    ``word_bonus`` alone, as the Python search does without an LM."""

    name = "native"

    def __init__(
        self,
        tokens: Sequence[str],
        blank_id: int,
        words: Sequence[str],
        lm: BigramLm | NgramLm | None = None,
        settings: BeamSettings | None = None,
        arpa_path: str | Path | None = None,
        pronunciations: Mapping[str, Sequence[Sequence[str]]] | None = None,
    ) -> None:
        try:
            import flashlight.lib.text.decoder as fl
            from flashlight.lib.text.dictionary import Dictionary
        except ImportError as exc:
            raise NativeDecoderError(
                f"the native word decoder needs flashlight-text (pip install flashlight-text): {exc}"
            ) from None
        self.settings = settings or BeamSettings()
        self.blank_id = blank_id
        self.tokens = list(tokens)
        if not 0 <= blank_id < len(self.tokens):
            raise NativeDecoderError(f"blank_id {blank_id} is outside the {len(self.tokens)} tokens")
        try:
            self.space_id = self.tokens.index(WORD_BOUNDARY)
        except ValueError:
            raise NativeDecoderError("a lexicon beam search needs a word-boundary token '▁'") from None
        #: Whether words are found by how they sound (a phoneme model) rather than spelled.
        self.pronounced = pronunciations is not None
        for token_id, token in enumerate(self.tokens):
            if token_id not in (blank_id, self.space_id) and len(token) != 1 and not self.pronounced:
                raise NativeDecoderError(
                    f"lexicon beam search supports single-character tokens, found {token!r}"
                )
        self.words = list(words)
        if not self.words:
            raise NativeDecoderError("the lexicon is empty")
        if len(set(self.words)) != len(self.words):
            raise NativeDecoderError("the lexicon lists a word twice")
        if lm is not None and lm.words != self.words:
            raise NativeDecoderError("the word LM was built over a different word list")
        # Word ids are the lexicon's ids; <unk> comes last so the two numberings agree.
        self._word_dict = Dictionary([*self.words, UNKNOWN])
        self._lm = self._load_lm(fl, lm, arpa_path)

        self._fl = fl
        trie = fl.Trie(len(self.tokens), self.space_id)
        start = self._lm.start(False)
        spellable = 0
        # Words the model cannot write are left out, as the Python search leaves them out; a
        # word with several pronunciations (or homophones sharing one) gets several entries.
        first_scores = [float(self._lm.score(start, word_id)[1]) for word_id in range(len(self.words))]
        spellings = word_spellings(
            self.tokens, blank_id, self.words, pronunciations, first_scores.__getitem__
        )
        for word_id, token_ids in spellings:
            trie.insert([*token_ids, self.space_id], word_id, first_scores[word_id])
            spellable += 1
        if not spellable:
            raise NativeDecoderError("no lexicon word can be spelled with the model's tokens")
        trie.smear(fl.SmearingMode.MAX)
        options = fl.LexiconDecoderOptions(
            beam_size=self.settings.beam * BEAM_FACTOR,
            beam_size_token=len(self.tokens),
            beam_threshold=self.settings.beam_threshold,
            lm_weight=self.settings.lm_weight * LN10,
            word_score=self.settings.word_bonus,
            unk_score=float("-inf"),
            sil_score=0.0,
            log_add=True,
            criterion_type=fl.CriterionType.CTC,
        )
        self._options = options
        self._trie = trie  # decoders point into it: keep it alive as long as any decoder
        self._decoder = self._new_search()
        # One search at a time: the decoder keeps its hypotheses between begin and end.
        self._lock = threading.Lock()

    def _new_search(self) -> Any:
        """A flashlight decoder over the shared trie and LM: its own hypotheses, nothing else."""
        return self._fl.LexiconDecoder(
            self._options, self._trie, self._lm, self.space_id, self.blank_id, len(self.words), [], False
        )

    def _load_lm(self, fl: Any, lm: BigramLm | NgramLm | None, arpa_path: str | Path | None) -> Any:
        from flashlight.lib.text.decoder.kenlm import KenLM

        with tempfile.TemporaryDirectory(prefix="word-lm-") as scratch:
            if arpa_path is not None:
                path = Path(arpa_path)
                if not path.is_file():
                    raise NativeDecoderError(f"ARPA LM {path} does not exist")
            elif isinstance(lm, NgramLm):
                path = Path(scratch) / "word-lm.arpa"
                lm.write_arpa(path)
            elif lm is not None:
                path = Path(scratch) / "word-lm.arpa"
                write_arpa(lm, path)
            else:
                return fl.ZeroLM()
            try:
                # KenLM reads the whole file here; the temporary copy can go afterwards.
                with _stderr_captured() as chatter:
                    kenlm = KenLM(str(path), self._word_dict)
            except Exception as exc:  # KenLM reports a bad file as a C++ exception of any kind
                detail = " ".join(f"{exc} {chatter.read()}".split())[:300]
                raise NativeDecoderError(f"cannot load the ARPA LM {path.name}: {detail}") from None
        self._check_lm(kenlm, lm, arpa_path)
        return kenlm

    def _check_lm(self, kenlm: Any, lm: BigramLm | NgramLm | None, arpa_path: str | Path | None) -> None:
        """Every lexicon word must be known to KenLM, and with a reference LM every seen pair and
        every context's back-off must score as the reference does."""
        start = kenlm.start(False)
        unknown_score = kenlm.score(start, len(self.words))[1]
        missing = [w for i, w in enumerate(self.words) if kenlm.score(start, i)[1] == unknown_score]
        where = f"ARPA LM {Path(arpa_path).name}" if arpa_path is not None else "the ARPA LM written"
        if missing:
            raise NativeDecoderError(f"{where} lacks {len(missing)} lexicon words, e.g. {missing[0]!r}")
        if lm is None:
            return
        if isinstance(lm, NgramLm):
            self._check_ngram_lm(kenlm, lm, where)
            return
        states = {lm.boundary: start}

        def state_after(word: int) -> Any:
            if word not in states:
                states[word] = kenlm.score(start, word)[0]
            return states[word]

        def kenlm_log10(previous: int, word: int) -> float:
            state = state_after(previous)
            return float(kenlm.finish(state)[1] if word == lm.boundary else kenlm.score(state, word)[1])

        probe = 0  # one word every context backs off to unless it was seen there
        checks = [*lm.seen_pairs(), *((p, probe) for p in range(lm.boundary + 1))]
        for previous, word in checks:
            expected = lm.log_prob(previous, word) / LN10
            got = kenlm_log10(previous, word)
            if not math.isclose(got, expected, abs_tol=SCORE_TOLERANCE):
                shown = [("<s>" if previous == lm.boundary else self.words[previous])]
                shown.append("</s>" if word == lm.boundary else self.words[word])
                raise NativeDecoderError(
                    f"{where} does not match the checkpoint's word LM: log10 P({shown[1]} | {shown[0]}) "
                    f"is {got:.4f}, the checkpoint's counts give {expected:.4f}"
                )

    def _check_ngram_lm(self, kenlm: Any, lm: NgramLm, where: str) -> None:
        """Read back a fixed sample of the stored n-grams of every order (the first, the last and
        ``NGRAM_CHECKS`` evenly spaced rows) and one backed-off word after each; a full pass over
        hundreds of thousands of n-grams would cost seconds of start-up for no more assurance."""
        for ids, _, _ in lm.tables:
            rows = ids.shape[0]
            picks = sorted({0, rows - 1, *range(0, rows, max(1, rows // NGRAM_CHECKS))})
            for row in picks:
                gram = [int(v) for v in ids[row].tolist()]
                history = gram[:-1]
                # "<s>" opens a context only in first position: KenLM's begin-sentence state.
                sentence_start = bool(history) and history[0] == lm.boundary
                for word in (gram[-1], 0):
                    expected = lm.log10_prob(history, word)
                    state = kenlm.start(not sentence_start)
                    for previous in history[1:] if sentence_start else history:
                        state = kenlm.score(state, previous)[0]
                    last = kenlm.finish(state) if word == lm.boundary else kenlm.score(state, word)
                    got = float(last[1])
                    if not math.isclose(got, expected, abs_tol=SCORE_TOLERANCE * 10):
                        context = " ".join(self._name(w, False) for w in history)
                        raise NativeDecoderError(
                            f"{where} does not match the checkpoint's n-gram LM: log10 "
                            f"P({self._name(word, True)} | {context}) is {got:.4f}, "
                            f"the checkpoint's tables give {expected:.4f}"
                        )

    def _name(self, word: int, last: bool) -> str:
        if word == len(self.words):
            return "</s>" if last else "<s>"
        return self.words[word]

    def open_stream(self) -> NativeWordStream:
        """An incremental search for one stream's segments (partials of a phoneme model)."""
        return NativeWordStream(self)

    def _emissions(self, log_probs: torch.Tensor) -> torch.Tensor:
        if log_probs.dim() != 2 or log_probs.shape[1] != len(self.tokens):
            raise ValueError(f"decode wants log-probs [T, {len(self.tokens)}], got {tuple(log_probs.shape)}")
        return log_probs.detach().to("cpu", torch.float32).contiguous()

    def _closing_frame(self) -> torch.Tensor:
        close = torch.full((1, len(self.tokens)), END_FRAME_OTHERS)
        close[0, self.space_id] = 0.0
        return close

    def _words(self, result: Any) -> str | None:
        words = [self.words[i] for i in result.words if 0 <= i < len(self.words)]
        return " ".join(words) or None

    def decode(self, log_probs: torch.Tensor) -> str | None:
        """Best lexicon word sequence for ``log_probs`` [T, V]; None when the best path holds no
        word (the caller keeps the greedy text), as the Python search answers."""
        emissions = self._emissions(log_probs)
        if emissions.shape[0] == 0:
            return None
        emissions = torch.cat([emissions, self._closing_frame()]).contiguous()
        frames = emissions.shape[0]
        with self._lock:
            results = self._decoder.decode(emissions.data_ptr(), frames, emissions.shape[1])
        return self._words(results[0]) if results else None


class NativeWordStream:
    """One stream's search, fed block by block: ``step`` costs only the new frames, so a phoneme
    model's partials (``best`` after every block) cost about what one final does in total. The
    search is frame-synchronous, so ``finish`` gives what :meth:`NativeLexiconDecoder.decode` gives
    for the same frames at once. Each stream has its own hypotheses; the trie and the LM are the
    shared, read-only ones of its :class:`NativeLexiconDecoder`. One thread per stream (the
    engine's)."""

    def __init__(self, owner: NativeLexiconDecoder) -> None:
        self._owner = owner
        self._search = owner._new_search()
        self._search.decode_begin()
        self.frames = 0

    def step(self, log_probs: torch.Tensor) -> None:
        emissions = self._owner._emissions(log_probs)
        if emissions.shape[0]:
            self._search.decode_step(emissions.data_ptr(), emissions.shape[0], emissions.shape[1])
            self.frames += emissions.shape[0]

    def best(self) -> str | None:
        """The words of the best hypothesis so far (a word still being spoken is not among them)."""
        if not self.frames:
            return None
        return self._owner._words(self._search.get_best_hypothesis())

    def finish(self) -> str | None:
        """Close the segment (its last word may end), return its words, start the next segment."""
        if not self.frames:
            return None
        close = self._owner._closing_frame()
        self._search.decode_step(close.data_ptr(), 1, close.shape[1])
        self._search.decode_end()
        results = self._search.get_all_final_hypothesis()
        self._search.decode_begin()
        self.frames = 0
        return self._owner._words(results[0]) if results else None
