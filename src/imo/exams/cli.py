"""`imo exam`: trickability, true negatives, the skills battery and exact recall.

Each command prints a table and appends its result to the run store (kind `exam-<name>`).

    imo exam trick digits --attack fgsm --eps 0.1,0.25
    imo exam trick RUN --task compare --k 3          # byte edits on a char model
    imo exam negatives --sizes 1x32,2x64 --steps 300,1000
    imo exam skills --train copy,sort --steps 600
    imo exam recall RUN --prefix 32 --k 32
"""

from __future__ import annotations

import math
import sys
from typing import Annotated

import typer

from imo.console import print_table
from imo.errors import ConfigError

Opt = typer.Option
app = typer.Typer(help="Exams: trickability, true negatives, the skills battery, exact recall.",
                  no_args_is_help=True)


def register(app_: typer.Typer) -> None:
    app_.add_typer(app, name="exam")


def _log(quiet: bool):
    return (lambda m: None) if quiet else (lambda m: print(f"... {m}", file=sys.stderr, flush=True))


def _numbers(text: str, what: str, kind=float) -> list:
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{what} must be {kind.__name__}s separated by commas, got {text!r}") from None
    if not values:
        raise ConfigError(f"{what} is empty; give at least one value")
    return values


def _sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        try:
            layers, width = (int(v) for v in part.strip().split("x"))
        except ValueError:
            raise ConfigError(f"--sizes takes LAYERSxWIDTH pairs separated by commas (e.g. 1x32,2x64), "
                              f"got {part!r}") from None
        out.append((layers, width))
    return out


def _pct(v: float | None) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"


def _store():
    from imo.runs.store import RunStore

    return RunStore.open()


