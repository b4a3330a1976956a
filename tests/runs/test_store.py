"""The run store: round trips, metric upserts, resolve, rm, results, concurrent writers."""

import json
import math
import multiprocessing as mp
import sqlite3
import traceback
from pathlib import Path

import pytest

from imo import paths
from imo.errors import ImoError, RunNotFound
from imo.runs.store import SCHEMA_VERSION, RunStore, config_hash


@pytest.fixture
def store():
    with RunStore.open() as s:
        yield s


def test_open_uses_paths_store_file_and_sets_schema(store):
    assert store.path == paths.store_file()
    assert store.path.exists()
    con = sqlite3.connect(store.path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_create_and_get_round_trip(store):
    cfg = {"model": {"n_layer": 2, "position": "rope"}, "lr": 3e-3, "seed": 1}
    rid = store.create_run("train", "tiny-rope-sdpa-3fa2c1", cfg)
    assert len(rid) == 12 and int(rid, 16) >= 0
    assert store.run_dir(rid) == paths.run_dir(rid)
    assert store.run_dir(rid).is_dir()
    r = store.get(rid)
    assert r["id"] == rid and r["name"] == "tiny-rope-sdpa-3fa2c1" and r["kind"] == "train"
    assert r["status"] == "running" and r["parent"] is None and r["ended_at"] is None
    assert r["config"] == cfg
    assert r["config_hash"] == config_hash(cfg) and len(r["config_hash"]) == 12
    assert r["figures"] == {} and r["artifacts"] == {} and r["steps"] is None
    assert r["machine"]["cpus"] >= 1 and "node" in r["machine"]
    assert r["started_at"].endswith("+00:00")
    # the test suite runs inside the project's git checkout
    assert r["git_commit"] is None or len(r["git_commit"]) == 40
    with pytest.raises(RunNotFound):
        store.get("000000000000")


def test_config_hash_ignores_key_order():
    assert config_hash({"a": 1, "b": {"c": 2, "d": 3}}) == config_hash(
        {"b": {"d": 3, "c": 2}, "a": 1}
    )
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_status_finish_update_config_artifacts(store, tmp_path):
    rid = store.create_run("train", "r", {"minutes": 1})
    store.set_status(rid, "interrupted")
    assert store.get(rid)["status"] == "interrupted"
    with pytest.raises(ValueError):
        store.set_status(rid, "done")
    store.update_config(rid, {"minutes": 1, "steps": 500})
    r = store.get(rid)
    assert r["config"]["steps"] == 500 and r["config_hash"] == config_hash(
        {"minutes": 1, "steps": 500}
    )
    store.add_artifact(rid, "checkpoint", tmp_path / "a.safetensors")
    store.add_artifact(rid, "checkpoint", tmp_path / "b.safetensors")  # upsert by name
    store.add_artifact(rid, "loss", "loss.png")
    arts = store.get(rid)["artifacts"]
    assert arts["checkpoint"] == str(tmp_path / "b.safetensors") and len(arts) == 2
    store.finish(rid, {"val_bpb": 2.25, "tokens": 1000})
    r = store.get(rid)
    assert r["status"] == "finished" and r["figures"] == {"val_bpb": 2.25, "tokens": 1000}
    assert r["ended_at"] >= r["started_at"]
    with pytest.raises(RunNotFound):
        store.set_status("ffffffffffff", "failed")


def test_metrics_upsert_order_and_nan(store):
    rid = store.create_run("train", "r", {})
    for step in (20, 0, 10):
        store.log_metrics(rid, step, {"train/bpb": 3.0 - step / 100, "lr": 0.1})
    store.log_metrics(rid, 10, {"train/bpb": 1.5})  # a resumed run re-logs step 10
    store.log_metrics(rid, 30, {"train/bpb": float("nan")})  # a diverged run must still log
    got = store.metrics(rid, "train/bpb")
    assert [s for s, _, _ in got] == [0, 10, 20, 30]
    assert got[1] == (10, "train/bpb", 1.5)
    assert math.isnan(got[3][2])
    assert len(store.metrics(rid)) == 7  # 4 train/bpb + 3 lr, no duplicates
    assert store.get(rid)["steps"] == 30


def test_list_newest_first_and_kind(store):
    a = store.create_run("train", "a", {})
    b = store.create_run("prune", "b", {}, parent=a)
    c = store.create_run("train", "c", {})
    assert [r["id"] for r in store.list()] == [c, b, a]
    assert [r["id"] for r in store.list("train")] == [c, a]
    assert store.get(b)["parent"] == a


def test_resolve(store):
    a = store.create_run("train", "alpha", {}, run_id="abc111111111")
    b = store.create_run("train", "beta", {}, run_id="abc222222222")
    store.create_run("train", "dup", {}, run_id="def000000000")
    store.create_run("train", "dup", {}, run_id="def000000001")
    assert store.resolve(a) == a
    assert store.resolve("abc2") == b
    assert store.resolve("alpha") == a
    with pytest.raises(RunNotFound) as e:
        store.resolve("abc")
    msg = str(e.value)
    assert "\n" not in msg and a in msg and b in msg
    with pytest.raises(RunNotFound, match="no run matches 'zzz'; `imo runs` lists them"):
        store.resolve("zzz")
    with pytest.raises(RunNotFound):
        store.resolve("dup")  # two runs share the name
    with pytest.raises(RunNotFound):
        store.resolve("%")  # not a LIKE pattern
    with pytest.raises(RunNotFound):
        store.resolve("")


def test_resolve_lists_at_most_three_candidates(store):
    ids = [store.create_run("train", f"r{i}", {}, run_id=f"aa{i:010d}") for i in range(5)]
    with pytest.raises(RunNotFound) as e:
        store.resolve("aa")
    assert "and 2 more" in str(e.value) and sum(i in str(e.value) for i in ids) == 3


def test_find_by_config(store):
    cfg = {"lr": 1e-3}
    a = store.create_run("train", "a", cfg)
    b = store.create_run("train", "b", cfg)
    store.create_run("train", "c", {"lr": 2e-3})
    store.create_run("prune", "d", cfg)
    store.finish(a, {})
    store.finish(b, {})
    h = config_hash(cfg)
    assert store.find("train", h) == [b, a]
    e = store.create_run("train", "e", cfg)
    assert store.find("train", h) == [b, a]
    assert store.find("train", h, status="running") == [e]
    assert store.find("train", h, status=None) == [e, b, a]


def test_rm_removes_rows_and_folder(store):
    rid = store.create_run("train", "r", {})
    keep = store.create_run("train", "k", {})
    store.log_metrics(rid, 1, {"x": 1.0})
    store.add_artifact(rid, "ckpt", store.run_dir(rid) / "ckpt.safetensors")
    (store.run_dir(rid) / "ckpt.safetensors").write_bytes(b"x")
    store.rm(rid)
    assert not store.run_dir(rid).exists()
    with pytest.raises(RunNotFound):
        store.get(rid)
    assert store.metrics(rid) == []
    assert [r["id"] for r in store.list()] == [keep]
    with pytest.raises(RunNotFound):
        store.rm(rid)


def test_results(store):
    rid = store.create_run("train", "r", {})
    first = store.put_result("claim", "rope-extrapolates", {"verdict": "unsupported"}, [rid])
    second = store.put_result("claim", "rope-extrapolates", {"verdict": "supported"}, [rid])
    store.put_result("exam", "skills", {"score": 0.5})
    got = store.results("claim", "rope-extrapolates")
    assert [g["id"] for g in got] == [second, first]  # newest first, history kept
    assert got[0]["payload"] == {"verdict": "supported"} and got[0]["run_ids"] == [rid]
    assert "created_at" in got[0] and "git_commit" in got[0]
    assert len(store.results("claim")) == 2
    assert store.results("exam")[0]["run_ids"] == []


def test_reopen_keeps_data_and_explicit_path(tmp_path):
    path = tmp_path / "other" / "s.sqlite"
    with RunStore.open(path) as s:
        rid = s.create_run("train", "r", {"a": 1})
        assert s.run_dir(rid) == tmp_path / "other" / "runs" / rid
    with RunStore.open(path) as s:
        assert s.get(rid)["config"] == {"a": 1}


def test_newer_schema_or_garbage_is_a_user_error(tmp_path):
    path = tmp_path / "s.sqlite"
    RunStore.open(path).close()
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(ImoError, match="schema version"):
        RunStore.open(path)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ImoError, match="cannot open run store"):
        RunStore.open(junk)


