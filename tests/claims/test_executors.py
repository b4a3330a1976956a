"""`imo check --jobs N` and `--executor dask://...`: the same verdicts and figures as --jobs 1,
timing claims alone in this process, per-seed resumption after Ctrl-C, clear refusals."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from parallel_fakes import noisy_claim
from typer.testing import CliRunner

from imo import paths
from imo.claims.cli import check_command
from imo.claims.registry import CLAIMS as REAL_CLAIMS
from imo.claims.runner import RESULT_KIND, SEED_KIND
from imo.errors import ImoError
from imo.runs.store import RunStore

app = typer.Typer()
app.command("check")(check_command)
app.command("other")(lambda: None)  # two commands: `check` stays a subcommand name


def check(*args: str):
    return CliRunner().invoke(app, ["check", *args], catch_exceptions=False)


def results(store_file: Path | None = None) -> dict[str, dict]:
    """The newest result payload of each claim in the store."""
    with RunStore.open(store_file) as s:
        return {r["key"]: r["payload"] for r in reversed(s.results(RESULT_KIND))}


def comparable(p: dict) -> tuple:
    """What must not depend on --jobs: all but the wall-clock times among the figures."""
    figures = [{k: v for k, v in f.items() if "seconds" not in k} for f in p["figures"]]
    return p["verdict"], p["seeds"], p["mean"], p["low"], p["high"], figures


def in_store(monkeypatch, folder: Path) -> Path:
    folder.mkdir()
    monkeypatch.setenv(paths.STORE_ENV, str(folder / "store.sqlite"))
    paths.set_store(None)
    return folder / "store.sqlite"


def seed_log(path: Path) -> list[tuple[str, int, int]]:
    if not path.is_file():
        return []
    return [(c, int(s), int(p)) for c, s, p in (line.split() for line in path.read_text().splitlines())]


@pytest.fixture
def log(tmp_path) -> Path:
    return tmp_path / "seeds.log"


@pytest.fixture
def fakes(fake_registry, log):
    fake_registry(noisy_claim("fan-a", shift=0.3, log=log))
    fake_registry(noisy_claim("fan-b", shift=-0.3, log=log))
    fake_registry(noisy_claim("fan-broken", shift=0.3, fail_seed=1, log=log))
    fake_registry(noisy_claim("fan-timed", shift=0.3, tags=("timing",), log=log))
    return fake_registry


def test_jobs_2_gives_the_verdicts_and_figures_of_jobs_1(fakes, log, tmp_path, monkeypatch):
    one = in_store(monkeypatch, tmp_path / "one")
    res = check("--all", "--full", "-q")
    assert res.exit_code == 0, res.output
    two = in_store(monkeypatch, tmp_path / "two")
    log.unlink()
    res = check("--all", "--full", "--jobs", "2")
    assert res.exit_code == 0, res.output
    a, b = results(one), results(two)
    assert sorted(a) == sorted(b) == ["fan-a", "fan-b", "fan-broken", "fan-timed"]
    for cid in a:
        assert comparable(a[cid]) == comparable(b[cid]), cid
    assert [b[c]["verdict"] for c in ("fan-a", "fan-b", "fan-broken")] == ["supported", "refuted", "error"]
    # a failing seed: the claim's error is the first failing seed's, its figures the seeds before
    assert b["fan-broken"]["error"] == "ValueError: seed 1 has no corpus" and b["fan-broken"]["seeds"] == 1
    assert b["fan-a"]["provenance"]["executor"].startswith("local pool of 2 processes")
    # the table lists the claims in the order asked, whatever order they finished in
    assert [line.split("\t")[0] for line in res.stdout.splitlines()[1:]] == ["fan-a", "fan-b", "fan-broken", "fan-timed"]
    assert "fan-a seed 3/3: gap = " in res.stderr  # a progress line per finished seed
    measured = seed_log(log)
    workers = {pid for c, _, pid in measured if c != "fan-timed"}
    assert os.getpid() not in workers and 1 <= len(workers) <= 2
    # the timing claim ran alone: in this process, after every other seed had come back
    assert [c for c, _, _ in measured[-3:]] == ["fan-timed"] * 3
    assert {pid for c, _, pid in measured if c == "fan-timed"} == {os.getpid()}


def interrupted_then_resumed(fakes, log, *executor: str) -> None:
    """Seeds 1 and 2 meet a Ctrl-C, seed 0 comes back; the rerun measures only seeds 1 and 2."""
    fakes(noisy_claim("fan-stop", shift=0.3, stop_seeds=(1, 2), log=log))
    res = check("fan-stop", "--full", *executor, "-q")
    assert res.exit_code == 130, res.output  # a Ctrl-C, as typer reports it
    with RunStore.open() as s:
        assert s.results(RESULT_KIND, "fan-stop") == []  # an interrupted claim is not decided
        assert [r["payload"]["seed"] for r in s.results(SEED_KIND)] == [0]
    log.unlink()
    # the same claim (same id, version and code: the same fingerprint), no longer interrupted
    from imo.claims import registry

    registry.CLAIMS._items["fan-stop"] = noisy_claim("fan-stop", shift=0.3, log=log)
    res = check("fan-stop", "--full", *executor, "-q")
    assert res.exit_code == 0, res.output
    assert sorted(s for _, s, _ in seed_log(log)) == [1, 2]  # only the missing seeds
    p = results()["fan-stop"]
    assert p["verdict"] == "supported" and p["seeds"] == 3 and p["reused_seeds"] == [0]


def test_an_interrupted_parallel_check_resumes_per_seed(fakes, log):
    interrupted_then_resumed(fakes, log, "--executor", "local")  # a pool of one process


def test_smoke_checks_of_two_real_claims_agree_across_jobs(tmp_path, monkeypatch):
    claims = ("width-over-depth", "lottery-tickets")
    one = in_store(monkeypatch, tmp_path / "one")
    assert check(*claims, "--smoke", "-q").exit_code == 0
    two = in_store(monkeypatch, tmp_path / "two")  # a store of its own: no training run reused
    res = check(*claims, "--smoke", "-q", "--jobs", "2")
    assert res.exit_code == 0, res.output
    a, b = results(one), results(two)
    assert sorted(a) == sorted(b) == sorted(claims)
    for cid in claims:
        assert comparable(a[cid]) == comparable(b[cid]), cid


def test_bad_jobs_and_executors_are_refused_before_measuring(fakes):
    for args, message in [(("--jobs", "0"), "--jobs must be >= 1"),
                          (("--executor", "ray://x:1"), "give `local` or `dask://HOST:PORT`"),
                          (("--executor", "dask://host-without-port"), "dask://HOST:PORT"),
                          (("--executor", "dask://127.0.0.1:1", "--jobs", "2"), "--jobs sizes the local pool")]:  # fmt: skip
        with pytest.raises(ImoError, match=message):
            check("fan-a", *args)
    assert results() == {}


def test_a_claim_that_cannot_travel_is_refused(fake_registry):
    from claim_fakes import fake_claim

    fake_registry(fake_claim("closure", [1.0]))  # its measure is defined inside a function
    with pytest.raises(ImoError, match="cannot be sent to a worker process.*--jobs 1"):
        check("closure", "--jobs", "2")


# --- Dask distributed -------------------------------------------------------------------------


def test_dask_without_the_extra_is_one_line(fakes, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(ImoError, match=r"needs Dask distributed: pip install 'imo\[cluster\]'"):
        check("fan-a", "--executor", "dask://127.0.0.1:8786")


def test_unreachable_scheduler_exits_2_with_one_line():
    pytest.importorskip("distributed")
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, paths.STORE_ENV: str(paths.store_file())}
    res = subprocess.run([sys.executable, "-m", "imo", "check", "width-over-depth", "--smoke",
                          "--executor", f"dask://127.0.0.1:{port}"], env=env, capture_output=True,
                         text=True, stdin=subprocess.DEVNULL, timeout=120)  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert f"cannot reach a Dask scheduler at tcp://127.0.0.1:{port}" in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes of one thread each on this machine, as `dask worker ADDRESS
    --nthreads 1` gives on a real cluster."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", protocol="tcp", dashboard_address=None,
                                  silence_logs=True) as c:  # fmt: skip
        yield "dask://" + c.scheduler_address.removeprefix("tcp://")


def test_a_local_dask_cluster_gives_the_verdicts_of_jobs_1(fakes, cluster, tmp_path, monkeypatch):
    fakes(REAL_CLAIMS.get("width-over-depth"))
    one = in_store(monkeypatch, tmp_path / "one")
    assert check("fan-a", "fan-b", "fan-broken", "--full", "-q").exit_code == 0
    assert check("width-over-depth", "--smoke", "-q").exit_code == 0
    two = in_store(monkeypatch, tmp_path / "two")
    res = check("fan-a", "fan-b", "fan-broken", "--full", "--executor", cluster)
    assert res.exit_code == 0, res.output
    assert check("width-over-depth", "--smoke", "-q", "--executor", cluster).exit_code == 0
    a, b = results(one), results(two)
    assert sorted(a) == sorted(b)
    for cid in a:
        assert comparable(a[cid]) == comparable(b[cid]), cid
    assert b["fan-a"]["provenance"]["executor"].startswith("dask tcp://127.0.0.1:")
    with RunStore.open(two) as s:  # the client stored every seed the workers sent back
        assert len(s.results(SEED_KIND)) == 3 + 3 + 2 + 1  # fan-broken: seeds 0 and 2
    assert "fan-b seed 2/3: gap = " in res.stderr


def test_an_interrupted_dask_check_resumes_per_seed(fakes, log, cluster):
    interrupted_then_resumed(fakes, log, "--executor", cluster)
