"""The run store: one SQLite file holding runs, their metrics over time, artifacts and results.

Each run records its config (and a hash of it), the git commit, the machine, metrics by step,
final figures, artifacts and its parent run; claims and exams put their verdicts in `results`.
Run folders (checkpoints, plots) live beside the file, under `runs/<id>/` (see imo.paths).
Several processes may write at once: WAL mode, a busy timeout and short write transactions
that take the write lock up front (BEGIN IMMEDIATE) keep them from failing or corrupting it.

    store = RunStore.open()      # IMO_STORE / --store / the user data dir
    rid = store.create_run("train", "tiny-rope-sdpa-3fa2c1", cfg)
    store.log_metrics(rid, 100, {"train/bpb": 2.31}); store.finish(rid, {"val_bpb": 2.25})
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import platform
import secrets
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from imo import paths
from imo.errors import ImoError, RunBusy, RunNotFound

SCHEMA_VERSION = 2  # 2: runs.fingerprint (code_fingerprint of train_or_reuse) and runs.tags
STATUSES = ("running", "finished", "interrupted", "failed")
# the kinds of run imo makes (imo train; imo prune / quantize; imo reason train / verifier)
RUN_KINDS = ("train", "prune", "quantize", "reason-policy", "reason-orm", "reason-prm")
BUSY_TIMEOUT_S = 60.0  # long enough for many writers queueing on a 2-core machine

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,
    parent      TEXT,
    config      TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    git_commit  TEXT,
    git_dirty   INTEGER,
    machine     TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    ended_at    TEXT,
    figures     TEXT,
    fingerprint TEXT,
    tags        TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS runs_by_hash ON runs (kind, config_hash, status);
CREATE INDEX IF NOT EXISTS runs_by_name ON runs (name);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step   INTEGER NOT NULL,
    key    TEXT NOT NULL,
    value  REAL,  -- NULL stands for NaN (SQLite stores NaN as NULL)
    PRIMARY KEY (run_id, step, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS metrics_by_key ON metrics (run_id, key, step);
CREATE TABLE IF NOT EXISTS artifacts (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name   TEXT NOT NULL,
    path   TEXT NOT NULL,
    PRIMARY KEY (run_id, name)
);
CREATE TABLE IF NOT EXISTS results (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,
    key        TEXT NOT NULL,
    payload    TEXT NOT NULL,
    run_ids    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    git_commit TEXT,
    git_dirty  INTEGER
);
CREATE INDEX IF NOT EXISTS results_by_key ON results (kind, key);
"""
# from each version to the next; a store of an older imo is upgraded in place when opened
_MIGRATIONS = {
    1: ["ALTER TABLE runs ADD COLUMN fingerprint TEXT",
        "ALTER TABLE runs ADD COLUMN tags TEXT NOT NULL DEFAULT '[]'"],
}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def canonical_json(obj: Any) -> str:
    # default=str so Paths and enums in a config serialise instead of crashing a run at the end
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(config: dict) -> str:
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:12]


def git_state(cwd: str | Path | None = None) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the repository holding imo's code (or cwd); (None, None) without one."""
    cwd = cwd if cwd is not None else Path(__file__).resolve().parent
    try:
        run = dict(cwd=cwd, capture_output=True, text=True, timeout=10)
        head = subprocess.run(["git", "rev-parse", "HEAD"], **run)
        if head.returncode != 0:
            return None, None
        status = subprocess.run(["git", "status", "--porcelain"], **run)
        dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
        return head.stdout.strip(), dirty
    except (OSError, subprocess.SubprocessError):
        return None, None


def short_commit() -> str:
    """The commit for a results table: 7 hex digits, '-dirty' with uncommitted changes."""
    commit, dirty = git_state()
    return "unknown" if commit is None else commit[:7] + ("-dirty" if dirty else "")


