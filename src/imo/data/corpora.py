"""Corpora, registered by name; none needs a download.

  * `python-docs`       the English reference text shipped inside CPython (pydoc_data.topics, ~466 KB);
  * `python-docstrings` docstrings of the standard library, read with `ast` (never imported);
  * `file:PATH`, `dir:PATH` the user's own text (a directory: its files in sorted order).

A corpus is prepared once: its bytes are split (the last 10% is validation) and written as
flat uint8 arrays under the cache dir, keyed by where it came from (the Python version for the
built-ins; path, size and modification time for files), so later loads only memory-map them.

    c = load_corpus("python-docs"); c.train[:100]   # numpy memmap of byte ids
"""

import ast
import hashlib
import json
import sys
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imo import paths
from imo.atomic import write_bytes
from imo.errors import DataError
from imo.registry import Registry

CORPORA: Registry[Callable[[], bytes]] = Registry("corpus")
VAL_FRACTION = 0.1
FORMAT = 1


@CORPORA.register("python-docs")
def python_docs() -> bytes:
    """The Python reference manual's topics, as shipped inside CPython (pydoc_data)."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k].strip() for k in sorted(topics)).encode("utf-8")


@CORPORA.register("python-docstrings")
def python_docstrings() -> bytes:
    """Docstrings of the standard library modules, read with ast."""
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"site-packages", "test", "tests", "idle_test", "__pycache__"}
    docs: list[str] = []
    for path in sorted(root.rglob("*.py")):
        if skip & set(path.relative_to(root).parts):
            continue
        try:
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except (SyntaxError, ValueError, OSError):  # a few stdlib files are templates or encoded oddly
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 40:
                    docs.append(doc.strip())
    return "\n\n".join(docs).encode("utf-8")


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read corpus file '{path}': {e.strerror or e}") from None


def _source(name: str) -> bytes:
    if name.startswith("file:"):
        path = Path(name[5:]).expanduser()
        if not path.is_file():
            raise DataError(f"corpus file '{path}' does not exist or is not a file")
        return _read_file(path)
    if name.startswith("dir:"):
        root = Path(name[4:]).expanduser()
        if not root.is_dir():
            raise DataError(f"corpus directory '{root}' does not exist or is not a directory")
        files = sorted(p for p in root.rglob("*") if p.is_file())
        return b"\n".join(_read_file(p) for p in files)
    if name not in CORPORA:
        raise DataError(
            f"unknown corpus {name!r}; choose one of: {', '.join(CORPORA.names())}, file:PATH, dir:PATH"
        )
    return CORPORA.get(name)()


@dataclass
class Corpus:
    name: str
    train: np.ndarray  # uint8 memmap
    val: np.ndarray
    meta: dict

    def split(self, which: str) -> np.ndarray:
        if which not in ("train", "val"):
            raise DataError(f"unknown split {which!r}; choose train or val")
        return self.train if which == "train" else self.val


def _cache_key(name: str) -> str:
    """Identifies the source without reading it: cheap enough to compute on every load."""
    if name.startswith(("file:", "dir:")):
        root = Path(name.split(":", 1)[1]).expanduser()
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        stats = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files if p.exists()]
        key = json.dumps([name.split(":")[0], stats])
    else:
        key = json.dumps([name, sys.version, FORMAT])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def load_corpus(name: str) -> Corpus:
    if not name.startswith(("file:", "dir:")) and name not in CORPORA:
        _source(name)  # raises, listing the choices
    folder = paths.corpus_cache_dir() / _cache_key(name)
    meta_path = folder / "meta.json"
    if not meta_path.exists():  # prepare once; meta.json is written last, so its presence means done
        raw = _source(name)
        if len(raw) < 100:
            raise DataError(f"corpus {name!r} has {len(raw)} bytes; at least 100 are needed")
        digest = hashlib.sha256(raw).hexdigest()[:16]
        folder.mkdir(parents=True, exist_ok=True)
        n_val = max(1, int(len(raw) * VAL_FRACTION))
        write_bytes(folder / "train.bin", raw[:-n_val])
        write_bytes(folder / "val.bin", raw[-n_val:])
        meta = dict(format=FORMAT, name=name, sha256=digest, tokenizer="byte", dtype="uint8",
                    bytes=len(raw), train_bytes=len(raw) - n_val, val_bytes=n_val)
        write_bytes(meta_path, json.dumps(meta, indent=2).encode())
    meta = json.loads(meta_path.read_text())
    train = np.memmap(folder / "train.bin", dtype=np.uint8, mode="r")
    val = np.memmap(folder / "val.bin", dtype=np.uint8, mode="r")
    return Corpus(name=name, train=train, val=val, meta=meta)
