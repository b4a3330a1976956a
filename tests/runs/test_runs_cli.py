"""`imo runs` through the real CLI: list, --ids, show, compare, rm, and errors as one line."""

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import imo.cli
from imo import paths
from imo.errors import ImoError
from imo.runs.store import RunStore

# main() mounts the sub-apps; CliRunner calls the app directly, so mount them once here
if not any(g.name == "runs" for g in imo.cli.app.registered_groups):
    imo.cli._mount()

runner = CliRunner()


def invoke(*args: str, input: str | None = None):
    return runner.invoke(imo.cli.app, list(args), input=input)


def imo_subprocess(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, paths.STORE_ENV: str(paths.store_file())}
    return subprocess.run(
        [sys.executable, "-m", "imo", *args],
        env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60,
    )  # fmt: skip


@pytest.fixture
def two_runs():
    with RunStore.open() as s:
        a = s.create_run("train", "tiny-rope-sdpa-3fa2c1", {"model": {"n_layer": 2}, "lr": 0.003})
        for step in range(0, 100, 10):
            s.log_metrics(a, step, {"train/bpb": 4.0 - step / 50, "lr": 0.003})
        s.log_metrics(a, 99, {"val/bpb": 2.5})
        s.finish(a, {"val_bpb": 2.5, "tokens": 12800})
        b = s.create_run("prune", "tiny-pruned-9b1c00", {"sparsity": 0.5}, parent=a)
        s.log_metrics(b, 0, {"val/bpb": 2.75})
        s.finish(b, {"val_bpb": 2.75, "sparsity": 0.5})
    return a, b


def test_list_table_newest_first(two_runs):
    a, b = two_runs
    res = invoke("runs")
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()  # not a terminal: plain TSV, in full
    assert lines[0].split("\t")[:6] == ["id", "name", "kind", "status", "steps", "val bpb"]
    first, second = (line.split("\t") for line in lines[1:])
    assert first[:6] == [b, "tiny-pruned-9b1c00", "prune", "finished", "0", "2.7500"]
    assert second[:6] == [a, "tiny-rope-sdpa-3fa2c1", "train", "finished", "99", "2.5000"]
    assert invoke("runs", "--kind", "train").stdout.count("\n") == 2


def test_ids(two_runs):
    a, b = two_runs
    res = invoke("runs", "--ids")
    assert res.exit_code == 0 and res.stdout.split() == [b, a]
    assert invoke("runs", "--ids", "--kind", "prune").stdout.split() == [b]


def test_empty_store_says_so():
    res = invoke("runs")
    assert res.exit_code == 0 and res.stdout == "" and "no runs" in res.stderr


def test_show_by_prefix_writes_loss_png(two_runs):
    a, _ = two_runs
    res = invoke("runs", "show", a[:5])
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert a in out and "tiny-rope-sdpa-3fa2c1" in out and "n_layer: 2" in out
    assert "val_bpb: 2.5000" in out
    png = paths.run_dir(a) / "loss.png"
    assert f"loss curve: {png}" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_show_by_name_and_parent(two_runs):
    a, b = two_runs
    res = invoke("runs", "show", "tiny-pruned-9b1c00")
    assert res.exit_code == 0, res.output
    assert f"parent   {a}" in res.stdout and "sparsity: 0.5000" in res.stdout


def test_compare(two_runs, tmp_path):
    a, b = two_runs
    res = invoke("runs", "compare", a, b[:6])
    assert res.exit_code == 0, res.output
    rows = {r.split("\t")[0]: r.split("\t")[1:] for r in res.stdout.splitlines() if "\t" in r}
    assert rows[""] == [a, b]
    assert rows["val_bpb"] == ["2.5000", "2.7500"]
    assert rows["tokens"] == ["12800", "-"] and rows["sparsity"] == ["-", "0.5000"]
    png = paths.store_dir() / f"compare-{a}-{b}.png"
    assert f"loss curves: {png}" in res.stdout and png.stat().st_size > 0
    out = tmp_path / "cmp" / "x.png"
    res = invoke("runs", "compare", a, b, "-o", str(out))
    assert res.exit_code == 0 and out.read_bytes()[:4] == b"\x89PNG"


