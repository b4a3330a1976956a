"""`imo train` and `imo eval`."""

import os
from pathlib import Path
from typing import Annotated

import typer

from imo.errors import ConfigError

Opt = typer.Option


def train_command(
    corpus: Annotated[str | None, Opt(help="Corpus name (`imo corpora`), file:PATH or dir:PATH. [default: python-docs]")] = None,
    preset: Annotated[str | None, Opt(help="Model preset: tiny, small, base. [default: tiny]")] = None,
    config: Annotated[Path | None, Opt("--config", help="TOML file with [model] and [train] tables.")] = None,
    pos: Annotated[str | None, Opt(help="Position encoding: none, learned, sinusoidal, rope, alibi.")] = None,
    attn: Annotated[str | None, Opt(help="Attention backend: naive, tiled, sdpa.")] = None,
    layers: Annotated[int | None, Opt(help="Number of blocks (n_layer).")] = None,
    width: Annotated[int | None, Opt(help="Embedding width (n_embd).")] = None,
    heads: Annotated[int | None, Opt(help="Attention heads (n_head); must divide width.")] = None,
    context: Annotated[int | None, Opt(help="Training context length in bytes (context_length).")] = None,
    rope_scale: Annotated[float | None, Opt(help="RoPE position scale (position interpolation), e.g. 0.25.")] = None,
    dropout: Annotated[float | None, Opt(help="Dropout rate.")] = None,
    steps: Annotated[int | None, Opt(help="Step budget. [default: 1000 unless --minutes]")] = None,
    minutes: Annotated[float | None, Opt(help="Time budget in minutes, turned into a step count at the start.")] = None,
    batch_size: Annotated[int | None, Opt(help="Sequences per step (global). [default: 16]")] = None,
    grad_accum: Annotated[int | None, Opt(help="Micro-batches per step.")] = None,
    lr: Annotated[float | None, Opt(help="Peak learning rate. [default: 3e-3]")] = None,
    warmup: Annotated[int | None, Opt(help="Warmup steps. [default: 50]")] = None,
    eval_every: Annotated[int | None, Opt(help="Evaluate every N steps. [default: 100]")] = None,
    ckpt_every: Annotated[int | None, Opt(help="Checkpoint every N steps. [default: 500]")] = None,
    seed: Annotated[int | None, Opt(help="Seed of initialisation and batches. [default: 1337]")] = None,
    device: Annotated[str | None, Opt(help="auto, cpu, cuda or cuda:N. [default: auto]")] = None,
    dtype: Annotated[str | None, Opt(help="auto (bf16 mixed precision where the CPU/GPU has native bf16, else float32), float32 or bfloat16. [default: auto]")] = None,
    compile: Annotated[bool, Opt("--compile", help="Run the training step through torch.compile (kernels cached on disk).")] = False,
    threads: Annotated[int | None, Opt(help="CPU threads for torch. [default: OMP_NUM_THREADS, else 1 on a machine of <= 2 cores, else all]")] = None,
    init_from: Annotated[str | None, Opt(help="Start from this run's weights (fine-tune); e.g. with a longer --context and --rope-scale.")] = None,
    resume: Annotated[str | None, Opt(help="Continue run RUN from its last checkpoint (its config is kept).")] = None,
    name: Annotated[str | None, Opt(help="Run name shown in listings and accepted where a run id is. [default: the config's slug]")] = None,
    tags: Annotated[str | None, Opt(help="Comma-separated labels, e.g. baseline,rope (`imo runs --tag T` filters).")] = None,
    tensorboard: Annotated[Path | None, Opt(help="Also write TensorBoard event files under DIR/RUN_ID (needs the tensorboard extra).")] = None,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress output; prints only the run id.")] = False,
) -> None:
    """Train a GPT on a corpus; the run, its checkpoints and metrics go to the run store.
    Ctrl-C or SIGTERM checkpoints and exits 130 or 143; `--resume RUN` continues."""
    import torch

    from imo.train.config import RunConfig
    from imo.train.trainer import run_training

    if threads is not None:
        if threads < 1:
            raise ConfigError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    elif not os.environ.get("OMP_NUM_THREADS"):
        from imo.doctor import default_threads

        torch.set_num_threads(default_threads())
    model = dict(pos=pos, attn=attn, n_layer=layers, n_embd=width, n_head=heads, context_length=context,
                 rope_scale=rope_scale, dropout=dropout)
    tr = dict(corpus=corpus, steps=steps, minutes=minutes, batch_size=batch_size, grad_accum=grad_accum,
              lr=lr, warmup=warmup, eval_every=eval_every, ckpt_every=ckpt_every, seed=seed,
              device=device, dtype=dtype, init_from=init_from)
    if resume is not None:
        given = [k for k, v in {**model, **tr, "preset": preset, "config": config}.items() if v is not None]
        if given:
            raise ConfigError(
                f"--resume keeps the run's saved config; drop {', '.join('--' + g.replace('_', '-') for g in given)}"
            )
        if name is not None or tags is not None:
            raise ConfigError("--resume keeps the run's name and tags; drop --name/--tags")
        _finish(run_training(None, resume=resume, quiet=quiet, tensorboard=tensorboard, compile=compile), quiet)
        return
    if name is not None and not name.strip():
        raise ConfigError("--name must not be empty")
    tag_list = [t.strip() for t in (tags or "").split(",") if t.strip()]
    cfg = RunConfig.build(preset=preset or ("tiny" if config is None else None), file=config, model=model, train=tr)
    _finish(run_training(cfg, quiet=quiet, name=name, tags=tag_list, tensorboard=tensorboard,
                         compile=compile), quiet)


