"""The project's internal import graph: modules, imports, cycles, levels, layer violations.

Usage::

    python scripts/import_graph.py [--dot]

A module's level is 0 when it imports no project module, else 1 + the highest level among
the modules it imports. Imports inside ``if TYPE_CHECKING:`` blocks are left out (they are
for the type checker only). ``tests/test_layers.py`` asserts the rules printed here.
"""

from __future__ import annotations

import argparse
import ast
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("oddwatch", "flows", "detectors", "simulators")

# Layers, lowest first: a module may import only from its own layer or lower ones.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("detectors", "simulators"),
    ("oddwatch.records", "oddwatch.params"),
    ("oddwatch.settings",),
    ("oddwatch.ingest", "oddwatch.lineproto", "oddwatch.core"),
    ("oddwatch.schema",),
    ("oddwatch.observe",),
    ("oddwatch.connectors",),
    ("flows",),
    ("oddwatch",),  # everything else in the package: commands, tools, evaluation
)


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> Iterable[tuple[str, tuple[str, ...]]]:
    todo = [tree]
    while todo:
        node = todo.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                todo.extend(child.orelse)  # type: ignore[arg-type]
                continue
            if isinstance(child, ast.Import):
                for a in child.names:
                    yield a.name, ()
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                yield child.module, tuple(a.name for a in child.names)
            todo.append(child)


def graph() -> dict[str, set[str]]:
    mods = project_modules()
    out: dict[str, set[str]] = {}
    for name, path in mods.items():
        deps: set[str] = set()
        for mod, names in _imports(ast.parse(path.read_text())):
            if mod.split(".")[0] not in PACKAGES:
                continue
            subs = [f"{mod}.{n}" for n in names if f"{mod}.{n}" in mods]
            deps.update(subs or ([mod] if mod in mods else []))
        deps.discard(name)
        out[name] = deps
    return out


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def levels(g: dict[str, set[str]]) -> dict[str, int]:
    memo: dict[str, int] = {}

    def level(v: str, seen: frozenset[str]) -> int:
        if v in memo:
            return memo[v]
        deps = [d for d in g.get(v, ()) if d not in seen]
        memo[v] = lv = 1 + max((level(d, seen | {v}) for d in deps), default=-1)
        return lv

    for v in g:
        level(v, frozenset())
    return memo


def layer_of(module: str) -> int:
    best, rank = -1, len(LAYERS)
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, rank = len(p), i
    return rank


def violations(g: dict[str, set[str]]) -> list[str]:
    return [f"{m} (layer {layer_of(m)}) imports {d} (layer {layer_of(d)})"
            for m in sorted(g) for d in sorted(g[m]) if layer_of(d) > layer_of(m)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dot", action="store_true", help="print the graph in Graphviz dot")
    args = ap.parse_args()
    g = graph()
    if args.dot:
        print("digraph oddwatch {")
        for m in sorted(g):
            for d in sorted(g[m]):
                print(f'  "{m}" -> "{d}";')
        print("}")
        return
    lv = levels(g)
    print(f"modules {len(g)}, internal imports {sum(map(len, g.values()))}, "
          f"levels {max(lv.values()) + 1} (0..{max(lv.values())})")
    for c in cycles(g):
        print("cycle:", " <-> ".join(c))
    for v in violations(g):
        print("layer violation:", v)
    for m in sorted(g, key=lambda m: (lv[m], m)):
        print(f"  {lv[m]}  {m}")


if __name__ == "__main__":
    main()
