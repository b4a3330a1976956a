"""`imo train` and `imo eval`."""

import os
from pathlib import Path
from typing import Annotated

import typer

from imo.errors import ConfigError

Opt = typer.Option

# `imo train --minutes M` without --preset or --config trains a model sized for the budget: the
# tiny preset with these overrides, for budgets up to `minutes` (the first row that fits). From the
# sweep `benchmarks/budget.py` on tinyshakespeare (benchmarks/RESULTS.md, issue-14 section, machine
# C's quality rows): the shorter context makes steps cheaper, the higher learning rate learns more
# per step, the narrower model runs more tokens per second. Flags still win, field by field.
BUDGETS: tuple[tuple[float, dict, dict], ...] = (
    (10.0, {"context_length": 128, "n_embd": 96, "n_head": 3}, {"batch_size": 16, "lr": 6e-3}),
)
WARMUP_STEPS = 4  # throwaway steps before a --minutes run (see warm_up)


def train_command(
    corpus: Annotated[str | None, Opt(help="Corpus name (`imo corpora`), file:PATH or dir:PATH. [default: python-docs]")] = None,
    preset: Annotated[str | None, Opt(help="Model preset: tiny, small, base. Without it, --minutes <= 10 trains tiny sized for the budget (docs/speed.md). [default: tiny]")] = None,
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
    minutes: Annotated[float | None, Opt(help="Time budget in minutes, turned into a step count at the start (after a few throwaway warm-up steps).")] = None,
    batch_size: Annotated[int | None, Opt(help="Sequences per step (global). [default: 16]")] = None,
    grad_accum: Annotated[int | None, Opt(help="Micro-batches per step.")] = None,
    lr: Annotated[float | None, Opt(help="Peak learning rate (a fine-tune of an imported run: 1e-3 with LoRA, 5e-5 in full). [default: 3e-3]")] = None,
    warmup: Annotated[int | None, Opt(help="Warmup steps (a fine-tune of an imported run: 10). [default: 50]")] = None,
    eval_every: Annotated[int | None, Opt(help="Evaluate every N steps. [default: 100]")] = None,
    ckpt_every: Annotated[int | None, Opt(help="Checkpoint every N steps. [default: 500]")] = None,
    seed: Annotated[int | None, Opt(help="Seed of initialisation and batches. [default: 1337]")] = None,
    device: Annotated[str | None, Opt(help="auto, cpu, cuda or cuda:N. [default: auto]")] = None,
    dtype: Annotated[str | None, Opt(help="auto (bf16 mixed precision where the CPU/GPU has native bf16, else float32), float32 or bfloat16. [default: auto]")] = None,
    compile: Annotated[bool, Opt("--compile", help="Run the training step through torch.compile (kernels cached on disk).")] = False,
    threads: Annotated[int | None, Opt(help="CPU threads for torch. [default: OMP_NUM_THREADS, else 1 on a machine of <= 2 cores, else all]")] = None,
    init_from: Annotated[str | None, Opt(help="Start from this run's weights (fine-tune); e.g. with a longer --context and --rope-scale. An imported run (imo import) is fine-tuned on its own tokenizer (defaults: 100 steps, batch 8, context 256 tokens, weight decay 0; --corpus chat:FILE.jsonl for instruction data): see --lora-rank and docs/models.md.")] = None,
    lora_rank: Annotated[int | None, Opt(help="LoRA rank for --init-from an imported (llama-family) run: only rank-R adapters on the q/k/v/o and MLP projections train, merged into the weights when the run finishes. [default: 0, a full fine-tune]")] = None,
    lora_alpha: Annotated[float | None, Opt(help="LoRA scale numerator: updates are scaled by alpha / rank. [default: 2 x rank]")] = None,
    lora_dropout: Annotated[float | None, Opt(help="Dropout on the LoRA adapters' input. [default: 0]")] = None,
    lora_targets: Annotated[str | None, Opt(help="Comma-separated projections that get adapters. [default: q,k,v,o,gate,up,down]")] = None,
    resume: Annotated[str | None, Opt(help="Continue run RUN from its last checkpoint (its config is kept).")] = None,
    name: Annotated[str | None, Opt(help="Run name shown in listings and accepted where a run id is. [default: the config's slug]")] = None,
    tags: Annotated[str | None, Opt(help="Comma-separated labels, e.g. baseline,rope (`imo runs --tag T` filters).")] = None,
    tensorboard: Annotated[Path | None, Opt(help="Also write TensorBoard event files under DIR/RUN_ID (needs the tensorboard extra).")] = None,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress output; prints only the run id.")] = False,
    arch: Annotated[str, Opt(help="gpt (full attention), or a block-recurrent memory model read block by block: bswa, fam, infini (docs/memory.md).")] = "gpt",
    block: Annotated[int | None, Opt(help="Memory models: tokens per block. [default: 64]")] = None,
    mem_blocks: Annotated[int | None, Opt(help="bswa/fam: previous blocks each block also attends to. [default: 2]")] = None,
    fam_tokens: Annotated[int | None, Opt(help="fam: feedback memory tokens per layer. [default: 8]")] = None,
    delta: Annotated[bool | None, Opt("--delta/--no-delta", help="infini: the delta rule for memory writes. [default: off]")] = None,
    gate_init: Annotated[float | None, Opt(help="infini: initial gate logit beta (sigmoid(beta) = the memory's share). [default: 0]")] = None,
    passkey: Annotated[float | None, Opt(help="Fraction of training rows that end with a passkey episode (imo exam passkey); also for --arch gpt. [default: 0]")] = None,
    passkey_bytes: Annotated[str | None, Opt(help="Passkey episode lengths MIN-MAX in bytes, at most the row length + 1. [default: 256-1024]")] = None,
    row_length: Annotated[int | None, Opt(help="Memory models: training rows of N bytes, read in windows of --context with the state carried (its gradient cut) between them. [default: the context]")] = None,
    retrieval: Annotated[str | None, Opt(help="RETRO-lite (imo.retrieve.retro, docs/memory.md): retro or retro-bm25 (BM25 over byte 4-grams), retro-dense (exact L2 search over a frozen byte GPT's mean-pooled states: give --embedder), or retro-none (a plain GPT on the same chunk-aligned rows, the fair baseline). Neighbours come from the corpus's training split, never from the row's own document.")] = None,
    embedder: Annotated[str | None, Opt(help="retro-dense: the run whose frozen byte GPT embeds the chunks (e.g. the retro-none baseline).")] = None,
    neighbours: Annotated[int | None, Opt(help="--retrieval: neighbours per 32-byte chunk, each with its continuation. [default: 2]")] = None,
    cca_layer: Annotated[int | None, Opt(help="--retrieval: the block after which the chunked cross-attention sits. [default: n_layer - 2]")] = None,
) -> None:
    """Train a GPT (or, with --arch, a memory model) on a corpus, or fine-tune a run (--init-from);
    the run, its checkpoints and metrics go to the run store. Ctrl-C or SIGTERM checkpoints and
    exits 130 or 143; `--resume RUN` continues."""
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
    lora = dict(lora_rank=lora_rank, lora_alpha=lora_alpha, lora_dropout=lora_dropout, lora_targets=lora_targets)
    memory = dict(block=block, mem_blocks=mem_blocks, fam_tokens=fam_tokens, delta=delta, gate_init=gate_init)
    resume_kind = _resume_kind(resume)
    memory_run, retro_run = _is_kind(resume_kind, "imo.memory.train"), _is_kind(resume_kind, "imo.retrieve.retro")
    rows = dict(passkey=passkey, passkey_bytes=passkey_bytes, row_length=row_length)
    retro = dict(embedder=embedder, k=neighbours, cca_layer=cca_layer)
    if retrieval is not None or any(v is not None for v in retro.values()) or retro_run:
        other = [f for f, v in {"arch": arch != "gpt", "passkey": passkey is not None, "passkey_bytes": passkey_bytes,
                                "row_length": row_length, "init_from": init_from, "compile": compile,
                                "tensorboard": tensorboard, "minutes": minutes, **memory, **lora}.items()
                 if v not in (None, False)]
        if other:
            raise ConfigError(f"RETRO runs do not take {', '.join('--' + f.replace('_', '-') for f in other)}")
        _train_retro_command(retrieval, retro, model, tr, dict(preset=preset, config=config, name=name, tags=tags,
                                                               resume=resume, quiet=quiet))
        return
    if arch != "gpt" or memory_run or any(v is not None for v in rows.values()):
        extra = dict(**rows, preset=preset, config=config, name=name, tags=tags,
                     init_from=init_from, lora=any(v is not None for v in lora.values()), compile=compile or None,
                     tensorboard=tensorboard, minutes=minutes, resume=resume, quiet=quiet)
        _train_memory_command(arch, model, tr, memory, extra)
        return
    given = [k for k, v in memory.items() if v is not None]
    if given:
        raise ConfigError(f"{', '.join('--' + g.replace('_', '-') for g in given)} need a memory model: "
                          "--arch bswa, fam or infini")
    fine = _token_finetune(resume, init_from)
    if fine is not None:  # a fine-tune of an imported (token) model: imo/train/finetune.py
        flags = {**model, **tr, **lora, "preset": preset, "config": config, "compile": compile or None,
                 "tensorboard": tensorboard}
        _finish(_run_finetune(fine, flags, resume, name, tags, quiet), quiet)
        return
    if any(v is not None for v in lora.values()):
        if init_from is None:
            raise ConfigError("--lora-rank fine-tunes a run: give --init-from RUN (an imported model)")
        raise ConfigError(f"LoRA is built for the llama family (imported runs); run {init_from} is a byte GPT: "
                          "fine-tune it in full (drop --lora-*)")
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
    sized = preset is None and config is None and minutes is not None and budget_row(minutes) is not None
    if sized:
        model, tr = sized_for_budget(minutes, model, tr)
    cfg = RunConfig.build(preset=preset or ("tiny" if config is None else None), file=config, model=model, train=tr)
    if sized and not quiet:
        m = cfg.model
        print(f"budget {minutes:g} min without --preset: tiny sized for it, {m.n_layer} x {m.n_embd}, "
              f"context {m.context_length}, batch {cfg.train.batch_size}, lr {cfg.train.lr:g} "
              f"(--preset tiny for the plain preset; docs/speed.md)", flush=True)
    if cfg.train.minutes is not None:
        warm_up(cfg)
    _finish(run_training(cfg, quiet=quiet, name=name, tags=tag_list, tensorboard=tensorboard,
                         compile=compile), quiet)


