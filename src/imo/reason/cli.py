"""`imo reason ...`: train a policy and its verifiers, solve with search, plot accuracy against
budget, learn from search.

    imo reason train --task arith --difficulty 2
    imo reason train-verifier POLICY --kind prm
    imo reason solve POLICY --method beam --verifier prm:VERIFIER --budget 512
    imo reason curve POLICY --verifier orm:V1 --verifier prm:V2 --out curve.png
    imo reason iterate POLICY --rounds 2
    imo reason train-judge POLICY --share          # the policy judging its own steps: --verifier selfeval
    imo reason solve JUDGED --method tot-dfs --verifier selfeval --problem '4 6 8 13:24'
    imo reason calibrate JUDGED --verifier selfeval --out reliability.png
    imo reason select JUDGED --verifier selfeval --arms best-of-n@4,tot@8,tot-dfs@16
"""

import json
import signal
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from imo.errors import ConfigError

Opt = typer.Option
Arg = typer.Argument

reason_app = typer.Typer(help="Reasoning by search: policy, verifiers, search, expert iteration.",
                         no_args_is_help=True)


def _threads() -> None:
    import torch

    torch.set_num_threads(1)  # tiny models: one thread is fastest and leaves the machine to others


@contextmanager
def _stoppable(resume_hint: str | None):
    """A clean stop (Ctrl-C/SIGTERM) of a training run: the hint, then exit 128 + the signal."""
    from imo.reason.policy import TrainingStopped

    try:
        yield
    except TrainingStopped as e:
        hint = f"; continue with: {resume_hint} {e.run_id}" if resume_hint else ""
        print(f"stopped run {e.run_id}{hint}", flush=True)
        raise typer.Exit(128 + (e.signum or signal.SIGINT)) from None


@reason_app.command("train")
def train_command(
    task: Annotated[str, Opt(help="Step task: arith, countdown, game24, subsetsum.")] = "arith",
    difficulty: Annotated[int, Opt(help="Difficulty (digits for arith, numbers - 2 for countdown, 1-2 for subsetsum: 3-4 are held out).")] = 2,
    n_train: Annotated[int, Opt(help="Training problems with worked solutions.")] = 3000,
    n_test: Annotated[int, Opt(help="Test problems (unseen).")] = 200,
    layers: Annotated[int, Opt(help="Transformer blocks.")] = 2,
    width: Annotated[int, Opt(help="Embedding width.")] = 64,
    heads: Annotated[int, Opt(help="Attention heads.")] = 4,
    context: Annotated[int, Opt(help="Context length in bytes.")] = 128,
    steps: Annotated[int, Opt(help="Optimizer steps.")] = 1000,
    minutes: Annotated[float | None, Opt(help="Train for this long instead of --steps.")] = None,
    batch_size: Annotated[int, Opt(help="Problems per step.")] = 32,
    lr: Annotated[float, Opt(help="Peak learning rate.")] = 3e-3,
    revision: Annotated[float, Opt(help="Share of rows that teach revising a wrong attempt (0 = none).")] = 0.0,
    seed: Annotated[int, Opt(help="Seed of initialisation and batches.")] = 0,
    data_seed: Annotated[int, Opt(help="Seed of the train/test split.")] = 0,
    init_from: Annotated[str | None, Opt(help="Fine-tune this policy run.")] = None,
    resume: Annotated[str | None, Opt(help="Continue this interrupted policy run (its own config).")] = None,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress output.")] = False,
    level: Annotated[int | None, Opt("--level", hidden=True, help="Deprecated name of --difficulty.")] = None,
) -> None:
    """Train a policy on worked step-by-step solutions; prints greedy test accuracy."""
    from imo.reason.policy import PolicyConfig, train_policy
    from imo.runs.store import RunStore

    if level is not None:  # the old spelling (before "level" was kept for zip levels only)
        if difficulty != 2 and difficulty != level:
            raise ConfigError("give --difficulty or its old name --level, not both")
        difficulty = level
    _threads()
    cfg = PolicyConfig(task=task, difficulty=difficulty, n_train=n_train, n_test=n_test, data_seed=data_seed,
                       n_layer=layers, n_embd=width, n_head=heads, context_length=context, steps=steps,
                       batch_size=batch_size, lr=lr, seed=seed, init_from=init_from, revision=revision,
                       minutes=minutes)
    with _stoppable("imo reason train --resume"):
        run_id = train_policy(cfg, RunStore.open(), quiet=quiet, reuse=False, resume=resume)
    print(run_id)


