"""The claim runner: verdicts stored with their figures and plots, errors recorded, seeds reused
after an interruption; and `imo check` / `imo claims` on fake claims."""

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import typer
from claim_fakes import fake_claim
from typer.testing import CliRunner

from imo import paths
from imo.claims import load_all, registry
from imo.claims.cli import check_command, claims_command, report_command
from imo.claims.runner import (
    RESULT_KIND,
    SEED_KIND,
    claims_dir,
    evidence,
    run_claim,
    seed_key,
)
from imo.errors import ConfigError, ImoError
from imo.runs.store import RunStore

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def store():
    with RunStore.open() as s:
        yield s


def test_supported_result_is_stored_with_figures_and_plot(store):
    c = fake_claim("wide-wins", [0.3])
    p = run_claim(c, "quick", store)
    assert p["verdict"] == "supported" and p["budget"] == "quick" and p["seeds"] == 1
    assert p["figures"] == [{"gap": 0.3, "width": 64}]  # "_runs" is bookkeeping, not shown
    assert p["runs"] == ["run-wide-wins-0"]
    assert (p["mean"], p["low"], p["high"]) == pytest.approx((0.3, 0.25, 0.35))
    assert p["metric"] == "gap" and p["rule"] == c.rule.describe() and p["version"] == 1
    assert p["statement"] == c.statement and p["duration_s"] >= 0
    plot = p["plot"]
    assert os.path.dirname(plot) == str(claims_dir(store))
    assert open(plot, "rb").read(8) == PNG
    assert not [f for f in os.listdir(claims_dir(store)) if f.startswith(".")]  # no temp files
    (row,) = store.results(RESULT_KIND, "wide-wins")
    assert row["payload"]["verdict"] == "supported" and row["id"] == p["result_id"]
    assert row["run_ids"] == ["run-wide-wins-0"]
    (seed,) = store.results(SEED_KIND, seed_key(c, "quick", 0))
    assert seed["payload"]["figures"]["_runs"] == ["run-wide-wins-0"]


def test_refuted_and_full_interval(store):
    p = run_claim(fake_claim("deep-wins", [-1.0, -1.2, -0.8], plot=False), "full", store)
    assert p["verdict"] == "refuted" and p["seeds"] == 3 and p["plot"] is None
    assert p["mean"] == pytest.approx(-1.0)
    assert p["low"] < p["mean"] < p["high"] < 0
    assert p["runs"] == [f"run-deep-wins-{s}" for s in range(3)]


def test_a_failing_claim_is_recorded_and_the_next_still_runs(store):
    boom = fake_claim("boom", [1.0], fail_at=lambda s: RuntimeError("out of bytes\nsecond line"))
    after = fake_claim("after", [1.0])
    results = [run_claim(c, "quick", store) for c in (boom, after)]
    assert [p["verdict"] for p in results] == ["error", "supported"]
    assert results[0]["error"] == "RuntimeError: out of bytes"  # one line
    assert "Traceback" in results[0]["traceback"]
    assert store.results(RESULT_KIND, "boom")[0]["payload"]["verdict"] == "error"


@pytest.mark.parametrize(
    "figures, message",
    [({"other": 1.0}, "no 'gap'"), ({"gap": "big"}, "not a number"), ([1.0], "not a dict")],
)
def test_figures_without_the_metric_are_an_error(store, figures, message):
    c = fake_claim("bad", [0.0])
    c = type(c)(**{**c.__dict__, "measure": lambda budget, seed, ctx: figures})
    p = run_claim(c, "quick", store)
    assert p["verdict"] == "error" and message in p["error"]
    assert store.results(SEED_KIND) == []  # nothing half-valid is kept for reuse


def test_numpy_figures_are_stored_as_numbers(store):
    c = fake_claim("np", [0.0])
    c = type(c)(**{**c.__dict__, "measure": lambda b, s, ctx: {"gap": np.float32(0.5), "n": np.int64(3),
                                                                 "curve": np.arange(3)}})  # fmt: skip
    p = run_claim(c, "quick", store)
    assert p["verdict"] == "supported"
    assert store.results(RESULT_KIND, "np")[0]["payload"]["figures"] == [{"gap": 0.5, "n": 3, "curve": [0, 1, 2]}]


