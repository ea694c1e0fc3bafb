"""The open-vocabulary text sources: Debian packages that carry English text, pinned.

Each source is a Debian package (installed by ``make open-vocab-deps``, a stamp that
``make demo-model-open`` depends on) with its version pinned here and in ``mk/open_vocab.mk``;
``SOURCES.md`` beside this file has the licences. The readers return raw text; the normaliser
(:mod:`training.open_vocab.normalize`) makes sentences of it.

Roles (a source is in exactly one; checked by :func:`check_roles`):

- **train**: WordNet 3.0's example sentences (the quoted usages in its glosses: short, modern,
  everyday English over a very wide vocabulary);
- **test**: the ``fortunes`` cookie files of plain prose (quotations, proverbs, jokes: English
  written by many people for other reasons, never seen in training);
- **lexicon**: the SCOWL American English word list (``wamerican``), words only.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Source:
    name: str
    package: str
    version: str
    licence: str
    role: str  # "train", "test" or "lexicon"
    files: tuple[str, ...]


WORDNET = Source(
    name="wordnet-examples",
    package="wordnet-base",
    version="1:3.0-37",
    licence="WordNet 3.0 licence (permissive, BSD-like; Princeton University)",
    role="train",
    files=tuple(f"/usr/share/wordnet/data.{part}" for part in ("noun", "verb", "adj", "adv")),
)

#: Fortune files of ordinary prose. Left out: code and computing jargon (computers, linux, perl,
#: debian, linuxcookie, knghtbrd), verse and lyrics (songs-poems), ASCII art, riddles, definitions,
#: non-English or deliberately garbled text (translate-me, zippy, goedel, paradoxum, magic),
#: fiction quotes full of invented names (startrek, pratchett, tao), and the rest of the mixed
#: bag (art, cookie, disclaimer, drugs, ethnic, fortunes, news, literature, medicine, politics,
#: sports): what is left is a fixed, readable choice, not a filtered one.
FORTUNE_FILES = (
    "education", "food", "humorists", "kids", "law", "love", "men-women", "miscellaneous", "people",
    "pets", "platitudes", "science", "wisdom", "work",
)  # fmt: skip
FORTUNES = Source(
    name="fortunes",
    package="fortunes",
    version="1:1.99.1-7.3",
    licence="BSD (fortune-mod; the cookie files are collected quotations, redistributable as in Debian)",
    role="test",
    files=tuple(f"/usr/share/games/fortunes/{name}" for name in FORTUNE_FILES),
)

WORDLIST = Source(
    name="scowl-american",
    package="wamerican",
    version="2020.12.07-2",
    licence="SCOWL (permissive: Kevin Atkinson et al., MIT-like; parts public domain)",
    role="lexicon",
    files=("/usr/share/dict/american-english",),
)

SOURCES = (WORDNET, FORTUNES, WORDLIST)


class SourceMissingError(RuntimeError):
    """A text source's package is not installed (``make open-vocab-deps`` installs it)."""


def check_roles(train: tuple[Source, ...], test: tuple[Source, ...]) -> None:
    """Train and test text must come from different packages."""
    shared = {s.package for s in train} & {s.package for s in test}
    if shared:
        raise RuntimeError(f"test and training text share a source: {', '.join(sorted(shared))}")


def installed_version(package: str) -> str | None:
    try:
        result = subprocess.run(  # noqa: S603
            ["dpkg-query", "-W", "-f=${Version}", package],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def require(source: Source) -> str:
    """The installed version of ``source``'s package; raises when its files are missing. A version
    other than the pinned one is allowed (Debian may patch a package) and is recorded by callers."""
    missing = [f for f in source.files if not Path(f).is_file()]
    if missing:
        raise SourceMissingError(
            f"{source.name}: {missing[0]} is missing; run `make open-vocab-deps` "
            f"(apt-get install {source.package}={source.version})"
        )
    return installed_version(source.package) or "unknown"


_QUOTED = re.compile(r'"([^"]+)"')


def wordnet_examples(source: Source = WORDNET) -> Iterator[str]:
    """The example sentences in WordNet's glosses: the double-quoted parts after ``|``."""
    for path in source.files:
        with Path(path).open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("  "):  # the licence header
                    continue
                _, _, gloss = line.partition("| ")
                yield from _QUOTED.findall(gloss)


def fortune_texts(source: Source = FORTUNES) -> Iterator[str]:
    """Each cookie's text, without its attribution line ("-- Author") and without cookies that
    are dialogues, lists or verse (lines starting with a speaker, a number or a tab)."""
    for path in source.files:
        cookies = Path(path).read_text(encoding="utf-8", errors="replace").split("\n%\n")
        for cookie in cookies:
            lines = [ln for ln in cookie.splitlines() if ln.strip()]
            body = []
            for ln in lines:
                if ln.lstrip().startswith("--"):
                    break
                body.append(ln)
            if not body or any(re.match(r"\s*(\(?\d+[.)]|[A-Z][\w .]*:\s)", ln) for ln in body):
                continue
            yield " ".join(body)


def word_list(source: Source = WORDLIST) -> Iterator[str]:
    """Lower-case entries of the word list (capitalised ones are names and are left out)."""
    for line in Path(source.files[0]).read_text(encoding="utf-8", errors="replace").splitlines():
        word = line.strip()
        if word and word == word.lower() and re.fullmatch(r"[a-z]+('[a-z]+)?", word):
            yield word
