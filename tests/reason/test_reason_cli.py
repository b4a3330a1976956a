"""`imo reason` end to end on a tiny policy, and its bad-input contract (one line, exit code 2)."""

import pytest

from imo.cli import main

TINY = ["--task", "arith", "--difficulty", "1", "--n-train", "150", "--n-test", "4", "--layers", "1",
        "--width", "32", "--context", "64", "--steps", "15", "--batch-size", "8", "-q"]


def run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(["reason", *args])
    out = capsys.readouterr()
    return e.value.code or 0, out.out, out.err


def ok(capsys, *args: str) -> str:
    code, out, err = run(capsys, *args)
    assert code == 0, err
    return out


def user_error(capsys, *args: str) -> str:
    code, out, err = run(capsys, *args)
    assert code == 2 and err.startswith("imo: error:") and "Traceback" not in err, (code, err)
    return err


def test_reason_end_to_end_and_bad_input(capsys, tmp_path):
    policy = ok(capsys, "train", *TINY).split()[-1]
    orm = ok(capsys, "train-verifier", policy, "--kind", "orm", "--problems", "3", "--samples", "2",
             "--steps", "3", "-q").split()[-1]
    out = ok(capsys, "solve", policy, "--method", "best-of-n", "--verifier", f"orm:{orm}", "--problem", "7+5",
             "--budget", "80")
    assert out.startswith("7+5\n") and "tokens:" in out
    out = ok(capsys, "solve", policy, "--method", "mcts", "--verifier", "oracle", "--n", "2", "--budget", "120",
             "--rollouts", "--expand", "2", "--temperature", "0.7")
    assert "accuracy" in out and "on 2 problems" in out
    png = tmp_path / "curve.png"
    out = ok(capsys, "curve", policy, "--methods", "best-of-n", "--multiples", "2", "--n", "2", "--out", str(png), "-q")
    assert png.read_bytes()[:4] == b"\x89PNG" and "best-of-n" in out
    assert "exists" in user_error(capsys, "curve", policy, "--n", "2", "--out", str(png))
    out = ok(capsys, "iterate", policy, "--rounds", "1", "--problems", "3", "--epochs", "1", "-q")
    assert "greedy test accuracy" in out or "greedy" in out

    assert "choose one of" in user_error(capsys, "train", "--task", "nope")
    assert "choose one of: greedy, best-of-n" in user_error(capsys, "solve", policy, "--method", "dfs")
    assert "choose one of: oracle" in user_error(capsys, "solve", policy, "--verifier", "nope")
    assert "too small" in user_error(capsys, "solve", policy, "--method", "greedy", "--budget", "5", "--n", "1")
    assert "not a policy" in user_error(capsys, "solve", orm, "--n", "1")
    assert "not a" in user_error(capsys, "solve", policy, "--verifier", f"prm:{policy}", "--n", "1")
    assert "needs its run" in user_error(capsys, "solve", policy, "--verifier", "orm", "--n", "1")
    assert "cannot read problem" in user_error(capsys, "solve", policy, "--problem", "seven plus five")
    assert "not trained to revise" in user_error(capsys, "solve", policy, "--method", "revision",
                                                 "--verifier", "oracle", "--n", "1")


def test_old_level_name_still_loads_and_maps(capsys):
    from dataclasses import asdict

    from imo.errors import ConfigError
    from imo.reason.policy import PolicyConfig

    stored = asdict(PolicyConfig(task="arith", difficulty=3))
    stored["level"] = stored.pop("difficulty")  # a config stored before the rename
    assert PolicyConfig.from_dict(stored).difficulty == 3
    with pytest.raises(ConfigError, match="both level"):
        PolicyConfig.from_dict({**stored, "difficulty": 3})
    assert "not both" in user_error(capsys, "train", "--level", "1", "--difficulty", "3")
    assert "no difficulty 9" in user_error(capsys, "train", "--task", "arith", "--level", "9")


def test_policy_training_stops_cleanly_and_resumes_exactly(tmp_path):
    from imo.reason.policy import PolicyConfig, TrainingStopped, train_policy
    from imo.runs.store import RunStore

    store = RunStore.open(tmp_path / "store.sqlite")
    cfg = PolicyConfig(task="arith", difficulty=1, n_train=100, n_test=4, n_layer=1, n_embd=32,
                       context_length=64, steps=12, batch_size=8, warmup=2)
    whole = train_policy(cfg, store, reuse=False)
    with pytest.raises(TrainingStopped) as e:
        train_policy(cfg, store, reuse=False, stop_at=5)
    part = e.value.run_id
    assert store.get(part)["status"] == "interrupted"
    assert train_policy(cfg, store, resume=part) == part
    a, b = store.get(whole)["figures"], store.get(part)["figures"]
    assert b["steps"] == 12 and b["loss_bits"] == pytest.approx(a["loss_bits"], abs=1e-6)
    assert b["greedy_test_acc"] == a["greedy_test_acc"]
    assert store.metrics(part, "train/bpb")  # the loop's metrics are in the store
    with pytest.raises(Exception, match="has finished"):
        train_policy(cfg, store, resume=part)


def test_policy_and_verifier_reuse_is_keyed_on_the_code_fingerprint(tmp_path):
    from imo.reason.policy import PolicyConfig, train_policy
    from imo.reason.verifiers import VerifierConfig, train_verifier
    from imo.runs.store import RunStore

    store = RunStore.open(tmp_path / "store.sqlite")
    cfg = PolicyConfig(task="arith", difficulty=1, n_train=60, n_test=4, n_layer=1, n_embd=16,
                       context_length=64, steps=3, batch_size=4, warmup=1)
    a = train_policy(cfg, store, code_fingerprint="aaaa")
    assert train_policy(cfg, store, code_fingerprint="aaaa") == a  # same code: reused
    b = train_policy(cfg, store, code_fingerprint="bbbb")  # other code: trained afresh
    assert b != a and train_policy(cfg, store) not in (a, b)  # no fingerprint matches neither
    vcfg = VerifierConfig(kind="orm", policy=a, n_problems=4, samples=1, steps=2, batch_size=2)
    v = train_verifier(vcfg, store, code_fingerprint="aaaa")
    assert train_verifier(vcfg, store, code_fingerprint="aaaa") == v
    assert train_verifier(vcfg, store, code_fingerprint="cccc") != v


def test_reason_train_takes_minutes(capsys):
    args = [a for a in TINY if a not in ("--steps", "15")]
    run_id = ok(capsys, "train", *args, "--minutes", "0.02").split()[-1]
    assert run_id
    assert "minutes must be > 0" in user_error(capsys, "train", *args, "--minutes", "0")


def test_subsetsum_trains_and_solves(capsys):
    policy = ok(capsys, "train", "--task", "subsetsum", "--difficulty", "1", "--n-train", "100", "--n-test", "4",
                "--layers", "1", "--width", "32", "--context", "96", "--steps", "5", "--batch-size", "8",
                "-q").split()[-1]
    out = ok(capsys, "solve", policy, "--method", "beam", "--verifier", "oracle", "--problem", "14 3 9 20 7:30",
             "--budget", "400")
    assert out.startswith("14 3 9 20 7:30\n") and "tokens:" in out
    out = ok(capsys, "solve", policy, "--harder", "--n", "2", "--method", "greedy")
    assert "on 2 problems" in out
    assert "held out" in user_error(capsys, "train", "--task", "subsetsum", "--difficulty", "3", "--context", "192")
    assert "no subset" in user_error(capsys, "solve", policy, "--problem", "4 6:5")