@reason_app.command("train-verifier")
def train_verifier_command(
    policy: Annotated[str, Arg(help="The policy run whose solutions it learns to judge.")],
    kind: Annotated[str, Opt(help="orm (outcome) or prm (process, labels by rollouts).")] = "orm",
    problems: Annotated[int, Opt(help="Training problems to sample solutions for.")] = 300,
    samples: Annotated[int, Opt(help="Sampled solutions per problem.")] = 4,
    rollouts: Annotated[int, Opt(help="PRM: completions from each step that decide its label.")] = 4,
    layers: Annotated[int, Opt(help="Transformer blocks.")] = 2,
    width: Annotated[int, Opt(help="Embedding width.")] = 64,
    steps: Annotated[int, Opt(help="Optimizer steps.")] = 400,
    minutes: Annotated[float | None, Opt(help="Train for this long instead of --steps.")] = None,
    seed: Annotated[int, Opt(help="Seed.")] = 0,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Train an outcome or process reward model on a policy's own samples."""
    from imo.reason.verifiers import VerifierConfig, train_verifier
    from imo.runs.store import RunStore

    _threads()
    cfg = VerifierConfig(kind=kind, policy=policy, n_problems=problems, samples=samples, rollouts=rollouts,
                         n_layer=layers, n_embd=width, steps=steps, seed=seed, minutes=minutes)
    with _stoppable(None):
        print(train_verifier(cfg, RunStore.open(), quiet=quiet, reuse=False))


def _problem(policy, text: str):
    """A problem typed by the user, in the task's prompt format."""
    task = policy.task
    text = text.strip()
    if hasattr(task, "from_text"):  # a task that reads its own problems (subsetsum)
        return task.from_text(text, policy.difficulty)
    try:
        if task.name == "arith":
            import re

            m = re.fullmatch(r"(\d{1,9})([-+*])(\d{1,9})", text)
            a, op, b = int(m[1]), m[2], int(m[3])
            if op == "-" and b > a or op == "*" and not 0 <= b <= 9:
                raise ValueError
            from imo.reason.steps import join
            from imo.tasks import Problem
            from imo.tasks.arithmetic import columns

            steps, answer = columns(a, op, b)
            return Problem(task.name, policy.difficulty, f"{a}{op}{b}\n", str(answer), join(steps, str(answer)),
                           key=text, meta={"a": a, "op": op, "b": b, "steps": steps})
        nums_s, target_s = text.split(":")
        nums, target = [int(x) for x in nums_s.split()], int(target_s)
        if len(nums) < 2 or min(nums) < 1 or target < 1:
            raise ValueError
    except (TypeError, ValueError):
        form = ("A+B, A-B (A >= B) or A*D with one digit D, e.g. 347+285" if task.name == "arith"
                else "numbers then ':' and the target, e.g. '3 7 8:29'")
        raise ConfigError(f"cannot read problem {text!r} for {task.name}; write {form}") from None
    from imo.tasks.countdown import solve

    steps = solve(tuple(sorted(nums)), target)
    from imo.reason.steps import join

    return task._problem(policy.difficulty, nums, target, list(steps or []))


@reason_app.command("solve")
def solve_command(
    run: Annotated[str, Arg(help="Policy run.")],
    method: Annotated[str, Opt(help="greedy, best-of-n, beam, mcts, tot, tot-dfs, revision.")] = "greedy",
    verifier: Annotated[str, Opt(help="oracle, self, vote, orm:RUN, prm:RUN, selfeval or judge:RUN.")] = "self",
    budget: Annotated[int | None, Opt(help="Tokens per problem (policy + verifier). [default: 8 solutions' worth]")] = None,
    problem: Annotated[str | None, Opt(help="One problem, e.g. '347+285' or '3 7 8:29'; else the test set.")] = None,
    n: Annotated[int, Opt(help="Test problems to solve (without --problem).")] = 50,
    harder: Annotated[bool, Opt("--harder", help="Use problems of the next difficulty (held out: never trained on).")] = False,
    temperature: Annotated[float, Opt(help="Sampling temperature of the searches (greedy: 0).")] = 1.0,
    expand: Annotated[int | None, Opt(help="beam/mcts: samples per expansion; tot: proposals per state.")] = None,
    c_uct: Annotated[float, Opt(help="mcts: exploration constant of UCT.")] = 1.0,
    rollouts: Annotated[bool, Opt("--rollouts", help="mcts: value a new node by a rollout to the end.")] = False,
    seed: Annotated[int, Opt(help="Sampling seed.")] = 0,
) -> None:
    """Solve one problem (showing the solution) or many (printing accuracy and tokens spent)."""
    from imo.reason import policy as P
    from imo.reason.core import TokenBudget
    from imo.reason.methods import get_method, run_many
    from imo.reason.search import solution_cost
    from imo.reason.thinking import load
    from imo.runs.store import RunStore

    _threads()
    store = RunStore.open()
    pol = P.load_policy(store, run, seed)
    fn = get_method(method)
    ver = load(verifier, store, pol)
    limit = budget if budget is not None else 8 * solution_cost(pol)
    if not temperature > 0:
        raise ConfigError(f"temperature must be > 0 (greedy is --method greedy), got {temperature}")
    if expand is not None and expand < 1:
        raise ConfigError(f"expand must be >= 1, got {expand}")
    knobs = {"temperature": temperature, "c_uct": c_uct, "rollouts": rollouts}
    if expand is not None:
        knobs["expand" if method not in ("tot", "tot-dfs") else "proposals"] = expand
    if problem is not None:
        p = _problem(pol, problem)
        b = TokenBudget(limit)
        r = fn(pol, p, ver, b, **knobs)
        print(p.prompt + r.text, end="")
        print(f"# {'correct' if r.correct else 'wrong'}  tokens: {b.policy} policy + {b.verifier} verifier "
              f"of {b.limit}  {json.dumps(r.trace)}")
        return
    if n < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    cfg = pol.meta["config"]
    probs = P.harder(cfg, n) if harder else P.problems(cfg)[1][:n]
    if not probs:
        raise ConfigError(f"task {cfg.task} has no difficulty above {cfg.difficulty}")
    if harder:
        pol.difficulty = cfg.difficulty + 1
    out = run_many(pol, probs, method, ver, limit, seed, **knobs)
    print(f"{method} with {verifier}: accuracy {out['accuracy']:.3f} on {out['n']} problems; "
          f"tokens per problem {out['policy_tokens']:.1f} policy + {out['verifier_tokens']:.1f} verifier "
          f"(budget {limit})")


@reason_app.command("curve")
def curve_command(
    run: Annotated[str, Arg(help="Policy run.")],
    verifier: Annotated[list[str] | None, Opt(help="Verifier(s) to search with (repeat the option): oracle, self, vote, orm:RUN, prm:RUN, selfeval, judge:RUN. [default: self]")] = None,
    methods: Annotated[str, Opt(help="Comma-separated methods (greedy, best-of-n, beam, mcts, tot, tot-dfs, revision).")] = "best-of-n,beam,mcts,tot",
    multiples: Annotated[str, Opt(help="Budgets as multiples of one greedy solution's worst case.")] = "1,2,4,8,16",
    n: Annotated[int, Opt(help="Test problems.")] = 100,
    harder: Annotated[bool, Opt("--harder", help="Use problems of the next difficulty (held out: never trained on).")] = False,
    temperature: Annotated[float, Opt(help="Sampling temperature of the searches.")] = 1.0,
    oracle: Annotated[bool, Opt("--oracle/--no-oracle", help="Add best-of-n with the oracle (the upper bound).")] = True,
    out: Annotated[Path, Opt(help="PNG to write.")] = Path("reason-curve.png"),
    force: Annotated[bool, Opt("--force", help="Overwrite --out.")] = False,
    seed: Annotated[int, Opt(help="Sampling seed.")] = 0,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Accuracy against tokens spent for every method and verifier, as one plot and a table."""
    from imo.console import print_table
    from imo.reason import policy as P
    from imo.reason.curve import plot_curve
    from imo.reason.methods import get_method
    from imo.reason.thinking import curve
    from imo.runs.store import RunStore

    _threads()
    if out.exists() and not force:
        raise ConfigError(f"'{out}' exists; give --force to overwrite it")
    mults = _multiples(multiples)
    if n < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    if not temperature > 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}")
    names = [m.strip() for m in methods.split(",") if m.strip()]
    for m in names:
        get_method(m)  # an unknown method lists the choices before any work
    store = RunStore.open()
    pol = P.load_policy(store, run, seed)
    probs = _test_problems(pol, n, harder)
    arms = [(m, v) for v in (verifier or ["self"]) for m in names
            if m != "greedy" and not (m == "revision" and v in ("self", "vote", "selfeval"))]
    if oracle:
        arms.append(("best-of-n", "oracle"))
    rows = curve(pol, probs, arms, mults, store, seed, temperature, log=(lambda m: None) if quiet else print)
    result = {"policy": pol.meta["run"], "greedy_budget": rows[0]["tokens"], "n": len(probs), "rows": rows,
              "temperature": temperature, "harder": harder}
    plot_curve([result], out)
    store.put_result("reason-curve", result["policy"], result, [result["policy"]])
    print_table(["method", "verifier", "budget x", "accuracy", "tokens/problem"],
                [(r["method"], r["verifier"], r["multiple"], f"{r['accuracy']:.3f}", f"{r['tokens']:.0f}")
                 for r in rows])
    print(f"plot: {out}")


def _multiples(text: str) -> list[int]:
    try:
        mults = [int(x) for x in text.split(",")]
    except ValueError:
        raise ConfigError(f"multiples must be comma-separated integers, got {text!r}") from None
    if not mults or min(mults) < 1:
        raise ConfigError(f"multiples must be >= 1, got {text!r}")
    return mults


def _test_problems(pol, n: int, harder: bool) -> list:
    """The policy's first n test problems, or n of the next difficulty (then searched at it)."""
    from imo.reason import policy as P

    cfg = pol.meta["config"]
    probs = P.harder(cfg, n) if harder else P.problems(cfg)[1][:n]
    if not probs:
        raise ConfigError(f"task {cfg.task} has no difficulty above {cfg.difficulty}")
    if harder:
        pol.difficulty = cfg.difficulty + 1
    return probs


@reason_app.command("train-judge")
def train_judge_command(
    policy: Annotated[str, Arg(help="The policy run whose steps are to be judged.")],
    share: Annotated[bool, Opt("--share/--separate", help="--share: one model that writes and judges its steps (verifier selfeval); --separate: a judge beside the policy (verifier judge:RUN).")] = True,
    problems: Annotated[int, Opt(help="Training problems whose sampled solutions give the judging rows.")] = 400,
    samples: Annotated[int, Opt(help="Sampled solutions per problem (their wrong lines are the hard negatives).")] = 4,
    steps: Annotated[int, Opt(help="Fine-tuning steps.")] = 400,
    lr: Annotated[float, Opt(help="Fine-tuning learning rate.")] = 1e-3,
    seed: Annotated[int, Opt(help="Seed.")] = 0,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Teach a policy (or a copy of it) to judge its own steps, on exact labels of its own samples."""
    from imo.reason.selfeval import train_judge
    from imo.runs.store import RunStore

    _threads()
    for name, v in (("problems", problems), ("samples", samples), ("steps", steps)):
        if v < 1:
            raise ConfigError(f"{name} must be >= 1, got {v}")
    if not lr > 0:
        raise ConfigError(f"lr must be > 0, got {lr}")
    with _stoppable(None):
        print(train_judge(RunStore.open(), policy, share, problems, samples, steps, lr, seed, quiet))


@reason_app.command("calibrate")
def calibrate_command(
    run: Annotated[str, Arg(help="Policy run whose samples are judged.")],
    verifier: Annotated[list[str], Opt(help="Verifier(s) with probabilities: selfeval, judge:RUN, orm:RUN, prm:RUN (repeat).")],
    n: Annotated[int, Opt(help="Test problems.")] = 100,
    samples: Annotated[int, Opt(help="Sampled solutions per problem.")] = 4,
    harder: Annotated[bool, Opt("--harder", help="Use problems of the next difficulty.")] = False,
    out: Annotated[Path, Opt(help="PNG of the reliability diagram.")] = Path("reliability.png"),
    force: Annotated[bool, Opt("--force", help="Overwrite --out.")] = False,
    seed: Annotated[int, Opt(help="Sampling seed.")] = 0,
) -> None:
    """Reliability diagram: each verifier's probability against how often the prefix is right."""
    from imo.console import print_table
    from imo.reason import policy as P
    from imo.reason.thinking import load, plot_reliability, reliability
    from imo.runs.store import RunStore

    _threads()
    if out.exists() and not force:
        raise ConfigError(f"'{out}' exists; give --force to overwrite it")
    if n < 1 or samples < 1:
        raise ConfigError("n and samples must be >= 1")
    for v in verifier:
        if v.partition(":")[0] in ("self", "vote"):
            raise ConfigError(f"verifier {v} gives no probability to calibrate; use selfeval, judge, orm, prm")
    store = RunStore.open()
    pol = P.load_policy(store, run, seed)
    probs = _test_problems(pol, n, harder)
    cals = [reliability(load(v, store, pol), pol, probs, samples, seed) for v in verifier]
    plot_reliability(cals, out)
    print_table(["verifier", "prefixes", "right share", "ECE", "Brier", "accuracy at 0.5"],
                [(c["verifier"], c["n"], f"{c['positive_share']:.3f}", f"{c['ece']:.3f}", f"{c['brier']:.3f}",
                  f"{c['accuracy']:.3f}") for c in cals])
    print(f"plot: {out}")


@reason_app.command("select")
def select_command(
    run: Annotated[str, Arg(help="Policy run.")],
    verifier: Annotated[str, Opt(help="The verifier that estimates difficulty and guides the searches.")] = "selfeval",
    arms: Annotated[str, Opt(help="Comma-separated METHOD@MULTIPLE arms (greedy is always one).")] = "best-of-n@4,tot@8,tot-dfs@16",
    bins: Annotated[int, Opt(help="Difficulty bins (quantiles of the selection split's estimates).")] = 3,
    n: Annotated[int, Opt(help="Selection problems (the first n of the test set).")] = 100,
    fresh: Annotated[int, Opt(help="Fresh scoring problems (outside training and test sets).")] = 100,
    temperature: Annotated[float, Opt(help="Sampling temperature of the searches.")] = 1.0,
    seed: Annotated[int, Opt(help="Sampling seed.")] = 0,
) -> None:
    """Compute-optimal selection: a method per difficulty bin, fitted on test problems, scored on fresh ones."""
    from imo.reason import policy as P
    from imo.reason.methods import get_method
    from imo.reason.select import fit, score
    from imo.reason.thinking import fresh_problems, load
    from imo.runs.store import RunStore

    _threads()
    parsed = []
    for a in arms.split(","):
        m, _, x = a.strip().partition("@")
        get_method(m)
        if not x.isdigit() or int(x) < 1:
            raise ConfigError(f"arm {a.strip()!r} must be METHOD@MULTIPLE with a multiple >= 1, e.g. tot@8")
        parsed.append((m, int(x)))
    if bins < 1 or n < bins or fresh < 1:
        raise ConfigError(f"need bins >= 1, n >= bins and fresh >= 1 (got bins {bins}, n {n}, fresh {fresh})")
    store = RunStore.open()
    pol = P.load_policy(store, run, seed)
    ver = load(verifier, store, pol)
    cfg = pol.meta["config"]
    fitted = fit(pol, P.problems(cfg)[1][:n], ver, parsed, bins, seed, temperature)
    res = score(pol, fresh_problems(cfg, fresh), ver, fitted, seed, temperature)
    store.put_result("reason-select", pol.meta["run"], {"fit": fitted, "score": res}, [pol.meta["run"]])
    print("bins (by the verifier's estimate that greedy is right): edges "
          + ", ".join(f"{e:.3f}" for e in fitted["edges"]) + "; arms " + ", ".join(fitted["choice"]))
    print(f"selection split: per-bin choice {fitted['selection_accuracy']:.3f}; single best arm {fitted['single']}")
    print(f"fresh problems ({res['n']}): per-bin choice {res['accuracy']:.3f} at {res['tokens']:.0f} tokens; "
          f"single best arm {res['single_accuracy']:.3f} at {res['single_tokens']:.0f} tokens")


@reason_app.command("iterate")
def iterate_command(
    run: Annotated[str, Arg(help="Policy run to improve.")],
    rounds: Annotated[int, Opt(help="Rounds of search + fine-tuning.")] = 2,
    problems: Annotated[int, Opt(help="Unlabelled training problems searched each round.")] = 500,
    method: Annotated[str, Opt(help="Search method used to find solutions.")] = "best-of-n",
    verifier: Annotated[str, Opt(help="Verifier guiding the search (the oracle filters either way).")] = "oracle",
    budget: Annotated[int, Opt(help="Search budget in greedy solutions' worth.")] = 8,
    epochs: Annotated[float, Opt(help="Fine-tuning passes over each round's kept solutions.")] = 2.0,
    lr: Annotated[float, Opt(help="Fine-tuning learning rate.")] = 3e-4,
    seed: Annotated[int, Opt(help="Seed.")] = 0,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Expert iteration: search, keep oracle-accepted solutions, fine-tune; greedy accuracy per round."""
    from imo.console import print_table
    from imo.reason import thinking  # noqa: F401  (registers tot-dfs)
    from imo.reason.learn import expert_iteration
    from imo.runs.store import RunStore

    _threads()
    store = RunStore.open()
    res = expert_iteration(store, run, rounds, problems, method, verifier, budget, epochs, lr, seed=seed,
                           quiet=quiet, log=(lambda m: None) if quiet else print)
    store.put_result("reason-iterate", res[0]["run"], {"rounds": res}, [r["run"] for r in res])
    print_table(["round", "run", "kept", "greedy test accuracy"],
                [(r["round"], r["run"], r["kept"] if r["kept"] is not None else "", f"{r['greedy_test_acc']:.3f}")
                 for r in res])


def register(app: typer.Typer) -> None:
    app.add_typer(reason_app, name="reason")
