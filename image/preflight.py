"""Static checks of a Dockerfile, run before any (slow) image build.

Each check targets a defect that a real build or a real container start would expose only late,
or not at all until the task runs on ECS:

* a shell variable (``$PORT``) inside an exec-form (JSON) CMD / ENTRYPOINT / HEALTHCHECK: no shell
  runs, so the program receives the literal text ``$PORT``;
* an instruction that looks like exec form but is not valid JSON (single quotes): Docker then
  silently runs it through ``/bin/sh -c``, so signals go to the shell and not to the server;
* a COPY/ADD source that is missing from the build context, or excluded by ``.dockerignore``;
* ``COPY --from=`` naming a stage that does not exist;
* a base image that is not the ``BASE_IMAGE`` build argument (the local check could not swap it);
* a final stage that runs as root or has no entry point.

The parser follows the Dockerfile reference: ``\\`` line continuations, ``#`` comment lines,
heredocs (``<<EOF``), ``--flag`` options on COPY/ADD. It does no I/O besides reading the context.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

_VARIABLE = re.compile(r"\$(\{[A-Za-z_][A-Za-z0-9_]*[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)")
_HEREDOC = re.compile(r"<<-?\s*[\"']?([A-Za-z_][A-Za-z0-9_]*)[\"']?")
_ROOT_USERS = {"", "root", "0", "0:0", "root:root"}


@dataclass(frozen=True)
class Instruction:
    line: int  # 1-based line where the instruction starts
    keyword: str  # upper case: FROM, RUN, COPY, ...
    args: str  # the rest, continuations joined with a space


@dataclass(frozen=True)
class Problem:
    line: int
    check: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: [{self.check}] {self.message}"


@dataclass
class Stage:
    index: int
    name: str | None
    base: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        """The arguments of this stage's ``keyword`` instructions, in order."""
        return [ins.args for ins in self.instructions if ins.keyword == keyword]


def parse(text: str) -> list[Instruction]:
    """Split a Dockerfile into instructions (comments dropped, continuations joined)."""
    lines = text.splitlines()
    instructions: list[Instruction] = []
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        start = i
        parts: list[str] = []
        while True:
            current = lines[i].rstrip()
            if current.endswith("\\"):
                parts.append(current[:-1].strip())
                i += 1
                # comment lines inside a continued instruction are dropped, as Docker does
                while i < len(lines) and lines[i].strip().startswith("#"):
                    i += 1
                if i >= len(lines):
                    break
                continue
            parts.append(current.strip())
            i += 1
            break
        joined = " ".join(p for p in parts if p)
        for marker in _HEREDOC.findall(joined):
            # a heredoc body runs up to its terminator line; it is part of this instruction
            while i < len(lines) and lines[i].strip() != marker:
                i += 1
            i += 1
        keyword, _, args = joined.partition(" ")
        instructions.append(Instruction(start + 1, keyword.upper(), args.strip()))
    return instructions


def stages_of(instructions: list[Instruction]) -> tuple[list[Instruction], list[Stage]]:
    """Global instructions (before the first FROM: ARGs) and the build stages."""
    preamble: list[Instruction] = []
    stages: list[Stage] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append(Stage(len(stages), name, words[0] if words else "", []))
        elif stages:
            stages[-1].instructions.append(ins)
        else:
            preamble.append(ins)
    return preamble, stages


def _exec_form(args: str) -> list[str] | None:
    """The JSON array of an exec-form instruction, or None for shell form."""
    if not args.startswith("["):
        return None
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _check_exec_forms(ins: Instruction) -> list[Problem]:
    args = ins.args
    label = ins.keyword
    if ins.keyword == "HEALTHCHECK":
        # HEALTHCHECK [OPTIONS] CMD command | NONE
        match = re.search(r"(?:^|\s)CMD\s+(.*)$", args, flags=re.IGNORECASE)
        if not match:
            return []
        args, label = match.group(1).strip(), "HEALTHCHECK CMD"
    if ins.keyword not in {"CMD", "ENTRYPOINT", "HEALTHCHECK"}:
        return []
    if args.startswith("[") and _exec_form(args) is None:
        return [
            Problem(
                ins.line,
                "exec-form-json",
                f"{label} starts with '[' but is not a JSON array of strings (single quotes or a "
                f"trailing comma?): Docker silently runs it as '/bin/sh -c {args}', so SIGTERM goes "
                "to the shell, not to the server. Write it with double quotes.",
            )
        ]
    argv = _exec_form(args)
    if argv is None:
        return []
    problems = []
    for word in argv:
        variable = _VARIABLE.search(word)
        # "sh -c '...$VAR...'" is a shell on purpose: the variable is expanded there.
        is_shell_script = len(argv) >= 3 and Path(argv[0]).name in {"sh", "bash"} and argv[1] == "-c"
        if variable and not is_shell_script:
            problems.append(
                Problem(
                    ins.line,
                    "exec-form-variable",
                    f"{label} is exec form (JSON), which no shell expands: the program receives the "
                    f"literal text {word!r} (variable ${variable.group(1).strip('{}')}). Let the "
                    "program read the variable from its environment instead.",
                )
            )
    return problems