RETRO_CHOICES = {"retro": "bm25", "retro-bm25": "bm25", "retro-dense": "dense", "retro-none": "none"}


def _train_retro_command(retrieval: str | None, retro: dict, model: dict, tr: dict, extra: dict) -> None:
    """`imo train --retrieval retro|retro-bm25|retro-dense|retro-none` (imo.retrieve.retro) and
    --resume of such a run."""
    from imo.retrieve.retro import RetroConfig, train_retro
    from imo.train.config import RunConfig

    if extra["resume"] is not None:
        given = [k for k, v in {**model, **tr, **retro, "preset": extra["preset"], "config": extra["config"],
                                "retrieval": retrieval, "name": extra["name"], "tags": extra["tags"]}.items()
                 if v is not None]
        if given:
            raise ConfigError(f"--resume keeps the run's saved config; drop {', '.join('--' + g.replace('_', '-') for g in given)}")
        run_id, stopped = train_retro(None, resume=extra["resume"], quiet=extra["quiet"])
    else:
        if retrieval not in RETRO_CHOICES:
            what = ("--embedder, --neighbours and --cca-layer need --retrieval" if retrieval is None
                    else f"unknown --retrieval {retrieval!r}")
            raise ConfigError(f"{what}; choose one of: {', '.join(RETRO_CHOICES)}")
        rc = RetroConfig(retrieval=RETRO_CHOICES[retrieval], **{k: v for k, v in retro.items() if v is not None})
        if tr.get("steps") is None:
            tr = {**tr, "steps": 1000}
        cfg = RunConfig.build(preset=extra["preset"] or ("tiny" if extra["config"] is None else None),
                              file=extra["config"], model=model, train=tr)
        if extra["name"] is not None and not extra["name"].strip():
            raise ConfigError("--name must not be empty")
        tags = [t.strip() for t in (extra["tags"] or "").split(",") if t.strip()]
        run_id, stopped = train_retro(cfg, rc, quiet=extra["quiet"], name=extra["name"], tags=tags)
    if extra["quiet"]:
        print(run_id, flush=True)
    if stopped:
        raise typer.Exit(130)


