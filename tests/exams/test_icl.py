"""imo.exams.icl: the sequences, the prefix-matching measurement (a perfect induction pattern
scores 1, a head at a fixed distance does not), head ablation, the regression baselines, a tiny
seeded run of each exam (deterministic), and `imo exam icl` with its plots and clean errors."""

import pytest
import torch

from imo.cli import main
from imo.exams.icl import (
    ALPHABETS,
    InductionSize,
    RegressionSize,
    ablate,
    averaging,
    icl_score,
    induction_exam,
    least_squares,
    linear_tasks,
    matching_sequences,
    nearest_neighbours,
    normalised_error,
    prefix_matching,
    regression_exam,
    repeated,
)
from imo.model.config import ModelConfig
from imo.model.families import build_model
from imo.model.hooks import hooks, run_with_cache
from imo.runs.store import RunStore

TINY = dict(n_layer=2, n_embd=16, n_head=2, context_length=16, steps=6, batch_size=4, eval_every=3, eval_rows=8)


def tiny_model(T=16):
    torch.manual_seed(0)
    return build_model(ModelConfig(n_layer=2, n_embd=16, n_head=2, context_length=T, pos="rope", bias=False)).eval()


def test_repeated_sequences_repeat_with_their_period():
    seq = repeated(torch.Generator().manual_seed(0), 50, 33, 8, 16)
    assert seq.shape == (50, 33) and set(seq.unique().tolist()) <= set(ALPHABETS["alnum"].tolist())
    for row in seq:
        p = next(p for p in range(8, 17) if torch.equal(row[p:], row[:-p]))  # some period in [8, 16] holds
        assert p >= 8


def test_matching_sequences_have_distinct_symbols_in_a_period():
    seq, period = matching_sequences(torch.Generator().manual_seed(1), 20, 32)
    for row, p in zip(seq, period.tolist(), strict=True):
        assert 8 <= p <= 16 and len(set(row[:p].tolist())) == p and torch.equal(row[p:], row[:-p])


def _pattern_hook(make):
    return {"blocks.1.attn.hook_pattern": make}


def test_a_perfect_induction_pattern_scores_one_and_a_fixed_distance_does_not():
    model = tiny_model(32)
    seq, period = matching_sequences(torch.Generator().manual_seed(2), 16, 32)
    B, T = seq.shape

    def induction(att):  # head 0 of layer 1 attends exactly to the byte after the earlier copy
        att = att.clone()
        for b in range(B):
            p = int(period[b])
            for i in range(p, T):
                att[b, 0, i] = 0
                att[b, 0, i, i - p + 1] = 1
        return att

    def fixed(att):  # head 1 attends at distance 11 wherever it can
        att = att.clone()
        for i in range(11, T):
            att[:, 1, i] = 0
            att[:, 1, i, i - 11] = 1
        return att

    with hooks(model, _pattern_hook(lambda a: fixed(induction(a)))):
        pm = prefix_matching(model, seq, period)
    assert pm.shape == (2, 2)
    assert pm[1, 0] == pytest.approx(1.0)
    assert pm[1, 1] < 0.3  # only the rows whose period is 12 match it
    assert float(pm[0].max()) < 0.5  # an untrained layer 0 does not


def test_ablating_a_head_zeroes_its_output_only():
    model = tiny_model()
    x = repeated(torch.Generator().manual_seed(0), 3, 16, 8, 8)
    with hooks(model, ablate(1, 0)):
        _, cache = run_with_cache(model, x, ["blocks.1.attn.hook_z", "blocks.0.attn.hook_z"])
    _, plain = run_with_cache(model, x, ["blocks.1.attn.hook_z", "blocks.0.attn.hook_z"])
    z = cache["blocks.1.attn.hook_z"]
    assert torch.all(z[:, 0] == 0) and torch.equal(z[:, 1], plain["blocks.1.attn.hook_z"][:, 1])
    assert torch.equal(cache["blocks.0.attn.hook_z"], plain["blocks.0.attn.hook_z"])


def test_icl_score_is_late_minus_early():
    bits = torch.zeros(16)
    bits[1:7] = 5.0
    bits[-8:] = 1.0
    assert icl_score(bits) == pytest.approx(-4.0)


