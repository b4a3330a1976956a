"""The import graph of `imo` has no cycles between modules (docs/architecture.md: the layers).

Every `import` and `from ... import` in src/imo is read with `ast`, those inside functions too
(a lazy import still ties two modules together), and each is resolved to the most specific
module of the package it names (`from imo.exams import trick` -> imo.exams.trick). A cycle is a
strongly connected component of more than one module, or a module importing itself.
"""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# Cycles still on main while their owners cut them (issue 12). Each entry is one cycle's set of
# modules; the test fails if one disappears without being struck from here, so the list only
# shrinks. It must end empty.
KNOWN_CYCLES: list[frozenset[str]] = []


def module_names(src: Path = SRC) -> dict[str, Path]:
    out = {}
    for path in sorted((src / "imo").rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve(target: str, modules: dict[str, Path]) -> str | None:
    """The most specific module of `target` (`imo.x.y` where y is a name inside imo.x -> imo.x)."""
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The imo modules that `name` (at `path`) imports anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from .x import y, from .. import z
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            # `from pkg import mod` imports the module; `from pkg import name`, the package
            targets = [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        found |= {m for t in targets if (m := _resolve(t, modules)) and m != name}
    return found


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    modules = module_names(src)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with a cycle (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = set()
                    while True:
                        m = stack.pop()
                        on_stack.discard(m)
                        comp.add(m)
                        if m == node:
                            break
                    if len(comp) > 1 or node in graph[node]:
                        out.append(frozenset(comp))
    return out


def _show(c: frozenset[str]) -> str:
    return "{" + ", ".join(sorted(c)) + "}"


def test_no_import_cycles_inside_imo():
    found = set(cycles(import_graph()))
    new = [c for c in found if c not in KNOWN_CYCLES]
    gone = [c for c in KNOWN_CYCLES if c not in found]
    assert not new, "import cycles: " + "; ".join(_show(c) for c in new)
    assert not gone, "cycles now cut, strike them from KNOWN_CYCLES: " + "; ".join(_show(c) for c in gone)


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = tmp_path / "imo" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp_path


@pytest.mark.parametrize("b_text", [
    "from imo.a import f\n",                      # at module level
    "def g():\n    from imo import a\n",          # inside a function
    "def g():\n    from . import a\n",            # relative, inside a function
    "import imo.a as x\n",
])
def test_the_walk_sees_each_kind_of_import(tmp_path, b_text):
    src = _tree(tmp_path, {"__init__.py": "", "a.py": "from imo.b import g\n", "b.py": b_text})
    assert cycles(import_graph(src)) == [frozenset({"imo.a", "imo.b"})]


def test_a_chain_through_a_package_is_a_cycle_and_a_line_is_not(tmp_path):
    src = _tree(tmp_path, {
        "__init__.py": "", "p/__init__.py": "", "p/x.py": "from imo.p.y import f\n",
        "p/y.py": "def f():\n    from ..q import z\n", "q.py": "from imo.p import x\n",
        "r.py": "from imo.q import z\nfrom imo import p\n",
    })
    assert cycles(import_graph(src)) == [frozenset({"imo.p.x", "imo.p.y", "imo.q"})]
    src2 = _tree(tmp_path / "2", {"__init__.py": "", "a.py": "from imo.b import f\n", "b.py": "import os\n"})
    assert cycles(import_graph(src2)) == []