def _retro_eval(store, run_id: str, corpus: str | None, split: str, context: int | None, max_bytes: int | None) -> None:
    """`imo eval RUN --retrieval retro`: bits/byte of the validation split by neighbour overlap."""
    from imo.console import print_table
    from imo.retrieve.retro import evaluate_run

    given = [f for f, v in {"context": context, "max_bytes": max_bytes}.items() if v is not None]
    if given:
        raise ConfigError(f"a RETRO run is scored on whole windows of its own context; drop "
                          f"{', '.join('--' + g.replace('_', '-') for g in given)}")
    if split != "val":
        raise ConfigError("a RETRO run is scored on the val split (the datastore is the training split)")
    out = evaluate_run(store, run_id, corpus)
    rows = [[f"<= {t}", f"{100 * out['filled'][t]:.0f}%" if out["filled"] else "-", f"{bpb:.4f}"]
            for t, bpb in out["by_overlap"].items()]
    print_table(["neighbour overlap", "neighbour slots filled", "bits/byte"], rows,
                title=f"RETRO-lite ({out['retrieval']}): run {run_id} on {out['corpus']} (val), "
                      f"{out['positions']:,} positions, {out['chunks']:,} datastore chunks")
    store.put_result("eval-retro", run_id, out, [run_id])
    print(f"{out['val_bpb']:.4f} bits/byte  run {run_id}  corpus {out['corpus']} (val)  context {out['context']}")


