"""`imo reason train-judge`, `calibrate`, `select` and the new verifiers and method end to end on a
tiny countdown policy, and their bad input (one line, exit code 2)."""

from .test_reason_cli import ok, user_error

TINY = ["--task", "countdown", "--difficulty", "1", "--n-train", "150", "--n-test", "6", "--layers", "1",
        "--width", "32", "--context", "96", "--steps", "15", "--batch-size", "8", "-q"]


def test_judge_selfeval_tot_dfs_calibrate_select(capsys, tmp_path):
    policy = ok(capsys, "train", *TINY).split()[-1]
    judged = ok(capsys, "train-judge", policy, "--share", "--problems", "20", "--samples", "2", "--steps", "5",
                "-q").split()[-1]
    judge = ok(capsys, "train-judge", policy, "--separate", "--problems", "20", "--samples", "2", "--steps", "5",
               "-q").split()[-1]
    assert judged != judge != policy
    out = ok(capsys, "solve", judged, "--method", "tot-dfs", "--verifier", "selfeval", "--problem", "3 7 8:29",
             "--budget", "400", "--expand", "3")
    assert out.startswith("3 7 8:29\n") and "expansions" in out
    out = ok(capsys, "solve", policy, "--method", "best-of-n", "--verifier", f"judge:{judge}", "--n", "2")
    assert "on 2 problems" in out
    png = tmp_path / "curve.png"
    out = ok(capsys, "curve", judged, "--methods", "best-of-n,tot-dfs", "--verifier", "selfeval", "--multiples",
             "4", "--n", "2", "--out", str(png), "-q")
    assert png.read_bytes()[:4] == b"\x89PNG" and "tot-dfs" in out and "selfeval" in out
    rel = tmp_path / "rel.png"
    out = ok(capsys, "calibrate", policy, "--verifier", f"judge:{judge}", "--n", "3", "--samples", "2",
             "--out", str(rel))
    assert rel.read_bytes()[:4] == b"\x89PNG" and "ECE" in out
    out = ok(capsys, "select", judged, "--arms", "best-of-n@2,tot-dfs@4", "--bins", "2", "--n", "4", "--fresh", "3")
    assert "fresh problems (3)" in out and "single best arm" in out

    assert "not trained to judge" in user_error(capsys, "solve", policy, "--verifier", "selfeval", "--n", "1")
    assert "not trained on judging" in user_error(capsys, "solve", policy, "--verifier", f"judge:{policy}", "--n", "1")
    assert "exists" in user_error(capsys, "calibrate", policy, "--verifier", f"judge:{judge}", "--out", str(rel))
    assert "no probability" in user_error(capsys, "calibrate", policy, "--verifier", "vote", "--out",
                                          str(tmp_path / "x.png"))
    assert "METHOD@MULTIPLE" in user_error(capsys, "select", judged, "--arms", "tot")
    assert "choose one of" in user_error(capsys, "select", judged, "--arms", "dfs@2")
    assert "multiples must be" in user_error(capsys, "curve", judged, "--multiples", "0", "--out",
                                             str(tmp_path / "y.png"))
    assert "steps must be" in user_error(capsys, "train-judge", policy, "--steps", "0")
