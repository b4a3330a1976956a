"""`imo prune`, `imo quantize`, `imo inspect-outliers`: shrink a run into a new run.

    imo prune 3fa2 --method magnitude --sparsity 0.5 --finetune-steps 100
    imo quantize 3fa2 --bits 8 --keep lm_head --keep transformer.wte
    imo quantize 3fa2 --bits 4 --group-size 64
    imo inspect-outliers 3fa2 --threshold 6
    imo lottery --data idx:~/mnist --rounds 10
"""

from dataclasses import replace
from typing import Annotated

import typer

from imo.errors import ConfigError

Opt = typer.Option


def _byte_run(store, run: str, what: str) -> None:
    """Refuse, in one line, a run these commands cannot score: they evaluate on the run's own
    training corpus, which an imported (BPE) model does not have."""
    rid = store.resolve(run)
    config = store.get(rid)["config"]
    if "train" not in config or "corpus" not in config.get("train", {}):
        kind = config.get("tokenizer", {}).get("kind", "unknown")
        raise ConfigError(f"run {rid} has no training corpus (an imported {kind} model?): imo {what} works on "
                          "runs imo trained; for an imported model use --weights int8|int4 on imo sample, "
                          "chat or serve")


def prune_command(
    run: Annotated[str, typer.Argument(help="Run id, unique prefix or name.")],
    method: Annotated[str, Opt(help="Pruning method: magnitude, random (synflow needs an MLP).")] = "magnitude",
    sparsity: Annotated[float, Opt(help="Fraction of the selected weights removed, in [0, 1).")] = 0.5,
    scope: Annotated[str, Opt(help="global (one ranking over all layers) or layer (each layer alike).")] = "global",
    skip: Annotated[list[str] | None, Opt("--skip", help="Glob of layers left dense, e.g. lm_head (repeatable).")] = None,
    finetune_steps: Annotated[int, Opt(help="AdamW steps on the training split after pruning, masks kept.")] = 0,
    lr: Annotated[float, Opt(help="Fine-tuning learning rate.")] = 3e-4,
    batch_size: Annotated[int, Opt(help="Fine-tuning sequences per step.")] = 16,
    seed: Annotated[int, Opt(help="Seed (random pruning, fine-tuning batches).")] = 0,
    eval_bytes: Annotated[int, Opt(help="Validation bytes scored before and after.")] = 65_536,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="Print only the new run id.")] = False,
) -> None:
    """Prune a run's model into a new run (parent link) stored compactly (bitmask + values)."""
    from imo.compress.prune import check_sparsity
    from imo.compress.runs import prune_run
    from imo.runs.store import RunStore

    check_sparsity(sparsity)
    if eval_bytes < 1:
        raise ConfigError(f"eval-bytes must be >= 1, got {eval_bytes}")
    if batch_size < 1 or finetune_steps < 0 or not lr > 0:
        raise ConfigError("batch-size must be >= 1, finetune-steps >= 0 and lr > 0")
    from imo.compress.prune import PRUNERS

    PRUNERS.get(method)
    store = RunStore.open()
    _byte_run(store, run, "prune")
    log = (lambda m: None) if quiet else print
    rid, f = prune_run(store, run, method, sparsity, scope=scope, skip=tuple(skip or ()),
                       finetune_steps=finetune_steps, lr=lr, batch_size=batch_size, seed=seed,
                       eval_bytes=eval_bytes, log=log)
    _done(rid, f, quiet)


def quantize_command(
    run: Annotated[str, typer.Argument(help="Run id, unique prefix or name.")],
    bits: Annotated[int, Opt(help="8 (per-channel int8) or 4 (group-wise int4).")] = 8,
    group_size: Annotated[int, Opt(help="int4: input weights per scale.")] = 64,
    outlier_threshold: Annotated[float | None, Opt(help="int8: activation columns above this stay in float (LLM.int8 uses 6.0). [default: no split]")] = None,
    kernel: Annotated[str, Opt(help="int8 kernel: auto, fbgemm, vectorwise, weight-only; int4: auto (weight-only) or tinygemm (bfloat16 activations, faster at small batches).")] = "auto",
    keep: Annotated[list[str] | None, Opt("--keep", help="Glob of layers kept in float, e.g. lm_head (repeatable).")] = None,
    eval_bytes: Annotated[int, Opt(help="Validation bytes scored before and after.")] = 65_536,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="Print only the new run id.")] = False,
) -> None:
    """Quantize a run's weight matrices into a new run (parent link) with packed integers."""
    from imo.compress.quantize import QuantConfig
    from imo.compress.runs import quantize_run
    from imo.runs.store import RunStore

    if eval_bytes < 1:
        raise ConfigError(f"eval-bytes must be >= 1, got {eval_bytes}")
    cfg = QuantConfig(bits=bits, group_size=group_size, outlier_threshold=outlier_threshold, kernel=kernel)
    store = RunStore.open()
    _byte_run(store, run, "quantize")
    log = (lambda m: None) if quiet else print
    rid, f = quantize_run(store, run, cfg, keep=tuple(keep or ()), eval_bytes=eval_bytes, log=log)
    _done(rid, f, quiet)