def _is_kind(kind: str | None, module: str) -> bool:
    """Whether a run kind is the KIND of `module` (imported only when there is a kind to compare)."""
    import importlib

    return kind is not None and kind == importlib.import_module(module).KIND


def _resume_kind(resume: str | None) -> str | None:
    """The kind of the run --resume names (memory, retro, train, ...), None without --resume."""
    if resume is None:
        return None
    from imo.runs.store import RunStore

    with RunStore.open() as store:
        return store.get(store.resolve(resume))["kind"]


def _train_memory_command(arch: str, model: dict, tr: dict, memory: dict, extra: dict) -> None:
    """`imo train --arch bswa|fam|infini` (imo.memory.train), a GPT on passkey rows, and --resume
    of such a run."""
    from imo.memory.config import MemoryConfig
    from imo.memory.train import Rows, train_memory
    from imo.train.config import RunConfig

    unsupported = [f for f in ("init_from", "lora", "compile", "tensorboard", "minutes") if extra[f]]
    if unsupported:
        raise ConfigError(f"memory runs do not take {', '.join('--' + f.replace('_', '-') for f in unsupported)} "
                          "(give --steps)")
    rows = {k: extra[k] for k in ("passkey", "passkey_bytes", "row_length")}
    if extra["resume"] is not None:
        given = [k for k, v in {**model, **tr, **memory, **rows, "preset": extra["preset"]}.items() if v is not None]
        if given or arch != "gpt":
            raise ConfigError(f"--resume keeps the run's saved config; drop "
                              f"{', '.join('--' + g.replace('_', '-') for g in given) or '--arch'}")
        run_id, stopped = train_memory(None, resume=extra["resume"], quiet=extra["quiet"])
    else:
        given = [k for k, v in memory.items() if v is not None]
        if arch == "gpt" and given:
            raise ConfigError(f"{', '.join('--' + g.replace('_', '-') for g in given)} need a memory model: "
                              "--arch bswa, fam or infini")
        mem = None if arch == "gpt" else MemoryConfig(arch=arch, **{k: v for k, v in memory.items() if v is not None})
        cfg = RunConfig.build(preset=extra["preset"] or ("tiny" if extra["config"] is None else None),
                              file=extra["config"], model=model, train=tr)
        spec = Rows(rows["passkey"] or 0.0, _byte_range(rows["passkey_bytes"] or "256-1024"), rows["row_length"] or 0)
        if extra["name"] is not None and not extra["name"].strip():
            raise ConfigError("--name must not be empty")
        tags = [t.strip() for t in (extra["tags"] or "").split(",") if t.strip()]
        run_id, stopped = train_memory(cfg, mem, rows=spec, quiet=extra["quiet"], name=extra["name"], tags=tags)
    if extra["quiet"]:
        print(run_id, flush=True)
    if stopped:
        raise typer.Exit(130)


def _byte_range(text: str) -> tuple[int, int]:
    try:
        lo, hi = (int(v) for v in text.split("-"))
    except ValueError:
        raise ConfigError(f"--passkey-bytes takes MIN-MAX in bytes (e.g. 256-1024), got {text!r}") from None
    return lo, hi


