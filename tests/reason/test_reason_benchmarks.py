"""benchmarks/reason.py's tokens/s count and the issue-22 scripts' bad input (the scripts, not their figures)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

from imo.reason.verifiers import load_verifier

from .mock import PROBLEM, MockPolicy

ROOT = Path(__file__).resolve().parents[2]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_written_tokens_are_what_the_policy_wrote():
    bench = load_script("reason")
    for method in ("greedy", "best-of-n", "beam", "tot"):
        pol = MockPolicy(seed=1)
        texts, acc, spent, written = bench.solve_all(pol, [PROBLEM, PROBLEM], method, load_verifier("vote", None, pol),
                                                    120, seed=0)
        assert written == pol.generated > 0, method
        assert len(texts) == 2 and 0.0 <= acc <= 1.0
        assert spent >= written / 2  # the budget counts at least what was written (per problem)


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), *args], capture_output=True,
                          text=True, env=env, timeout=120)


def test_bad_options_exit_2_before_any_work():
    for name, args, says in (("reason_targets", ["--iterate-method", "greedy"], "--iterate-method must be one of"),
                             ("reason_targets", ["--iterate-budget", "0"], "--iterate-budget must be >= 1"),
                             ("reason", ["--shape", "2by64"], "--shape must be LAYERSxWIDTH"),
                             ("reason", ["--task", "nope"], "nope"),
                             ("reason_probe", ["--big", "4by128"], "--big must be LAYERSxWIDTH")):
        r = run_script(name, *args)
        assert r.returncode == 2, (name, args, r.stderr)
        assert says in r.stderr and "Traceback" not in r.stderr