def _done(rid: str, f: dict, quiet: bool) -> None:
    if quiet:
        print(rid)
        return
    print(f"new run {rid}: {f['bytes_on_disk']:,} bytes on disk ({f['size_ratio']:.1%} of the parent's "
          f"{f['parent_bytes']:,}); {f['val_bpb']:.4f} bits/byte vs {f['parent_val_bpb']:.4f} "
          f"({f['bpb_delta_rel']:+.2%}) on {f['eval_bytes']:,} validation bytes")


def inspect_outliers_command(
    run: Annotated[str, typer.Argument(help="Run id, unique prefix or name.")],
    threshold: Annotated[float, Opt(help="|activation| above which a column is an outlier (LLM.int8: 6.0).")] = 6.0,
    windows: Annotated[int, Opt(help="Validation windows (of the training context) fed through.")] = 8,
    seed: Annotated[int, Opt(help="Seed of the windows.")] = 0,
) -> None:
    """Per layer: largest input activation, and how many input columns exceed the threshold."""
    from imo.compress.runs import outlier_stats, validation_windows
    from imo.console import print_table
    from imo.runs.store import RunStore
    from imo.train.checkpoint import load_model

    if windows < 1:
        raise ConfigError(f"windows must be >= 1, got {windows}")
    store = RunStore.open()
    _byte_run(store, run, "inspect-outliers")
    rid = store.resolve(run)
    model, meta = load_model(store.run_dir(rid))
    x = validation_windows(meta["config"]["train"]["corpus"], model.cfg.context_length, windows, seed)
    stats = outlier_stats(model, x, threshold)
    print_table(["layer", "max |x|", f"columns > {threshold:g}", "width", "values > thr"],
                [[n, f"{s['max_abs']:.2f}", s["outlier_columns"], s["width"],
                  f"{s['outlier_value_fraction']:.4%}"] for n, s in stats.items()],
                title=f"input activations of run {rid} on {windows} x {model.cfg.context_length} validation bytes")


def lottery_command(
    data: Annotated[str, Opt(help="digits (bundled 8x8) or idx:DIR (MNIST-format IDX files).")] = "digits",
    rounds: Annotated[int, Opt(help="Pruning rounds.")] = 8,
    rate: Annotated[float, Opt(help="Share of each layer's surviving weights removed a round (output: half).")] = 0.2,
    criterion: Annotated[str, Opt(help="Mask criterion: large_final, magnitude_increase, large_init_large_final, movement, random.")] = "large_final",
    rewind_step: Annotated[int, Opt(help="Rewind survivors to their weights after this many steps (0 = init).")] = 0,
    epochs: Annotated[int, Opt(help="Training epochs per round.")] = 10,
    hidden: Annotated[str, Opt(help="Hidden widths, comma-separated (LeNet-300-100: 300,100).")] = "300,100",
    seed: Annotated[int, Opt(help="Seed of the split, initialisation and batches.")] = 0,
    branches: Annotated[bool, Opt(help="Also train the random re-init and random-pruning branches.")] = True,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="Only the table.")] = False,
) -> None:
    """Lottery tickets on an MLP: iterative magnitude pruning with rewinding, test accuracy per round."""
    from imo.compress.lottery import CRITERIA, LotterySetup, iterative_pruning
    from imo.console import print_table
    from imo.data.vision import load

    CRITERIA.get(criterion)
    try:
        widths = tuple(int(h) for h in hidden.split(",") if h.strip())
    except ValueError:
        raise ConfigError(f"hidden must be comma-separated integers such as 300,100, got {hidden!r}") from None
    if not widths or min(widths) < 1:
        raise ConfigError(f"hidden widths must be positive integers, got {hidden!r}")
    setup = LotterySetup(rate=rate, rounds=rounds, rewind_step=rewind_step, epochs=epochs)  # checks first
    images = load(data, seed=seed)
    setup = replace(setup, sizes=(images.x_train.shape[1], *widths, images.n_classes))
    rows = iterative_pruning(images, setup, seed, criterion=criterion, branches=branches,
                             log=(lambda m: None) if quiet else print)
    cols = ["round", "weights left", "ticket acc"] + (["re-init acc", "random-prune acc"] if branches else [])
    print_table(cols, [[r["round"], f"{r['fraction_left']:.2%}", f"{r['acc_ticket']:.4f}"]
                       + ([f"{r['acc_reinit']:.4f}", f"{r['acc_random']:.4f}"] if branches else [])
                       for r in rows], title=f"{images.source}, MLP {'-'.join(map(str, setup.sizes))}, {criterion}")


def register(app: typer.Typer) -> None:
    app.command("lottery")(lottery_command)
    app.command("prune")(prune_command)
    app.command("quantize")(quantize_command)
    app.command("inspect-outliers")(inspect_outliers_command)