def _writer(path: str, worker: int, n_runs: int, n_rows: int) -> None:
    try:
        with RunStore.open(path) as s:
            for i in range(n_runs):
                rid = s.create_run("train", f"w{worker}-{i}", {"worker": worker, "i": i})
                for step in range(n_rows):
                    s.log_metrics(rid, step, {"train/bpb": float(step)})
                s.finish(rid, {"val_bpb": 1.0})
    except BaseException:
        # a child's traceback is lost to the test otherwise; leave it where the assert reads it
        Path(path).with_name(f"writer{worker}.err").write_text(traceback.format_exc())
        raise


def test_concurrent_writers(tmp_path):
    path = tmp_path / "shared.sqlite"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), w, 20, 50)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    errors = "".join(f.read_text() for f in sorted(tmp_path.glob("writer*.err")))
    assert [p.exitcode for p in procs] == [0, 0, 0, 0], errors
    with RunStore.open(path) as s:
        runs = s.list()
        assert len(runs) == 80 and all(r["status"] == "finished" for r in runs)
        assert all(r["steps"] == 49 for r in runs)
        assert {json.dumps(r["config"], sort_keys=True) for r in runs} == {
            json.dumps({"i": i, "worker": w}, sort_keys=True) for w in range(4) for i in range(20)
        }
        assert sum(len(s.metrics(r["id"])) for r in runs) == 80 * 50
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()