@app.command("trick")
def trick_command(
    target: Annotated[str, typer.Argument(help="digits, idx:DIR (MNIST IDX files), or a run id for the byte-edit attack.")],
    attack: Annotated[str, Opt(help="Image attack: fgsm or pgd.")] = "fgsm",
    eps: Annotated[str, Opt(help="Epsilons in [0, 1], comma-separated.")] = "0.05,0.1,0.25",
    epochs: Annotated[int, Opt(help="Training epochs of each image classifier.")] = 30,
    pgd_steps: Annotated[int, Opt(help="PGD steps.")] = 10,
    max_test: Annotated[int | None, Opt(help="Attack only the first N test images.")] = None,
    adversarial: Annotated[bool, Opt(help="Also train each classifier adversarially (half FGSM loss at --adv-eps).")] = True,
    adv_eps: Annotated[float, Opt(help="Epsilon of adversarial training.")] = 0.25,
    task: Annotated[str, Opt(help="Run target: the skill whose prompts are attacked.")] = "compare",
    k: Annotated[int, Opt(help="Run target: most byte substitutions tried.")] = 3,
    beam: Annotated[int, Opt(help="Run target: beam width of the substitution search.")] = 4,
    n: Annotated[int, Opt(help="Run target: held-out prompts attacked.")] = 50,
    seed: Annotated[int, Opt(help="Seed of the split, initialisation and batches.")] = 0,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """How small a change flips a model's answer: FGSM/PGD on image classifiers, byte edits on a run."""
    from imo.exams import trick

    store = _store()
    if target == "digits" or target.startswith("idx:"):
        if epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {epochs}")
        if max_test is not None and max_test < 1:
            raise ConfigError(f"max-test must be >= 1, got {max_test}")
        out = trick.vision_exam(target, eps=trick.check_eps(_numbers(eps, "--eps")), attack=attack, seed=seed,
                                size=trick.VisionSize(epochs=epochs, pgd_steps=pgd_steps, max_test=max_test),
                                adv_eps=adv_eps, adversarial=adversarial, log=_log(quiet))
        print_table(["model", "eps", "clean error", "error", "confidence", "median min eps"],
                    [[r["model"], f"{r['eps']:g}", _pct(r["clean_error"]), _pct(r["error"]), _pct(r["confidence"]),
                      f"{r['median_min_eps']:.3f}"] for r in out["rows"]],
                    title=f"{attack.upper()} on {out['data']} ({out['n_test']} test images)")
        paper = trick.PAPER_MNIST
        print_table(["model (Goodfellow et al. 2014, MNIST, FGSM eps 0.25)", "error", "confidence"],
                    [["shallow softmax", _pct(paper["softmax"]["fgsm_error"]), _pct(paper["softmax"]["fgsm_confidence"])],
                     ["maxout network", _pct(paper["maxout"]["fgsm_error"]), _pct(paper["maxout"]["fgsm_confidence"])],
                     ["maxout, adversarially trained", _pct(paper["maxout adversarially trained"]["fgsm_error"]), "-"]],
                    title="the paper's MNIST figures")
        store.put_result("exam-trick", out["data"], out)
        return
    out = trick.text_exam(target, task, k=k, beam=beam, n=n, seed=seed, store=store)
    print_table(["run", "task", "clean accuracy", "attacked"] + [f"flipped <= {j}" for j in out["success_within"]],
                [[out["run"], out["task"], _pct(out["clean_accuracy"]), out["attacked"],
                  *[_pct(v) for v in out["success_within"].values()]]],
                title="byte-edit attack")
    print(f"trickability = {_pct(out['trickability'])}   ({out['definition']})")
    store.put_result("exam-trick", out["run"], out, [out["run"]])


@app.command("negatives")
def negatives_command(
    sizes: Annotated[str, Opt(help="Model sizes LAYERSxWIDTH, comma-separated.")] = "1x32,2x64",
    steps: Annotated[str, Opt(help="Training lengths in steps, comma-separated.")] = "300,1000",
    entities: Annotated[int, Opt(help="Entities in the fact base (5 attributes each, half present).")] = 40,
    seed: Annotated[int, Opt(help="Seed of the fact base and the training.")] = 0,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """True positives vs true negatives on a generated fact base, by model size and training length."""
    from imo.exams.negatives import NegativesSize, negatives_exam

    step_list = _numbers(steps, "--steps", int)
    if min(step_list) < 1:
        raise ConfigError(f"--steps must be positive, got {steps!r}")
    size = NegativesSize(sizes=tuple(_sizes(sizes)), steps=tuple(step_list), n_entities=entities,
                             context_length=32)
    out = negatives_exam(size, seed=seed, store=_store(), quiet=quiet, log=_log(quiet))
    print_table(["run", "size", "params", "steps", "TPR", "TNR", "present called unknown"],
                [[r["run"], f"{r['n_layer']}x{r['n_embd']}", f"{r['params']:,}", r["steps"], _pct(r["tpr"]),
                  _pct(r["tnr"]), _pct(r["positives_called_unknown"])] for r in out["rows"]],
                title=f"fact base: {out['n_present']} present facts, {out['n_held_absent']} missing facts never seen")
    _store().put_result("exam-negatives", f"seed{seed}", out, [r["run"] for r in out["rows"]])


@app.command("skills")
def skills_command(
    train: Annotated[str, Opt(help="Skills to train on, comma-separated (count, copy, reverse, sort, add, compare, grid).")] = "count,copy,reverse,sort,add,compare,grid",
    run: Annotated[str | None, Opt(help="Test this run instead of training one.")] = None,
    steps: Annotated[int, Opt(help="Training steps.")] = 600,
    layers: Annotated[int, Opt(help="Blocks of the model.")] = 2,
    width: Annotated[int, Opt(help="Embedding width of the model.")] = 64,
    difficulty: Annotated[int | None, Opt(help="Task difficulty: 1 (short inputs) or 2. [default: 1]")] = None,
    level: Annotated[int | None, Opt("--level", hidden=True, help="Old name of --difficulty.")] = None,
    n_train: Annotated[int, Opt(help="Training problems per skill.")] = 2000,
    n_test: Annotated[int, Opt(help="Held-out problems per skill.")] = 100,
    seed: Annotated[int, Opt(help="Seed of the problems and the training.")] = 0,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Train a byte model on one or several skills of the battery and test it on each."""
    from imo.exams.skills import SkillsSize, check_skills, skills_exam

    if level is not None and difficulty is not None:
        raise ConfigError("give --difficulty or its old name --level, not both")
    difficulty = difficulty if difficulty is not None else level if level is not None else 1
    names = check_skills([s.strip() for s in train.split(",") if s.strip()])
    for name, v in (("steps", steps), ("layers", layers), ("n-train", n_train), ("n-test", n_test)):
        if v < 1:
            raise ConfigError(f"{name} must be >= 1, got {v}")
    size = SkillsSize(n_layer=layers, n_embd=width, steps=steps, difficulty=difficulty, n_train=n_train,
                      n_test=n_test, context_length=32 if difficulty == 1 else 64)
    out = skills_exam(names, size, seed=seed, quiet=quiet, run=run, log=_log(quiet))
    trained = set(out["train_skills"])
    print_table(["skill", "trained on", "accuracy"],
                [[s.removeprefix("skill-"), "yes" if s in trained else "no", _pct(a)] for s, a in out["accuracy"].items()],
                title=f"run {out['run']}: exact accuracy on {n_test} held-out problems per skill")
    _store().put_result("exam-skills", out["run"], out, [out["run"]])


@app.command("recall")
def recall_command(
    runs: Annotated[list[str] | None, typer.Argument(help="Run ids (prefixes or names); none: train the --sizes sweep.")] = None,
    prefix: Annotated[int, Opt(help="Bytes of text given before each position.")] = 32,
    k: Annotated[int, Opt(help="Bytes the greedy continuation must reproduce exactly.")] = 32,
    n: Annotated[int, Opt(help="Positions sampled in each split.")] = 64,
    max_bytes: Annotated[int, Opt(help="Read at most this many bytes of each split.")] = 65536,
    sizes: Annotated[str, Opt(help="Sweep (no RUN given): model sizes LAYERSxWIDTH, comma-separated.")] = "1x32,2x64,4x128",
    steps: Annotated[int, Opt(help="Sweep: training steps of each model.")] = 2000,
    text_bytes: Annotated[int, Opt(help="Sweep: train on the first N bytes of python-docs.")] = 16384,
    seed: Annotated[int, Opt(help="Seed of the positions (and of the sweep's training).")] = 0,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Exact recall of training vs held-out text, beside bits/byte, weight bytes and conditional xz/bzip2."""
    from imo.exams.recall import recall_exam, recall_sweep

    store = _store()
    kw = dict(prefix=prefix, k=k, n=n, max_bytes=max_bytes)
    if runs:
        rows = [recall_exam(r, store, seed=seed, **kw) for r in runs]
    else:
        rows = recall_sweep(_sizes(sizes), steps, text_bytes, seed, store, quiet, _log(quiet), **kw)
    print_table(["run", "params", "weight bytes", "recall train", "recall held-out", "bpb train", "bpb held-out",
                 "xz held-out", "xz given train", "bzip2 given train", "kept bytes / weight byte"],
                [[r["run"], f"{r['params']:,}", f"{r['weight_bytes']:,}", _pct(r["recall_train"]),
                  _pct(r["recall_val"]), f"{r['bpb_train']:.3f}", f"{r['bpb_val']:.3f}", f"{r['xz_val']:.3f}",
                  f"{r['xz_val_given_train']:.3f}", f"{r['bzip2_val_given_train']:.3f}",
                  f"{r['kept_bytes_per_weight_byte']:.4f}"] for r in rows],
                title=f"greedy continuation of {k} bytes after {prefix}, {n} positions per split")
    for r in rows:
        store.put_result("exam-recall", r["run"], r, [r["run"]])