def _finish(outcome, quiet: bool) -> None:
    """-q prints the run id (for scripts); a run stopped by a signal exits 128 + its number
    (130 Ctrl-C, 143 SIGTERM), so `imo train ... && imo eval ...` does not go on."""
    if quiet:
        print(outcome.run_id, flush=True)
    if outcome.stopped:
        raise typer.Exit(128 + (outcome.signal or 2))


def eval_command(
    run: Annotated[str, typer.Argument(help="Run id, unique prefix or name.")],
    corpus: Annotated[str | None, Opt(help="Corpus to evaluate on. [default: the run's own]")] = None,
    context: Annotated[int | None, Opt(help="Evaluation context length. [default: the training context]")] = None,
    split: Annotated[str, Opt(help="train or val.")] = "val",
    max_bytes: Annotated[int | None, Opt(help="Score only the first N bytes of the split.")] = None,
) -> None:
    """Bits per byte of a run's model on a corpus split."""
    from imo.data.corpora import load_corpus
    from imo.runs.store import RunStore
    from imo.train.checkpoint import load_model
    from imo.train.evaluate import evaluate_split

    store = RunStore.open()
    run_id = store.resolve(run)
    model, meta = load_model(store.run_dir(run_id))
    corpus_name = corpus or meta["config"].get("train", {}).get("corpus")
    if corpus_name is None:
        raise ConfigError(f"run {run_id} was not trained here; name a corpus with --corpus")
    ctx = context if context is not None else model.cfg.context_length
    if ctx < 1:
        raise ConfigError(f"context must be >= 1, got {ctx}")
    if max_bytes is not None and max_bytes < 1:
        raise ConfigError(f"max-bytes must be >= 1, got {max_bytes}")
    model.positions.check_length(ctx)
    data = load_corpus(corpus_name).split(split)
    if (meta["config"].get("tokenizer") or {}).get("kind", "byte") != "byte":  # an imported BPE model
        from imo.importers.evaluate import evaluate_run_split

        bpb = evaluate_run_split(store.run_dir(run_id), model, meta, data, ctx, max_bytes)
    else:
        bpb = evaluate_split(model, data, ctx, max_bytes)
    store.put_result("eval", run_id, {"corpus": corpus_name, "split": split, "context": ctx,
                                      "max_bytes": max_bytes, "bpb": bpb}, [run_id])
    print(f"{bpb:.4f} bits/byte  run {run_id}  corpus {corpus_name} ({split})  context {ctx}")