def _copy_sources(args: str) -> tuple[dict[str, str], list[str]]:
    """Flags and source paths of a COPY/ADD (the last word is the destination)."""
    argv = _exec_form(args)
    if argv is None:
        argv = args.split()
    flags: dict[str, str] = {}
    words: list[str] = []
    for word in argv:
        if word.startswith("--") and not words:
            key, _, value = word[2:].partition("=")
            flags[key] = value
        else:
            words.append(word)
    return flags, words[:-1]


def read_dockerignore(context: Path) -> list[str]:
    path = context / ".dockerignore"
    if not path.is_file():
        return []
    patterns = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            patterns.append(line)
    return patterns


def _glob_regex(pattern: str) -> str:
    """Go filepath.Match syntax plus Docker's '**' (any number of directories) as a regex."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(.*/)?")  # zero or more directories
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out) + r"\Z"


def _pattern_matches(pattern: str, relpath: str) -> bool:
    """True when pattern matches relpath or one of its parent directories (excluding a directory
    excludes everything below it)."""
    regex = _glob_regex(pattern.lstrip("/").removeprefix("./").rstrip("/"))
    parts = relpath.split("/")
    return any(re.match(regex, "/".join(parts[: n + 1])) for n in range(len(parts)))


def is_ignored(relpath: str, patterns: list[str]) -> bool:
    """True when .dockerignore patterns exclude relpath (later patterns and '!' win)."""
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if _pattern_matches(pattern.removeprefix("!"), relpath):
            ignored = not negated
    return ignored


def _check_copy(ins: Instruction, context: Path, ignore: list[str], stage_names: set[str]) -> list[Problem]:
    flags, sources = _copy_sources(ins.args)
    if "from" in flags:
        source_stage = flags["from"]
        known = source_stage in stage_names or source_stage.isdigit() or "/" in source_stage
        if not known and ":" not in source_stage:
            return [
                Problem(
                    ins.line,
                    "copy-from-stage",
                    f"{ins.keyword} --from={source_stage}: no stage of that name above this line",
                )
            ]
        return []
    problems = []
    for source in sources:
        if re.match(r"^[a-z]+://", source) or "$" in source or source.startswith("<<"):
            continue  # ADD of a URL, a heredoc, a path from a build argument: the build checks those
        relative = source.lstrip("/").removeprefix("./") or "."
        matches = sorted(context.glob(relative)) if relative != "." else [context]
        if not matches:
            problems.append(
                Problem(
                    ins.line,
                    "copy-source-missing",
                    f"{ins.keyword} source {source!r} does not exist in the build context "
                    f"{context} (paths are relative to the context, not to the Dockerfile)",
                )
            )
            continue
        kept = [m for m in matches if not is_ignored(m.relative_to(context).as_posix(), ignore)]
        if not kept and relative != ".":
            problems.append(
                Problem(
                    ins.line,
                    "copy-source-ignored",
                    f"{ins.keyword} source {source!r} is excluded by .dockerignore, so the build "
                    "cannot see it",
                )
            )
    return problems


def check(dockerfile: Path, context: Path, base_arg: str = "BASE_IMAGE") -> list[Problem]:
    """All static problems of dockerfile built with context; an empty list means it may be built."""
    instructions = parse(dockerfile.read_text())
    preamble, stages = stages_of(instructions)
    if not stages:
        return [Problem(1, "no-from", "the Dockerfile has no FROM instruction")]
    problems: list[Problem] = []

    declared = {i.args.split("=")[0].strip() for i in preamble if i.keyword == "ARG"}
    uses_arg = any(re.search(rf"\$\{{?{base_arg}\}}?", s.base) for s in stages)
    if base_arg not in declared or not uses_arg:
        problems.append(
            Problem(
                1,
                "base-image-arg",
                f"the base image must come from a global 'ARG {base_arg}=<public image>' used in FROM; "
                "without it this machine (no registry) cannot build the image",
            )
        )

    ignore = read_dockerignore(context)
    names: set[str] = set()
    for stage in stages:
        for ins in stage.instructions:
            problems += _check_exec_forms(ins)
            if ins.keyword in {"COPY", "ADD"}:
                problems += _check_copy(ins, context, ignore, names)
        if stage.name:
            names.add(stage.name.lower())
            names.add(stage.name)

    final = stages[-1]
    users = [i for i in final.instructions if i.keyword == "USER"]
    last_user = users[-1].args.strip() if users else ""
    if last_user in _ROOT_USERS:
        line = users[-1].line if users else instructions[-1].line
        problems.append(
            Problem(line, "runtime-user", "the final stage runs as root: add a USER with a non-root account")
        )
    if not any(i.keyword in {"ENTRYPOINT", "CMD"} for i in final.instructions):
        problems.append(Problem(instructions[-1].line, "entrypoint", "the final stage has no ENTRYPOINT/CMD"))
    return sorted(problems, key=lambda p: p.line)