def test_interrupted_full_run_resumes_at_the_next_seed(store):
    calls: list = []
    interrupt = {"on": True}
    c = fake_claim("resumable", [0.9, 1.0, 1.1], calls=calls,
                   fail_at=lambda s: KeyboardInterrupt() if s == 2 and interrupt["on"] else None)  # fmt: skip
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C is not a claim error: it stops the check
        run_claim(c, "full", store)
    assert calls == [("full", 0), ("full", 1), ("full", 2)]
    assert store.results(RESULT_KIND) == []
    assert len(store.results(SEED_KIND)) == 2

    interrupt["on"] = False
    calls.clear()
    p = run_claim(c, "full", store)
    assert calls == [("full", 2)]  # seeds 0 and 1 came from the store
    assert p["verdict"] == "supported" and p["seeds"] == 3 and p["reused_seeds"] == [0, 1]
    assert [f["gap"] for f in p["figures"]] == [0.9, 1.0, 1.1]

    # another process is just another connection to the same file: everything is reused
    calls.clear()
    with RunStore.open(store.path) as other:
        assert run_claim(c, "full", other)["reused_seeds"] == [0, 1, 2]
    assert calls == []
    assert len(store.results(RESULT_KIND, "resumable")) == 2  # history: both results kept


def test_seeds_are_not_reused_across_versions_or_budgets(store):
    calls: list = []
    run_claim(fake_claim("v", [1.0], calls=calls), "quick", store)
    run_claim(fake_claim("v", [1.0], calls=calls, version=2), "quick", store)
    run_claim(fake_claim("v", [1.0], calls=calls, version=2), "smoke", store)
    assert calls == [("quick", 0), ("quick", 0), ("smoke", 0)]


