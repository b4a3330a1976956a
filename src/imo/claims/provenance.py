"""Provenance of a claim's evidence: a code fingerprint, the commit, the machine.

The fingerprint is per claim: a hash of the imo source files its measurement module imports,
transitively (an AST walk over every import statement, those inside functions too, since imo
imports heavy modules lazily), plus the claim's id and version. An unrelated commit leaves it
unchanged, so recorded evidence stays current; any edit to code the measurement runs changes it,
so a stored seed or training run measured by other code is never reused.

    fingerprint(CLAIMS.get("outlier-split"))  -> "3f9a..." (16 hex digits)
"""

from __future__ import annotations

import ast
import hashlib
import os
import platform
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import imo

PACKAGE_ROOT = Path(imo.__file__).resolve().parent  # .../src/imo


def _module_file(name: str) -> Path | None:
    """The source file of imo module `name` (a package's __init__.py), None if not imo's."""
    if name != "imo" and not name.startswith("imo."):
        return None
    if name == "imo":
        return PACKAGE_ROOT / "__init__.py"
    rel = Path(*name.split(".")[1:])
    for cand in (PACKAGE_ROOT / rel.with_suffix(".py"), PACKAGE_ROOT / rel / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _module_name(path: Path) -> str:
    if not path.is_relative_to(PACKAGE_ROOT):  # a claim defined outside imo (tests' fakes)
        return path.stem
    rel = path.relative_to(PACKAGE_ROOT).with_suffix("")
    parts = ["imo", *rel.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _imports(path: Path) -> frozenset[str]:
    """The imo modules one file names in its import statements (a `from a import b` names a.b too,
    which counts when b is a submodule)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this file's package
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    # a module's parent packages run their __init__ on import
    out = set()
    for name in found:
        parts = name.split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return frozenset(n for n in out if _module_file(n) is not None)


@cache
def source_files(module: str) -> tuple[Path, ...]:
    """Every imo source file `module` imports, transitively, itself included (sorted). A module
    outside imo (a test's fake claims) counts with its own file and the imo modules it imports."""
    start = _module_file(module)
    if start is None:
        mod = sys.modules.get(module)
        where = getattr(mod, "__file__", None)
        if where is None:
            raise ValueError(f"{module!r} has no source file to fingerprint")
        start = Path(where).resolve()
    seen: set[Path] = set()
    todo = [start]
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        todo.extend(p for n in _imports(f) if (p := _module_file(n)) is not None and p not in seen)
    return tuple(sorted(seen))


def fingerprint_of(module: str, claim_id: str, version: int) -> str:
    h = hashlib.sha256(f"{claim_id}\0v{version}\0".encode())
    for f in source_files(module):
        name = f.relative_to(PACKAGE_ROOT) if f.is_relative_to(PACKAGE_ROOT) else f.name
        h.update(str(name).encode() + b"\0")
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()[:16]


def fingerprint(claim: Any) -> str:
    """The claim's code fingerprint (see the module docstring)."""
    return fingerprint_of(claim.measure.__module__, claim.id, claim.version)


def repo_root() -> Path | None:
    """The git work tree holding imo's source, None outside one."""
    try:
        out = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=PACKAGE_ROOT,
                             capture_output=True, text=True, timeout=10)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(out.stdout.strip()) if out.returncode == 0 else None


def src_dirty() -> list[str] | None:
    """Uncommitted changes under src/ (evidence/ and everything else outside src/ never count);
    None when the code is not in a git work tree."""
    root = repo_root()
    if root is None:
        return None
    out = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=root,
                         capture_output=True, text=True, timeout=10)  # fmt: skip
    return [line[3:] for line in out.stdout.splitlines() if line.strip()]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """What the evidence ran on: CPU model, cores, torch and Python versions."""
    from importlib import metadata

    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = None
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch_version,
            "python": platform.python_version(), "system": platform.system()}  # fmt: skip