def machine_info() -> dict:
    try:
        # the installed version, without importing torch (seconds) in processes that don't need it
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = None
    return {
        "node": platform.node(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch_version,
    }


class RunStore:
    """One connection to the store file; every write is its own short transaction."""

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path = path
        self._conn = conn
        # run folders sit beside the file in the layout imo.paths defines, also for a store
        # opened at an explicit path
        self._runs_root = path.parent / "runs"  # the layout of imo.paths, for any store location

    @classmethod
    def open(cls, path: str | os.PathLike | None = None) -> RunStore:
        named = path is None and not paths.store_is_default()  # by the user: --store or IMO_STORE
        path = Path(path).expanduser().resolve() if path is not None else paths.store_file()
        try:
            if path.is_dir():
                raise ImoError(f"run store {path} is a directory; give a file path such as {path / 'store.sqlite'}")
            if named and not path.parent.is_dir():
                # a typo in IMO_STORE must not start an empty store somewhere new
                raise ImoError(f"the folder of run store {path} does not exist; create it "
                               f"(mkdir -p {path.parent}) or fix --store / {paths.STORE_ENV}")
            path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN ourselves, so each transaction is explicit
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except (OSError, sqlite3.Error) as e:
            raise ImoError(f"cannot open run store {path}: {e}") from None
        conn.row_factory = sqlite3.Row
        store = cls(path, conn)
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        try:
            while True:
                try:
                    store._setup()
                    break
                except sqlite3.OperationalError as e:
                    # switching a new file to WAL while other processes open it can report
                    # "locked" at once, without waiting on the busy timeout; setup is
                    # idempotent, so try again
                    if "locked" not in str(e) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)
        except sqlite3.DatabaseError as e:
            conn.close()
            raise ImoError(f"cannot open run store {path}: {e}") from None
        except BaseException:
            conn.close()
            raise
        return store

    def _setup(self) -> None:
        c = self._conn
        c.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        c.execute("PRAGMA journal_mode = WAL")
        # NORMAL cannot corrupt a WAL database; it only risks the last commit on power loss
        c.execute("PRAGMA synchronous = NORMAL")
        c.execute("PRAGMA foreign_keys = ON")
        self._migrate()

    def _migrate(self) -> None:
        # read without the write lock first, so opening an up-to-date store never waits on writers
        if self._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return
        with self._write() as c:
            version = c.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ImoError(
                    f"run store {self.path} has schema version {version}; this imo reads "
                    f"up to {SCHEMA_VERSION} (upgrade imo or use another --store)"
                )
            if version == 0:  # a new file: the current schema at once
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        c.execute(stmt)
            else:
                for v in range(version, SCHEMA_VERSION):
                    for stmt in _MIGRATIONS[v]:
                        c.execute(stmt)
            c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock at BEGIN, so a read-then-write transaction never hits
        # the deadlock a DEFERRED one gets when two writers both try to upgrade their lock
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- runs ---------------------------------------------------------------------------------

    def create_run(
        self,
        kind: str,
        name: str,
        config: dict,
        parent: str | None = None,
        run_id: str | None = None,
        fingerprint: str | None = None,
        tags: Sequence[str] = (),
    ) -> str:
        """`fingerprint`: what the caller says decides the run besides its config (e.g. a hash of
        the code a claim depends on); find() matches it. `tags`: free labels for listings."""
        run_id = run_id or secrets.token_hex(6)  # 12 hex chars: 2^48 ids, short enough to type
        commit, dirty = git_state()
        with self._write() as c:
            c.execute(
                "INSERT INTO runs (id, name, kind, status, parent, config, config_hash,"
                " git_commit, git_dirty, machine, started_at, fingerprint, tags)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run_id, name, kind, "running", parent, canonical_json(config),
                    config_hash(config), commit, dirty, json.dumps(machine_info()), now(),
                    fingerprint, json.dumps(sorted(set(tags))),
                ),
            )  # fmt: skip
        self.run_dir(run_id).mkdir(parents=True, exist_ok=True)
        return run_id

    def run_dir(self, run_id: str) -> Path:
        return self._runs_root / run_id

    def _update(self, run_id: str, sql: str, args: tuple) -> None:
        with self._write() as c:
            if c.execute(f"UPDATE runs SET {sql} WHERE id = ?", (*args, run_id)).rowcount == 0:
                raise RunNotFound(f"no run with id {run_id!r}")

    def set_status(self, run_id: str, status: str) -> None:
        if status not in STATUSES:
            raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
        self._update(run_id, "status = ?", (status,))

    def finish(self, run_id: str, figures: dict, status: str = "finished") -> None:
        if status not in STATUSES:
            raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
        self._update(
            run_id,
            "figures = ?, ended_at = ?, status = ?",
            (canonical_json(figures), now(), status),
        )

    def update_config(self, run_id: str, config: dict) -> None:
        # the hash follows the config, so find() matches runs by what they actually ran
        self._update(
            run_id, "config = ?, config_hash = ?", (canonical_json(config), config_hash(config))
        )

    def get(self, run_id: str) -> dict:
        row = self._conn.execute(
            "SELECT *, (SELECT MAX(step) FROM metrics m WHERE m.run_id = runs.id) AS steps"
            " FROM runs WHERE id = ?",
            (run_id,),
        ).fetchone()
        if row is None:
            raise RunNotFound(f"no run with id {run_id!r}; `imo runs` lists them")
        run = _run_dict(row)
        arts = self._conn.execute(
            "SELECT name, path FROM artifacts WHERE run_id = ? ORDER BY name", (run_id,)
        )
        run["artifacts"] = {a["name"]: a["path"] for a in arts}
        return run

    def list(self, kind: str | None = None, tag: str | None = None) -> list[dict]:
        """All runs (of this kind, with this tag), newest first (without artifacts; get() has them)."""
        where, args = ("WHERE kind = ?", (kind,)) if kind else ("", ())
        rows = self._conn.execute(
            "SELECT *, (SELECT MAX(step) FROM metrics m WHERE m.run_id = runs.id) AS steps"
            f" FROM runs {where} ORDER BY started_at DESC, rowid DESC",
            args,
        )
        runs = [_run_dict(r) for r in rows]
        return [r for r in runs if tag in r["tags"]] if tag is not None else runs

    def kinds(self) -> list[str]:
        """The kinds imo makes and any other kind recorded in this store."""
        seen = {r[0] for r in self._conn.execute("SELECT DISTINCT kind FROM runs")}
        return [*RUN_KINDS, *sorted(seen - set(RUN_KINDS))]

    def resolve(self, prefix: str) -> str:
        """Full id from an id, a unique id prefix, or an exact run name."""
        prefix = prefix.strip()
        if not prefix:
            raise RunNotFound("empty run id; `imo runs` lists them")
        q = "SELECT id, name FROM runs WHERE {} ORDER BY started_at DESC, rowid DESC"
        # substr rather than LIKE, so '%' and '_' in what the user typed mean themselves
        hits = self._conn.execute(
            q.format("substr(id, 1, ?) = ?"), (len(prefix), prefix)
        ).fetchall()
        if not hits:
            hits = self._conn.execute(q.format("name = ?"), (prefix,)).fetchall()
        if len(hits) == 1:
            return hits[0]["id"]
        if not hits:
            raise RunNotFound(f"no run matches {prefix!r}; `imo runs` lists them")
        if any(h["id"] == prefix for h in hits):
            return prefix
        shown = ", ".join(f"{h['id']} ({h['name']})" for h in hits[:3])
        more = f" and {len(hits) - 3} more" if len(hits) > 3 else ""
        raise RunNotFound(
            f"{prefix!r} matches {len(hits)} runs: {shown}{more}; give more of the id"
        )

    def find(self, kind: str, config_hash: str, status: str | None = "finished",
             fingerprint: str | None = None) -> list[str]:
        """Ids of runs of this kind with an identical config and fingerprint (None matches only
        runs recorded without one), newest first (status=None: any)."""
        sql = "SELECT id FROM runs WHERE kind = ? AND config_hash = ? AND fingerprint IS ?"
        args: tuple = (kind, config_hash, fingerprint)
        if status is not None:
            sql, args = sql + " AND status = ?", (*args, status)
        rows = self._conn.execute(sql + " ORDER BY started_at DESC, rowid DESC", args)
        return [r["id"] for r in rows]

    def rm(self, run_id: str) -> None:
        """Delete the run's rows (metrics and artifacts too) and its folder."""
        with self._write() as c:
            if c.execute("DELETE FROM runs WHERE id = ?", (run_id,)).rowcount == 0:
                raise RunNotFound(f"no run with id {run_id!r}; `imo runs` lists them")
        shutil.rmtree(self.run_dir(run_id), ignore_errors=True)

    # --- locks ----------------------------------------------------------------------------------

    @contextmanager
    def lock(self, name: str, wait: bool = True) -> Iterator[None]:
        """An exclusive lock between processes using this store (an flock on a file under
        <store dir>/locks/, so a crashed holder never leaves it taken). wait=False raises
        RunBusy at once when another process holds it."""
        folder = self.path.parent / "locks"
        folder.mkdir(exist_ok=True)
        fd = os.open(folder / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                raise RunBusy(f"{name} is held by another process") from None
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    # --- metrics and artifacts ----------------------------------------------------------------

    def log_metrics(self, run_id: str, step: int, metrics: dict[str, float]) -> None:
        """Upsert: a resumed run re-logs the steps after its checkpoint and overwrites them."""
        rows = [(run_id, int(step), k, float(v)) for k, v in metrics.items()]
        with self._write() as c:
            c.executemany(
                "INSERT INTO metrics (run_id, step, key, value) VALUES (?,?,?,?)"
                " ON CONFLICT (run_id, step, key) DO UPDATE SET value = excluded.value",
                rows,
            )

    def metrics(self, run_id: str, key: str | None = None) -> list[tuple[int, str, float]]:
        """(step, key, value) ordered by step then key; NaN comes back as NaN."""
        sql = "SELECT step, key, value FROM metrics WHERE run_id = ?"
        args: tuple = (run_id,)
        if key is not None:
            sql, args = sql + " AND key = ?", (run_id, key)
        rows = self._conn.execute(sql + " ORDER BY step, key", args)
        return [(s, k, math.nan if v is None else v) for s, k, v in rows]

    def add_artifact(self, run_id: str, name: str, path: str | os.PathLike) -> None:
        # absolute, so the record does not depend on the directory the writer ran in
        p = str(Path(path).expanduser().absolute())
        with self._write() as c:
            c.execute(
                "INSERT INTO artifacts (run_id, name, path) VALUES (?,?,?)"
                " ON CONFLICT (run_id, name) DO UPDATE SET path = excluded.path",
                (run_id, name, p),
            )

    # --- results (claims, exams) --------------------------------------------------------------

    def put_result(self, kind: str, key: str, payload: dict, run_ids: Sequence[str] = ()) -> int:
        """Append a result; earlier ones for the same (kind, key) stay as history. Returns its id."""
        commit, dirty = git_state()
        with self._write() as c:
            cur = c.execute(
                "INSERT INTO results (kind, key, payload, run_ids, created_at, git_commit, git_dirty)"
                " VALUES (?,?,?,?,?,?,?)",
                (
                    kind,
                    key,
                    canonical_json(payload),
                    json.dumps(list(run_ids)),
                    now(),
                    commit,
                    dirty,
                ),
            )
            return int(cur.lastrowid)

    def results(self, kind: str, key: str | None = None) -> list[dict]:
        """Results of this kind (and key), newest first."""
        sql, args = "SELECT * FROM results WHERE kind = ?", (kind,)
        if key is not None:
            sql, args = sql + " AND key = ?", (kind, key)
        out = []
        for r in self._conn.execute(sql + " ORDER BY id DESC", args):
            d = dict(r)
            d["payload"] = json.loads(d["payload"])
            d["run_ids"] = json.loads(d["run_ids"])
            d["git_dirty"] = None if d["git_dirty"] is None else bool(d["git_dirty"])
            out.append(d)
        return out


def _run_dict(row: sqlite3.Row) -> dict:
    d = dict(row)
    d["config"] = json.loads(d["config"])
    d["figures"] = json.loads(d["figures"]) if d["figures"] else {}
    d["machine"] = json.loads(d["machine"])
    d["git_dirty"] = None if d["git_dirty"] is None else bool(d["git_dirty"])
    d["tags"] = json.loads(d.get("tags") or "[]")
    return d