def test_rm_yes(two_runs):
    a, b = two_runs
    res = invoke("runs", "rm", b[:4], "--yes")
    assert res.exit_code == 0, res.output
    assert invoke("runs", "--ids").stdout.split() == [a]
    assert not paths.run_dir(b).exists()


def test_rm_without_yes_refuses_without_terminal(two_runs):
    a, _ = two_runs
    res = invoke("runs", "rm", a)
    assert isinstance(res.exception, ImoError) and "--yes" in str(res.exception)
    assert len(invoke("runs", "--ids").stdout.split()) == 2


def test_rm_asks_on_a_terminal(two_runs, monkeypatch):
    a, b = two_runs
    monkeypatch.setattr("imo.runs.cli._interactive", lambda: True)
    res = invoke("runs", "rm", a, input="n\n")
    assert res.exit_code != 0 and len(invoke("runs", "--ids").stdout.split()) == 2
    res = invoke("runs", "rm", a, input="y\n")
    assert res.exit_code == 0 and invoke("runs", "--ids").stdout.split() == [b]


def test_unknown_run_is_one_line_exit_2(two_runs):
    res = imo_subprocess("runs", "show", "zzz")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "imo: error: no run matches 'zzz'; `imo runs` lists them"
    ]
    assert res.stdout == ""


def test_subprocess_list_and_rm_refusal(two_runs):
    a, b = two_runs
    res = imo_subprocess("runs", "--ids")
    assert res.returncode == 0 and res.stdout.split() == [b, a]
    res = imo_subprocess("runs", "rm", a)  # stdin is not a terminal
    assert res.returncode == 2 and "Traceback" not in res.stderr and "--yes" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_listing_labels_the_bytes_each_bpb_was_scored_on_and_tags(two_runs):
    a, b = two_runs
    with RunStore.open() as s:
        s.finish(b, {"val_bpb": 2.75, "sparsity": 0.5, "eval_bytes": 65536})
        c = s.create_run("train", "mine", {"lr": 0.01}, tags=["baseline", "rope"])
    lines = [line.split("\t") for line in invoke("runs").stdout.strip().splitlines()]
    head = lines[0]
    col = {name: head.index(name) for name in ("id", "val bpb", "scored on", "tags")}
    by_id = {row[col["id"]]: row for row in lines[1:]}
    assert by_id[a][col["scored on"]] == "val (all)" and by_id[b][col["scored on"]] == "val[:65,536]"
    assert by_id[c][col["tags"]] == "baseline,rope" and by_id[c][col["scored on"]] == "-"
    assert invoke("runs", "--ids", "--tag", "rope").stdout.split() == [c]


def test_unknown_kind_exits_2_listing_the_kinds(two_runs):
    res = imo_subprocess("runs", "--kind", "bogus")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "unknown run kind 'bogus'" in res.stderr and "train, prune, quantize" in res.stderr
    assert invoke("runs", "--kind", "reason-policy").exit_code == 0  # a known kind with no runs


def test_compare_shows_steps_once_and_config_differences(two_runs):
    a, _ = two_runs
    with RunStore.open() as s:
        c = s.create_run("train", "other", {"model": {"n_layer": 4}, "lr": 0.003})
        s.log_metrics(c, 50, {"train/bpb": 3.0})
        s.finish(c, {"val_bpb": 2.4, "steps": 50})
    res = invoke("runs", "compare", a, c)
    assert res.exit_code == 0, res.output
    firsts = [r.split("\t")[0] for r in res.stdout.splitlines() if "\t" in r]
    assert firsts.count("steps") == 1
    rows = {r.split("\t")[0]: r.split("\t")[1:] for r in res.stdout.splitlines() if "\t" in r}
    assert rows["steps"] == ["99", "50"]
    assert rows["config model.n_layer"] == ["2", "4"] and "config lr" not in rows