def _token_finetune(resume: str | None, init_from: str | None) -> str | None:
    """'resume' or 'new' when the command is a fine-tune of a token model (an imported run, or a
    fine-tune of one), else None (imo's byte trainer handles it)."""
    if resume is None and init_from is None:
        return None
    from imo.runs.store import RunStore
    from imo.train.finetune import KIND, is_token_run

    with RunStore.open() as store:
        r = store.get(store.resolve(resume or init_from))
    if resume is not None:
        return "resume" if r["kind"] == KIND else None
    return "new" if is_token_run(r["config"]) else None


# `imo train` flags a fine-tune of an imported model has no use for (its shape is the import's)
_NOT_FOR_FINETUNE = ("preset", "config", "pos", "attn", "n_layer", "n_embd", "n_head", "rope_scale", "dropout",
                     "compile", "tensorboard")


def _run_finetune(mode: str, flags: dict, resume: str | None, name: str | None, tags: str | None, quiet: bool):
    from imo.model.lora import DEFAULT_TARGETS, LoRAConfig
    from imo.train import finetune

    def flag(k: str) -> str:
        return "--" + {"n_layer": "layers", "n_embd": "width", "n_head": "heads", "context_length": "context"}.get(k, k).replace("_", "-")

    if mode == "resume":
        given = [k for k, v in flags.items() if v is not None]
        if given or name is not None or tags is not None:
            raise ConfigError(f"--resume keeps the fine-tune's saved config; drop {', '.join(flag(g) for g in given) or '--name/--tags'}")
        return finetune.resume(resume, quiet=quiet)
    wrong = [flag(k) for k in _NOT_FOR_FINETUNE if flags.get(k) is not None]
    if wrong:
        raise ConfigError(f"an imported model keeps its own shape and trainer settings; drop {', '.join(wrong)}")
    rank = flags["lora_rank"] or 0
    if rank < 0:
        raise ConfigError(f"lora-rank must be >= 0 (0: a full fine-tune), got {rank}")
    if rank == 0 and any(flags[k] is not None for k in ("lora_alpha", "lora_dropout", "lora_targets")):
        raise ConfigError("--lora-alpha/--lora-dropout/--lora-targets need --lora-rank R > 0")
    lora = None
    if rank:
        targets = tuple(t.strip() for t in (flags["lora_targets"] or ",".join(DEFAULT_TARGETS)).split(",") if t.strip())
        lora = LoRAConfig(rank=rank, alpha=flags["lora_alpha"] if flags["lora_alpha"] is not None else 2.0 * rank,
                          dropout=flags["lora_dropout"] or 0.0, targets=targets)
    if name is not None and not name.strip():
        raise ConfigError("--name must not be empty")
    train_keys = ("corpus", "steps", "minutes", "batch_size", "grad_accum", "lr", "warmup", "eval_every",
                  "ckpt_every", "seed", "device", "dtype")
    if flags["steps"] is not None and flags["minutes"] is not None:
        raise ConfigError("give either steps or minutes, not both")
    t = finetune.train_config({k: flags[k] for k in train_keys}, rank)
    tag_list = [x.strip() for x in (tags or "").split(",") if x.strip()]
    return finetune.finetune(flags["init_from"], t, flags["context_length"], lora, name=name, tags=tag_list, quiet=quiet)


def budget_row(minutes: float) -> tuple[dict, dict] | None:
    """(model overrides, train overrides) of the first BUDGETS row whose budget covers `minutes`."""
    return next(((m, t) for most, m, t in BUDGETS if minutes <= most), None)


# flags that belong together: a given --width drops the row's head count too, and vice versa
_LINKED = ({"n_embd", "n_head"},)


def sized_for_budget(minutes: float, model: dict, tr: dict) -> tuple[dict, dict]:
    """The model and train overrides of a --minutes run without a preset: the budget row's
    values, except where a flag gave one (flags win, and a linked field goes with its flag)."""
    row_model, row_train = budget_row(minutes) or ({}, {})
    given = {k for k, v in model.items() if v is not None}
    for group in _LINKED:
        if given & group:
            given |= group
    out_model = {**{k: v for k, v in row_model.items() if k not in given},
                 **{k: v for k, v in model.items() if v is not None}}
    out_train = {**row_train, **{k: v for k, v in tr.items() if v is not None}}
    return out_model, out_train