def test_induction_exam_is_seeded_and_complete():
    a = induction_exam(InductionSize(**TINY), seed=3)
    b = induction_exam(InductionSize(**TINY), seed=3)
    assert a == b
    assert [r["step"] for r in a["curve"]] == [0, 3, 6]
    assert len(a["curve"][0]["prefix_matching"]) == 2 and len(a["curve"][0]["prefix_matching"][0]) == 2
    for key in ("pre_drop_score", "final_score", "fall_first_20pct", "drop_step", "top_head", "ablated_score",
                "give_back", "control_give_back"):
        assert key in a
    assert a["final_score"] == a["curve"][-1]["icl_score"]


def test_least_squares_is_exact_from_d_points_and_the_baselines_are_what_they_say():
    g = torch.Generator().manual_seed(0)
    xs, ys = linear_tasks(g, 200, 12, 3)
    err = normalised_error(least_squares(xs, ys), ys, 3)
    assert max(err[3:]) < 1e-8 and err[1] > 0.3
    assert normalised_error(torch.zeros_like(ys), ys, 3)[5] == pytest.approx(1.0, abs=0.2)  # predicting 0
    # 3-NN: the mean y of the 3 closest earlier x
    x = torch.tensor([[[0.0], [10.0], [1.0], [2.0], [0.5]]])
    y = torch.tensor([[1.0, 100.0, 2.0, 3.0, 0.0]])
    assert nearest_neighbours(x, y)[0, 4] == pytest.approx((1 + 2 + 3) / 3)
    assert nearest_neighbours(x, y)[0, 1] == pytest.approx(1.0)  # one earlier point: its y
    # averaging: w = mean(y_j x_j), prediction w . x
    assert averaging(x, y)[0, 2] == pytest.approx((1 * 0 + 100 * 10) / 2 * 1.0)


def test_regression_exam_tiny_run():
    size = RegressionSize(dim=2, points=5, n_layer=1, n_embd=16, n_head=2, steps=3, batch_size=8, test_prompts=20,
                          scales=(1.0, 3.0))
    out = regression_exam(size, seed=0)
    assert out == regression_exam(size, seed=0)
    assert set(out["errors"]) == {"1", "3"} and out["k"] == 4
    assert set(out["at_2d"]) == {"transformer", "least squares", "3-NN", "averaging"}
    assert all(len(e) == 5 for e in out["errors"]["3"].values())
    assert out["errors"]["3"]["least squares"][4] < 1e-6  # exact out of range too


def test_cli_runs_writes_its_plot_and_refuses_bad_input(tmp_path, capsys):
    plot = tmp_path / "ind.png"
    tiny = ["exam", "icl", "induction", "--layers", "1", "--width", "16", "--heads", "2", "--context", "16",
            "--steps", "4", "--batch", "4", "--eval-every", "2", "-q", "--plot", str(plot)]
    with pytest.raises(SystemExit) as e:
        main(tiny)
    assert e.value.code == 0 and plot.read_bytes()[:4] == b"\x89PNG"
    assert "phase change and ablation" in capsys.readouterr().out
    assert RunStore.open().results("exam-icl-induction")[0]["payload"]["size"]["steps"] == 4
    with pytest.raises(SystemExit) as e:
        main(tiny)  # the plot exists
    assert e.value.code == 2 and "--force" in capsys.readouterr().err
    reg = ["exam", "icl", "regression", "--dim", "2", "--points", "5", "--layers", "1", "--width", "16",
           "--heads", "2", "--steps", "2", "--batch", "4", "--test-prompts", "10", "-q", "--plot",
           str(tmp_path / "reg.png")]
    with pytest.raises(SystemExit) as e:
        main(reg)
    assert e.value.code == 0 and (tmp_path / "reg.png").exists()
    for bad, says in ((["induction", "--context", "10"], "too short"), (["induction", "--pos", "x"], "position"),
                      (["induction", "--width", "15"], "multiple"), (["regression", "--points", "3"], "2 * dim"),
                      (["regression", "--scales", "1,-2"], "positive"), (["regression", "--scales", "a"], "--scales"),
                      (["induction", "--plot", str(tmp_path / "no" / "x.png")], "no folder")):
        with pytest.raises(SystemExit) as e:
            main(["exam", "icl", *bad])
        err = capsys.readouterr().err
        assert e.value.code == 2 and says in err and "Traceback" not in err, (bad, err)
