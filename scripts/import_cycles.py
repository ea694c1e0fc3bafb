"""Find import cycles between the project's own modules, from the source alone (ast, no imports run).

    python scripts/import_cycles.py [--root DIR] [PACKAGE_DIR ...]

Each PACKAGE_DIR (relative to the root) is a folder of modules; its modules are named from the
folder that holds it (``functions/common/ezspeech_common/x.py`` is ``ezspeech_common.x``), so the
names match what the code imports. Every ``import`` and ``from ... import`` counts, wherever it
stands (module level, inside a function, under ``TYPE_CHECKING``): a lazy import hides a cycle
from the interpreter, not from the reader who has to understand both modules at once. An import
of ``pkg.mod`` is an edge to ``pkg.mod`` only; the parent package's ``__init__`` is not counted,
so a package that re-exports its submodules is not a cycle by itself.

Prints each cycle as a chain of modules (``a -> b -> a``) and exits 1 when there is any; exit 0
means the project's import graph is a DAG. ``make lint`` runs it.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The project's Python: every folder whose modules import each other.
DEFAULT_PACKAGES = (
    "asr_service",
    "asr_client",
    "ezspeech_convert",
    "functions/common/ezspeech_common",
    "ops",
    "demo",
    "bench",
    "training",
    "scripts",
    "image",
)

Graph = dict[str, set[str]]


def module_files(root: Path, package_dirs: Iterable[str]) -> dict[str, Path]:
    """Module name -> file, for every ``.py`` file under each package folder."""
    modules: dict[str, Path] = {}
    for package_dir in package_dirs:
        folder = root / package_dir
        base = folder.parent
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name ``from <level dots><target> import ...`` means inside ``module``."""
    parts = module.split(".")
    package = parts if is_package else parts[:-1]
    base = package[: len(package) - (level - 1)] if level > 1 else package
    return ".".join([*base, *([target] if target else [])])


def imports_of(module: str, path: Path, known: Mapping[str, Path]) -> set[str]:
    """The project modules ``module`` imports (edges of the graph)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def known_prefix(name: str) -> str | None:
        parts = name.split(".")
        for end in range(len(parts), 0, -1):
            candidate = ".".join(parts[:end])
            if candidate in known:
                return candidate
        return None

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if (hit := known_prefix(alias.name)) is not None:
                    found.add(hit)
        elif isinstance(node, ast.ImportFrom):
            base = (
                _resolve_relative(module, is_package, node.level, node.module)
                if node.level
                else (node.module or "")
            )
            for alias in node.names:
                # `from pkg import mod` imports the submodule when there is one, else a name of pkg.
                submodule = f"{base}.{alias.name}"
                hit = submodule if submodule in known else known_prefix(base)
                if hit is not None:
                    found.add(hit)
    found.discard(module)
    return found


def import_graph(root: Path, package_dirs: Iterable[str]) -> Graph:
    known = module_files(root, package_dirs)
    return {name: imports_of(name, path, known) for name, path in known.items()}


def strongly_connected(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (deep import chains must not hit the recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterable[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def cycle_through(graph: Mapping[str, set[str]], members: Sequence[str]) -> list[str]:
    """One shortest chain from the component's first module back to itself (breadth-first)."""
    inside = set(members)
    start = members[0]
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for child in sorted(graph[node] & inside):
                if child == start:
                    chain = [node]
                    while chain[-1] != start:
                        chain.append(came_from[chain[-1]])
                    return [*reversed(chain), start]
                if child not in came_from:
                    came_from[child] = node
                    following.append(child)
        frontier = following
    raise ValueError(f"{members} is not a cycle")


def find_cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """One chain per group of modules that import each other, in a stable order."""
    return [cycle_through(graph, members) for members in strongly_connected(graph) if len(members) > 1]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("packages", nargs="*", default=list(DEFAULT_PACKAGES), help="package folders")
    parser.add_argument("--root", type=Path, default=ROOT, help="folder the package paths start from")
    args = parser.parse_args(argv)
    missing = [p for p in args.packages if not (args.root / p).is_dir()]
    if missing:
        parser.error(f"not a folder under {args.root}: {', '.join(missing)}")
    graph = import_graph(args.root, args.packages)
    cycles = find_cycles(graph)
    for chain in cycles:
        print("import cycle: " + " -> ".join(chain))
    edges = sum(len(targets) for targets in graph.values())
    print(f"{len(graph)} modules, {edges} imports between them, {len(cycles)} cycle(s)")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())