def warm_up(cfg, steps: int = WARMUP_STEPS) -> None:
    """A few throwaway training steps of a model of this shape on random bytes, before a
    --minutes run on a CPU. The loop turns the budget into a step count from the time of the first
    steps; on a CPU the first ones of a shape are slow (oneDNN creates its kernels, the allocator
    grows: 0.51, 0.39, 0.40, 0.36 s, then ~0.27 s for tiny in bf16 on machine C), which cost such
    a run ~15% of its steps. The kernels are cached per shape for the process, so the run's own
    model starts fast. The run's seed is set after this, so its numbers do not change."""
    import torch

    from imo.model import GPT
    from imo.train.precision import autocast, resolve_dtype
    from imo.train.trainer import resolve_device

    t = cfg.train
    device = resolve_device(t.device)
    if device != "cpu":
        return
    dtype = resolve_dtype(t.dtype, device)
    model = GPT(cfg.model).train()
    opt = torch.optim.AdamW(model.parameters(), lr=t.lr, fused=True)
    rows = t.batch_size // t.grad_accum
    for _ in range(steps):
        x = torch.randint(0, cfg.model.vocab_size, (rows, cfg.model.context_length))
        with autocast(dtype, device):
            loss = model(x, x)[1]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)


def _finish(outcome, quiet: bool) -> None:
    """-q prints the run id (for scripts); a run stopped by a signal exits 128 + its number
    (130 Ctrl-C, 143 SIGTERM), so `imo train ... && imo eval ...` does not go on."""
    if quiet:
        print(outcome.run_id, flush=True)
    if outcome.stopped:
        raise typer.Exit(128 + (outcome.signal or 2))


def _knn_lm(store, run_id, model, loaded, data, ctx, max_bytes, retrieval, max_keys, k, lambdas, max_overlaps, tokens):
    """`imo eval --retrieval knn-lm`: the table of bits/byte by overlap threshold and lambda."""
    from imo.console import print_table
    from imo.model.gpt import GPT

    if tokens or not isinstance(model, GPT):
        raise ConfigError(f"--retrieval knn-lm reads a byte GPT; run {run_id} is not one")
    if max_keys < ctx or k < 1:
        raise ConfigError(f"--max-keys must be >= the context ({ctx}) and --k >= 1")

    def numbers(text: str, what: str) -> list[float]:
        try:
            vals = [float(v) for v in text.split(",") if v.strip()]
        except ValueError:
            vals = []
        if not vals or any(not 0 <= v <= 1 for v in vals):
            raise ConfigError(f"{what} takes numbers in [0, 1] separated by commas, got {text!r}")
        return vals

    lams, thrs = numbers(lambdas, "--lambdas"), numbers(max_overlaps, "--max-overlaps")
    from imo.retrieve.knnlm import build_store, knn_bpb

    scored = data[: max_bytes + 1] if max_bytes else data
    kstore = build_store(model, loaded.train, ctx, max_keys=max_keys)
    out = knn_bpb(model, kstore, scored, ctx, k=k, lambdas=lams, max_overlaps=thrs, max_windows=None)
    rows = [[f"<= {t}", f"{r['neighbours_per_position']:.1f}"] + [f"{r['bpb'][f'{lam:g}']:.4f}" for lam in lams]
            for t, r in out["by_overlap"].items()]
    print_table(["neighbour overlap", "neighbours"] + [f"lambda {lam:g}" for lam in lams], rows,
                title=f"kNN-LM: model alone {out['bpb_lm']:.4f} bits/byte over {out['positions']:,} positions; "
                      f"{out['keys']:,} keys from the training split, k={k}")
    store.put_result("eval-knn-lm", run_id, out, [run_id])