def test_two_checks_at_once_keep_both_results(store):
    gate = threading.Barrier(2)

    def measure(budget: str, seed: int, ctx) -> dict:
        gate.wait(timeout=30)  # both checks are measuring at the same time
        return {"gap": 1.0}

    def measure_in(results: list) -> None:
        c = fake_claim("concurrent", [1.0])
        c = type(c)(**{**c.__dict__, "measure": measure})
        with RunStore.open(store.path) as s:
            results.append(run_claim(c, "quick", s))

    results: list = []
    threads = [threading.Thread(target=measure_in, args=(results,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert [p["verdict"] for p in results] == ["supported", "supported"]
    rows = store.results(RESULT_KIND, "concurrent")
    assert sorted(r["id"] for r in rows) == sorted(p["result_id"] for p in results)
    plots = {r["payload"]["plot"] for r in rows}
    assert len(plots) == 2 and all(open(p, "rb").read(8) == PNG for p in plots)


def test_unknown_budget(store):
    with pytest.raises(ImoError, match="choose one of: smoke, quick, full"):
        run_claim(fake_claim("x", [1.0]), "huge", store)


def test_evidence_prefers_full_then_quick_and_marks_smoke(store):
    c = fake_claim("ev", [1.0, 1.0, 1.0], plot=False)
    assert evidence(store.results(RESULT_KIND, "ev"), c) is None
    run_claim(c, "smoke", store)
    assert evidence(store.results(RESULT_KIND, "ev"), c)["payload"]["budget"] == "smoke"
    run_claim(c, "full", store)
    run_claim(c, "quick", store)  # newer, but weaker evidence than the full result
    assert evidence(store.results(RESULT_KIND, "ev"), c)["payload"]["budget"] == "full"
    # a changed experiment (new version) has no evidence until it is checked again
    assert evidence(store.results(RESULT_KIND, "ev"), fake_claim("ev", [1.0], version=2)) is None


# --- the commands, in process (with the fake registry) and through `python -m imo` -------------

app = typer.Typer()
app.command("claims")(claims_command)
app.command("check")(check_command)
app.command("report")(report_command)


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_check_runs_every_claim_and_prints_the_table(fake_registry):
    fake_registry(fake_claim("good", [0.5]))
    fake_registry(fake_claim("bad", [-0.5]))
    fake_registry(fake_claim("broken", [0.0], fail_at=lambda s: ValueError("no corpus")))
    res = invoke("check", "--all")
    assert res.exit_code == 0, res.output  # refuted and error verdicts are results, not failures
    lines = res.stdout.strip().splitlines()
    assert lines[0].split("\t") == ["id", "claim", "verdict", "figure", "budget", "seconds"]
    rows = {line.split("\t")[0]: line.split("\t") for line in lines[1:]}
    assert rows["good"][2:5] == ["supported", "gap = 0.5", "quick"]
    assert rows["bad"][2] == "refuted"
    assert rows["broken"][2:4] == ["error", "ValueError: no corpus"]
    assert "good: supported" in res.stderr  # one progress line per claim when piped
    assert invoke("check", "good", "--quiet", "--full").stderr == ""


def test_check_refuses_bad_arguments(fake_registry):
    fake_registry(fake_claim("alpha", [1.0]))
    fake_registry(fake_claim("beta", [1.0]))
    res = invoke("check", "alpha", "nope")
    assert isinstance(res.exception, ConfigError)
    assert "unknown claim 'nope'; choose one of: alpha, beta" in str(res.exception)
    with RunStore.open() as s:
        assert s.results(RESULT_KIND) == []  # a typo costs no measurement
    assert "alpha, beta" in str(invoke("check").exception)
    assert "one budget" in str(invoke("check", "alpha", "--quick", "--full").exception)
    assert "not both" in str(invoke("check", "alpha", "--all").exception)


def _rows(res) -> dict:
    return {r.split("\t")[0]: r.split("\t") for r in res.stdout.strip().splitlines()[1:]}


def test_claims_table_shows_records_and_previews(fake_registry):
    fake_registry(fake_claim("checked", [0.5]))
    fake_registry(fake_claim("smoked", [0.5]))
    fake_registry(fake_claim("never", [0.5]))
    fake_registry(fake_claim("recorded", [0.5, 0.6, 0.55]))
    assert invoke("check", "checked", "-q").exit_code == 0
    assert invoke("check", "smoked", "--smoke", "-q").exit_code == 0
    res = invoke("check", "recorded", "--full", "--record", "--allow-dirty", "-q")
    assert res.exit_code == 0, res.output
    res = invoke("claims")
    assert res.exit_code == 0, res.output
    rows = _rows(res)
    # a quick result is never the verdict: it is a preview beside "no full evidence yet"
    assert rows["checked"][2:5] == ["no full evidence yet", "-", "supported (quick)"]
    assert rows["smoked"][2:5] == ["no full evidence yet", "-", "supported (smoke) (smoke)"]
    assert rows["never"][2:] == ["no full evidence yet", "-", "-", "-"]
    assert rows["never"][1] == "the fake claim never holds"
    assert rows["recorded"][2] == "supported" and rows["recorded"][3].startswith("gap = 0.55 [")


def test_record_needs_full_and_a_clean_src(fake_registry, monkeypatch):
    from imo.claims import provenance

    fake_registry(fake_claim("rec", [0.5, 0.6, 0.55]))
    assert "need --full" in str(invoke("check", "rec", "--record").exception)
    monkeypatch.setattr(provenance, "src_dirty", lambda: ["src/imo/x.py"])
    res = invoke("check", "rec", "--full", "--record")
    assert isinstance(res.exception, ImoError) and "--allow-dirty" in str(res.exception)
    with RunStore.open() as s:
        assert s.results(RESULT_KIND) == []  # refused before any measurement
    res = invoke("check", "rec", "--full", "--record", "--allow-dirty", "-q")
    assert res.exit_code == 0, res.output
    from imo.claims.evidence import record_path

    rec = json.loads(record_path("rec").read_text())
    assert rec["verdict"] == "supported" and rec["provenance"]["allow_dirty"] is True
    assert [f["gap"] for f in rec["figures"]] == [0.5, 0.6, 0.55]
    for key in ("commit", "fingerprint", "machine", "seeds", "budget", "date", "minutes"):
        assert key in rec["provenance"], key
    # the same code's record is replaced only with --force
    res = invoke("check", "rec", "--full", "--record", "--allow-dirty", "-q")
    assert "--force" in str(res.exception)


def test_reproduce_agrees_and_flags_a_disagreement(fake_registry, monkeypatch):
    fake_registry(fake_claim("rep", [0.5, 0.6, 0.55]))
    assert "no recorded evidence" in str(invoke("check", "rep", "--reproduce").exception)
    assert invoke("check", "rep", "--full", "--record", "--allow-dirty", "-q").exit_code == 0
    res = invoke("check", "rep", "--reproduce", "-q")
    assert res.exit_code == 0 and "Agrees." in res.stdout, res.output
    # the same claim now measuring something else: the reproduction disagrees, exit 1
    monkeypatch.setitem(registry.CLAIMS._items, "rep", fake_claim("rep", [-0.5, -0.6, -0.55]))
    res = invoke("check", "rep", "--reproduce", "-q")
    assert res.exit_code == 1 and "Disagrees: another verdict" in res.stdout, res.output


def imo(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, paths.STORE_ENV: str(paths.store_file())}
    return subprocess.run([sys.executable, "-m", "imo", *args], env=env, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=120)  # fmt: skip


def test_cli_unknown_claim_exits_2_listing_the_ids():
    res = imo("check", "nope")
    assert res.returncode == 2
    assert "unknown claim 'nope'" in res.stderr
    load_all()
    assert all(name in res.stderr for name in registry.CLAIMS.names())
    assert "Traceback" not in res.stderr


def test_cli_claims_lists_every_registered_claim():
    res = imo("claims")
    assert res.returncode == 0, res.stderr
    load_all()
    listed = [line.split("\t")[0] for line in res.stdout.strip().splitlines()[1:]]
    # as sets: the order is the registration order, which import order in this process decides
    assert sorted(listed) == sorted(registry.CLAIMS.names())


def test_quick_checks_measure_afresh_each_time(store):
    calls: list = []
    c = fake_claim("fresh", [1.0], calls=calls)
    run_claim(c, "quick", store)
    run_claim(c, "quick", store)
    assert calls == [("quick", 0), ("quick", 0)]
