"""The "LLM as physicist" row: the text format reads back to the states it wrote, bad answers do
not parse, the training rows put their loss on the answer only, and a tiny seeded run trains,
repeats and scores every test scene (unparsed answers as the constant-velocity guess)."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("pymunk")

from imo_cli import imo as run  # noqa: E402  (the CLI in-process; exit code)

from imo.errors import ConfigError  # noqa: E402
from imo.physics import baselines, llm  # noqa: E402
from imo.physics.scenes import SceneConfig, generate  # noqa: E402

CFG = SceneConfig(balls=3, seconds=2.6)  # 0.5 s of context + the 2 s horizon fit


def test_format_round_trips_to_the_millimetre():
    s = generate(3, CFG)
    for h in baselines.HORIZONS_S:
        p, a = llm.prompt(s, h), llm.answer(s, h)
        assert p.endswith(llm.MARK) and p.count(b"\n") == 7  # header + 6 state lines (0.0 .. 0.5 s)
        assert p.startswith(b"R") and f" H{round(h * 100):03d}\n".encode() in p
        k = 30 + round(h * 60)
        got = llm.parse(a, 3)
        assert got is not None and np.abs(got - s.states[k, :, :2]).max() <= 0.0005 + 1e-9
        lines = p.split(b"\n")[1:-1]
        first = llm.parse(lines[0], 3)
        assert np.abs(first - s.states[0, :, :2]).max() <= 0.0005 + 1e-9
        assert np.abs(llm.parse(lines[-1], 3) - s.states[30, :, :2]).max() <= 0.0005 + 1e-9
    assert len({len(llm.prompt(generate(i, CFG), 1.0)) for i in range(5)}) == 1  # fixed width


@pytest.mark.parametrize("bad", [b"", b"\n", b"0001 0002 0003 0004 0005", b"0001 0002 0003 0004 0005 0006 0007",
                                 b"0001 0002 0003 0004 0005 006", b"0001 0002 0003 0004 0005 00060",
                                 b"0001  0002 0003 0004 0005 0006", b"0001 0002 0003 0004 0005 000x",
                                 b" 0001 0002 0003 0004 0005 0006", b"-001 0002 0003 0004 0005 0006", "0001 0002 \u00e9"])
def test_bad_answers_do_not_parse(bad):
    assert llm.parse(bad, 3) is None


def test_good_answer_parses_with_or_without_newline():
    want = np.array([[0.001, 0.002], [0.003, 0.004], [9.999, 0.0]])
    for text in (b"0001 0002 0003 0004 9999 0000", b"0001 0002 0003 0004 9999 0000\n", "0001 0002 0003 0004 9999 0000"):
        assert np.allclose(llm.parse(text, 3), want)


def test_training_rows_carry_loss_on_the_answer_only():
    scenes = [generate(1_000_000 + i, CFG) for i in range(2)]
    x, y = llm.example_batch(scenes, torch.Generator().manual_seed(0), 4)
    assert x.shape == y.shape and x.shape[1] == len(llm.prompt(scenes[0], 1.0)) + 30 - 1
    for xr, yr in zip(x.tolist(), y.tolist(), strict=True):
        mark = xr.index(llm.MARK[0])
        assert all(t == llm.IGNORE for t in yr[:mark])
        assert bytes(yr[mark:]).endswith(b"\n") and llm.parse(bytes(yr[mark:]), 3) is not None
        assert yr[mark:] == xr[mark + 1:] + [ord("\n")]


def test_tiny_run_repeats_and_scores_every_scene():
    train = [generate(1_000_000 + i, CFG) for i in range(3)]
    test = [generate(i, CFG) for i in range(3)]
    cfg = llm.LLMConfig(n_layer=1, n_head=2, n_embd=32, steps=3, batch=4, warmup=1)
    a, b = llm.fit(train, cfg), llm.fit(train, cfg)
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    assert a.steps == 3 and a.parameters > 0
    ev = llm.forecast_errors(a, test)
    assert set(ev["errors"]) == set(baselines.HORIZONS_S) == set(ev["parsed"])
    cv = baselines.forecast_errors(test)["constant velocity"]
    for h, share in ev["parsed"].items():
        assert 0 <= share <= 1 and np.isfinite(ev["errors"][h])
        if share == 0:  # three steps of training write no well-formed answer: scored as constant velocity
            assert ev["errors"][h] == pytest.approx(cv[h])
    assert any(share == 0 for share in ev["parsed"].values())
    assert ev["unparsed_examples"] and {"seed", "horizon_s", "answer"} <= set(ev["unparsed_examples"][0])


def test_bad_configs_are_refused():
    with pytest.raises(ConfigError, match="n_embd"):
        llm.LLMConfig(n_embd=30, n_head=4).check()
    with pytest.raises(ConfigError, match="steps"):
        llm.LLMConfig(steps=0).check()
    with pytest.raises(ConfigError, match="context"):
        llm.fit([generate(1, SceneConfig(balls=8, seconds=2.6))], llm.LLMConfig(steps=1))
    with pytest.raises(ConfigError, match="shorter"):
        llm.fit([generate(1, SceneConfig(balls=3, seconds=1.0))], llm.LLMConfig(steps=1))


def test_exam_cli_llm_row(capsys, tmp_path):
    out = tmp_path / "p.json"
    assert run("exam", "physics", "--scenes", "2", "--seconds", "2.6", "--train-scenes", "2", "--llm-steps", "2",
               "--contact-train", "0", "-o", str(out)) == 0
    text = capsys.readouterr().out
    assert "byte LM (text)" in text and "parsed" in text
    row = json.loads(out.read_text())["llm"]
    assert row["steps"] == 2 and set(row["forecast_error_radii"]) == {"0.25", "0.5", "1.0", "2.0"}
    for args, msg in ((("--llm-steps", "-1"), "must be >= 0"), (("--llm-steps", "2", "--balls", "4"), "needs --balls 3"),
                      (("--llm-steps", "2", "--seconds", "2"), "needs --seconds 2.5")):
        assert run("exam", "physics", "--scenes", "2", *args) == 2
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err