def test_a_version_1_store_is_upgraded_in_place(tmp_path):
    path = tmp_path / "old.sqlite"
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE runs (id TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL,
            status TEXT NOT NULL, parent TEXT, config TEXT NOT NULL, config_hash TEXT NOT NULL,
            git_commit TEXT, git_dirty INTEGER, machine TEXT NOT NULL, started_at TEXT NOT NULL,
            ended_at TEXT, figures TEXT);
        CREATE TABLE metrics (run_id TEXT NOT NULL, step INTEGER NOT NULL, key TEXT NOT NULL,
            value REAL, PRIMARY KEY (run_id, step, key)) WITHOUT ROWID;
        CREATE TABLE artifacts (run_id TEXT NOT NULL, name TEXT NOT NULL, path TEXT NOT NULL,
            PRIMARY KEY (run_id, name));
        CREATE TABLE results (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,
            key TEXT NOT NULL, payload TEXT NOT NULL, run_ids TEXT NOT NULL,
            created_at TEXT NOT NULL, git_commit TEXT, git_dirty INTEGER);
        INSERT INTO runs VALUES ('abc', 'old', 'train', 'finished', NULL, '{"a":1}', 'h', NULL,
            NULL, '{}', '2025-01-01T00:00:00+00:00', NULL, NULL);
        PRAGMA user_version = 1;
    """)
    con.close()
    with RunStore.open(path) as s:
        old = s.get("abc")
        assert old["tags"] == [] and old["fingerprint"] is None and old["config"] == {"a": 1}
        assert s.find("train", "h") == ["abc"] and s.find("train", "h", fingerprint="x") == []
        new = s.create_run("train", "new", {"a": 2}, fingerprint="x", tags=["t"])
        assert s.get(new)["tags"] == ["t"] and s.list(tag="t")[0]["id"] == new


def test_atomic_writes_fsync_the_folder_too(tmp_path, monkeypatch):
    import os
    import stat

    from imo.atomic import write_text

    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(stat.S_ISDIR(os.fstat(fd).st_mode)), real(fd)))
    write_text(tmp_path / "x.json", "{}")
    assert synced == [False, True]  # the file, then the folder holding the rename
    assert (tmp_path / "x.json").read_text() == "{}"


def test_lock_is_exclusive_between_holders(store):
    from imo.errors import RunBusy

    with store.lock("x", wait=False):
        with pytest.raises(RunBusy):
            with store.lock("x", wait=False):
                pass
    with store.lock("x", wait=False):  # released when the first holder left
        pass