def eval_command(
    run: Annotated[str, typer.Argument(help="Run id, unique prefix or name.")],
    corpus: Annotated[str | None, Opt(help="Corpus to evaluate on. [default: the run's own]")] = None,
    context: Annotated[int | None, Opt(help="Evaluation context length (a memory run reads each window block by block, so it may exceed the training context). [default: the training context; imported runs 512 tokens]")] = None,
    split: Annotated[str, Opt(help="train or val.")] = "val",
    max_bytes: Annotated[int | None, Opt(help="Score only the first N bytes of the split.")] = None,
    retrieval: Annotated[str | None, Opt(help="knn-lm: also interpolate with a kNN over the corpus's training split (imo.retrieve.knnlm), by neighbour overlap (docs/memory.md). retro: score a RETRO-lite run (imo train --retrieval retro) with neighbours at overlap <= 0, 0.2, 0.5, 1.")] = None,
    max_keys: Annotated[int, Opt(help="--retrieval: datastore keys (training positions, spread over the split).")] = 100_000,
    k: Annotated[int, Opt(help="--retrieval: neighbours per position.")] = 16,
    lambdas: Annotated[str, Opt(help="--retrieval: interpolation weights of the kNN distribution, comma-separated.")] = "0.1,0.2,0.3,0.4,0.5",
    max_overlaps: Annotated[str, Opt(help="--retrieval: overlap thresholds (8-gram fraction; 1 = no filter), comma-separated.")] = "0,0.2,0.5,1",
) -> None:
    """Bits per byte of a run's model on a corpus split. An imported (token) run is scored with
    its own tokenizer and shown beside xz -9e and the best byte model this store has on the same split."""
    from imo.data.corpora import load_corpus
    from imo.runs.store import RunStore
    from imo.train.checkpoint import load_model
    from imo.train.evaluate import evaluate_split

    if retrieval not in (None, "knn-lm", "retro"):
        raise ConfigError(f"unknown --retrieval {retrieval!r}; choose knn-lm or retro")
    store = RunStore.open()
    run_id = store.resolve(run)
    from imo.retrieve.retro import KIND as RETRO_KIND

    if store.get(run_id)["kind"] == RETRO_KIND:
        if retrieval == "knn-lm":
            raise ConfigError(f"run {run_id} is a RETRO run; score it with --retrieval retro")
        _retro_eval(store, run_id, corpus, split, context, max_bytes)
        return
    if retrieval == "retro":
        raise ConfigError(f"run {run_id} is not a RETRO run (train one with imo train --retrieval retro)")
    if store.get(run_id)["kind"] == "memory":  # imo.memory.train.KIND: a block-recurrent model
        from imo.memory.train import load_memory_model

        model, meta = load_memory_model(store.run_dir(run_id))
    else:
        model, meta = load_model(store.run_dir(run_id))
    corpus_name = corpus or meta["config"].get("train", {}).get("corpus")
    if corpus_name is None:
        raise ConfigError(f"run {run_id} was not trained here; name a corpus with --corpus")
    if corpus_name.startswith("chat:"):
        raise ConfigError(f"run {run_id} was fine-tuned on instruction data ({corpus_name}); name a text corpus with --corpus")
    tokens = (meta["config"].get("tokenizer") or {}).get("kind", "byte") != "byte"  # an imported BPE model
    if context is not None:
        ctx = context
    elif tokens:
        ctx = (meta["config"].get("finetune") or {}).get("context") or min(512, model.cfg.context_length)
    else:
        ctx = model.cfg.context_length
    if ctx < 1:
        raise ConfigError(f"context must be >= 1, got {ctx}")
    if max_bytes is not None and max_bytes < 1:
        raise ConfigError(f"max-bytes must be >= 1, got {max_bytes}")
    model.positions.check_length(ctx)
    loaded = load_corpus(corpus_name)
    data = loaded.split(split)
    payload = {"corpus": corpus_name, "split": split, "context": ctx, "max_bytes": max_bytes}
    if tokens:
        from imo.importers.evaluate import beside, evaluate_run_split

        payload["bpb"] = evaluate_run_split(store.run_dir(run_id), model, meta, data, ctx, max_bytes)
        scored = bytes(data[:max_bytes] if max_bytes else data)
        payload["beside"] = beside(store, corpus_name, split, scored,
                                   bytes(loaded.train) if split == "val" else None, max_bytes)
    else:
        payload["bpb"] = evaluate_split(model, data, ctx, max_bytes)
    if retrieval is not None:
        _knn_lm(store, run_id, model, loaded, data, ctx, max_bytes, retrieval, max_keys, k, lambdas, max_overlaps, tokens)
    store.put_result("eval", run_id, payload, [run_id])
    print(f"{payload['bpb']:.4f} bits/byte  run {run_id}  corpus {corpus_name} ({split})  context {ctx}")
    if tokens:
        b = payload["beside"]
        given = f" (given the training split: {b['xz_given_train']:.4f})" if "xz_given_train" in b else ""
        best = b["byte_model"]
        byte = (f"best byte model in this store {best['bpb']:.4f} (run {best['run']}, {best['how']})" if best
                else f"no byte model in this store was scored on it (imo train --corpus {corpus_name})")
        print(f"  beside: xz -9e {b['xz']:.4f}{given}; {byte}")
