"""`imo inspect ...`: look inside models. First: toy models of superposition.

    imo inspect tms -o tms/                 # n=20, m=5 figures over a sparsity sweep
    imo inspect tms --phase -o tms/         # and the n=2, m=1 phase diagram with its theory
    imo inspect cache RUN --hook blocks.2.hook_resid_post --tokens 100000 -o acts/
    imo inspect sae RUN --hook blocks.2.hook_resid_post --arch topk --latents 1024 --k 16
    imo inspect browse SAE_RUN -o site/     # and lens, patch, attn, dla: see tools_cli.py
"""

import json
from pathlib import Path
from typing import Annotated

import typer

from imo.errors import ConfigError

Opt = typer.Option

inspect_app = typer.Typer(help="Look inside models: toy models of superposition, activation caches, SAEs, "
                          "a feature browser, the logit lens, patching, attention patterns, DLA.", no_args_is_help=True)


def _parse_floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"--sparsities must be comma-separated numbers, got {text!r}") from None


@inspect_app.command("tms")
def tms_command(
    out: Annotated[Path, Opt("-o", "--out", help="Folder for the PNGs and summary.json.")] = Path("tms"),
    n: Annotated[int, Opt(help="Features.")] = 20,
    m: Annotated[int, Opt(help="Hidden dimensions.")] = 5,
    decay: Annotated[float, Opt(help="Importance of feature i is decay**i.")] = 0.7,
    sparsities: Annotated[str, Opt(help="Comma-separated S = P(x_i = 0).")] =
        "0,0.7,0.9,0.97,0.99,0.997,0.999",
    steps: Annotated[int, Opt(help="Training steps (all sparsities train together).")] = 10_000,
    batch: Annotated[int, Opt(help="Batch size.")] = 1024,
    lr: Annotated[float, Opt(help="AdamW learning rate.")] = 1e-3,
    seed: Annotated[int, Opt(help="Seed.")] = 0,
    phase: Annotated[bool, Opt("--phase/--no-phase", help="Also the n=2, m=1 phase diagram.")] = False,
    grid: Annotated[int, Opt(help="Phase diagram: grid size (grid x grid cells).")] = 20,
    phase_seeds: Annotated[int, Opt(help="Phase diagram: seeds per cell (lowest loss kept).")] = 3,
    phase_steps: Annotated[int, Opt(help="Phase diagram: training steps.")] = 4000,
    force: Annotated[bool, Opt(help="Overwrite an existing summary.json in --out.")] = False,
) -> None:
    """Train toy models of superposition and draw the paper's figures."""
    import torch

    from imo.atomic import write_text
    from imo.inspect import figures, tms

    torch.set_num_threads(1)  # tiny models: one thread is fastest and leaves the machine to others
    summary_path = out / "summary.json"
    if summary_path.exists() and not force:
        raise ConfigError(f"{summary_path} exists", hint="pass --force to overwrite it")
    cfg = tms.TMSConfig(n=n, m=m, decay=decay, sparsities=_parse_floats(sparsities), steps=steps,
                        batch=batch, lr=lr, seed=seed)
    pcfg = tms.PhaseConfig(size=grid, seeds=phase_seeds, steps=phase_steps, seed=seed)
    cfg.check()
    if phase:
        pcfg.check()
    res = tms.train_tms(cfg)
    paths = figures.tms_figures(res, out)
    norms = tms.feature_norms(res.W)
    Di = tms.dimensions_per_feature(res.W)
    Dstar = tms.dimensions_per_represented_feature(res.W)
    rows = []
    for i, s in enumerate(cfg.sparsities):
        keep = norms[i] > tms.REPRESENTED
        med = float(Di[i][keep].median()) if keep.any() else 0.0
        rows.append({"sparsity": s, "loss": float(res.loss[i]), "represented": int(keep.sum()),
                     "D_star": float(Dstar[i]), "median_D_i": med})
        typer.echo(f"S={s:<6g} loss={float(res.loss[i]):.4f} represented={int(keep.sum()):>3}/{n} "
                   f"D*={float(Dstar[i]):.3f} median D_i={med:.3f}")
    summary: dict = {"config": cfg.__dict__, "sparsities": rows}
    if phase:
        theory, _ = tms.theory_phases(pcfg)
        emp = tms.train_phase_diagram(pcfg)
        agree = float((emp["phase"] == theory).float().mean())
        paths.append(figures.phase_figure(emp["phase"], theory, emp["density"], emp["importance"],
                                          out / "tms_phase.png"))
        summary["phase"] = {"config": {**pcfg.__dict__}, "agreement": agree,
                            "trained": emp["phase"].tolist(), "theory": theory.tolist()}
        typer.echo(f"phase diagram {grid}x{grid}: trained agrees with theory on {agree:.1%} of cells")
    write_text(summary_path, json.dumps(summary, indent=1, default=list))
    for p in paths:
        typer.echo(f"wrote {p}")


def _run_tokens(run: str, split: str, tokens: int, context: int, corpus: str | None = None):
    """(run id, model, token ids of the corpus split, context, corpus name, tokenizer).

    `corpus` is one corpus or several joined by commas (their splits are concatenated in that
    order); by default the run's own training corpus."""
    import numpy as np

    from imo.data.corpora import load_corpus
    from imo.data.tokenizer import ByteTokenizer, load_tokenizer
    from imo.runs.store import RunStore
    from imo.train.checkpoint import load_model

    store = RunStore.open()
    rid = store.resolve(run)
    run_dir = store.run_dir(rid)
    model, meta = load_model(run_dir)
    cfg = meta.get("config") or {}
    names = [c.strip() for c in (corpus or "").split(",") if c.strip()]
    if not names:
        names = [(cfg.get("train") or {}).get("corpus", "python-docs")]
    tok = load_tokenizer(run_dir, meta)
    parts, have = [], 0
    for name in names:
        data = load_corpus(name).split(split)
        if isinstance(tok, ByteTokenizer):
            part = np.asarray(data)
        else:  # a subword run: encode a prefix long enough for the request (a token is >= 1 byte)
            part = np.asarray(tok.encode(bytes(data[: (tokens - have) * 8])), dtype=np.int64)
        parts.append(part)
        have += len(part)
        if have >= tokens:
            break
    ids = parts[0] if len(parts) == 1 else np.concatenate([p.astype(np.int64) for p in parts])
    ctx = context or int((cfg.get("model") or {}).get("context_length", 256))
    return rid, model, ids, ctx, ",".join(names), tok


@inspect_app.command("cache")
def cache_command(
    run: Annotated[str, typer.Argument(help="Run id or unique prefix.")],
    hook: Annotated[str, Opt(help="Hook point, e.g. blocks.2.hook_resid_post.")],
    tokens: Annotated[int, Opt(help="Activations (tokens) to store.")] = 100_000,
    out: Annotated[Path, Opt("-o", "--out", help="Cache folder (acts.f32 + meta.json).")] = Path("acts"),
    split: Annotated[str, Opt(help="Corpus split: train or val.")] = "train",
    corpus: Annotated[str | None, Opt(help="Corpus, or several joined by commas; default: the run's own.")] = None,
    context: Annotated[int, Opt(help="Window length; 0 = the model's context length.")] = 0,
    batch: Annotated[int, Opt(help="Windows per forward pass.")] = 8,
    force: Annotated[bool, Opt(help="Replace a different cache in --out.")] = False,
    quiet: Annotated[bool, Opt("-q", "--quiet", help="No progress line.")] = False,
) -> None:
    """Stream one hook point's activations over the run's corpus into a memory-mapped file
    (resumes an unfinished cache with the same settings)."""
    import sys

    import torch

    from imo.inspect.activations import cache_activations

    torch.set_num_threads(1)
    rid, model, ids, ctx, corpus_name, _ = _run_tokens(run, split, tokens, context, corpus)

    def show(done: int, total: int) -> None:
        if not quiet:
            print(f"\r{done}/{total} tokens", end="", file=sys.stderr, flush=True)

    m = cache_activations(model, ids, hook, tokens, out, context=ctx, batch=batch, force=force,
                          source={"run": rid, "corpus": corpus_name, "split": split}, progress=show)
    if not quiet:
        print(file=sys.stderr)
    typer.echo(f"{out}: {m['filled']} x {m['d']} float32 activations of {hook} from run {rid[:12]}")


_SAE_FLAGS = ("run", "hook", "arch", "latents", "k", "l1", "l0_coef", "tokens", "steps", "batch", "lr", "seed",
              "acts", "corpus", "context")


@inspect_app.command("sae")
def sae_command(
    cli: typer.Context,
    run: Annotated[str | None, typer.Argument(help="Run id or unique prefix of the language model.")] = None,
    hook: Annotated[str | None, Opt(help="Hook point, e.g. blocks.2.hook_resid_post.")] = None,
    arch: Annotated[str, Opt(help="Architecture: topk, batchtopk, jumprelu or relu-l1.")] = "topk",
    latents: Annotated[int, Opt(help="Dictionary size.")] = 1024,
    k: Annotated[int, Opt(help="topk, batchtopk: active latents per token (batchtopk: on average).")] = 16,
    l1: Annotated[float, Opt(help="relu-l1: L1 coefficient.")] = 5.0,
    l0_coef: Annotated[float, Opt(help="jumprelu: L0 coefficient.")] = 3e-3,
    tokens: Annotated[int, Opt(help="Activations to train on (cached first if absent).")] = 200_000,
    steps: Annotated[int, Opt(help="Training steps.")] = 2000,
    batch: Annotated[int, Opt(help="Batch size (tokens).")] = 4096,
    lr: Annotated[float, Opt(help="Adam learning rate.")] = 1e-3,
    seed: Annotated[int, Opt(help="Seed.")] = 0,
    acts: Annotated[Path | None, Opt(help="Activation cache folder; default: in the store, per run and hook.")] = None,
    corpus: Annotated[str | None, Opt(help="Corpus, or several joined by commas; default: the run's own.")] = None,
    context: Annotated[int, Opt(help="Window length for caching and evaluation; 0 = the model's context length.")] = 0,
    eval_windows: Annotated[int, Opt(help="Validation windows for loss recovered.")] = 16,
    every: Annotated[int, Opt("--checkpoint-every", help="Save the training state every this many steps.")] = 250,
    resume: Annotated[str | None, Opt(help="Continue an interrupted SAE run from its last checkpoint (its config is kept).")] = None,
    quiet: Annotated[bool, Opt("-q", "--quiet", help="No progress lines.")] = False,
) -> None:
    """Train a sparse autoencoder on one hook point of a run; print FVU, L0, dead fraction, loss
    recovered against zero and mean ablation and the KL to the clean model; save it as a run of
    kind 'sae' (safetensors). Ctrl-C or SIGTERM checkpoints and stops; --resume SAE_RUN continues."""
    import sys

    import numpy as np
    import torch
    from safetensors.torch import save_file

    from imo import paths
    from imo.atomic import atomic_path
    from imo.inspect import sae as S
    from imo.inspect.activations import cache_activations, open_activations
    from imo.inspect.darkmatter import dark_matter
    from imo.inspect.sae_runs import STATE, train_resumable
    from imo.inspect.tms import dimensions_per_feature
    from imo.runs.store import RunStore
    from imo.train.loop import StopFlag

    torch.set_num_threads(1)
    store = RunStore.open()
    sid = None
    if resume is not None:
        given = [p for p in _SAE_FLAGS if getattr(cli.get_parameter_source(p), "name", "") == "COMMANDLINE"]
        if given:
            raise ConfigError("--resume keeps the SAE run's saved config; drop " +
                              ", ".join("RUN" if g == "run" else "--" + g.replace("_", "-") for g in given))
        sid = store.resolve(resume)
        saved = store.get(sid)
        if saved["kind"] != "sae":
            raise ConfigError(f"run {sid[:12]} is a {saved['kind']} run, not an SAE")
        if saved["status"] == "finished":
            raise ConfigError(f"SAE run {sid[:12]} has finished; there is nothing to resume")
        c = saved["config"]
        if "acts" not in c:
            raise ConfigError(f"SAE run {sid[:12]} was made before SAE runs could resume")
        cfg = S.SAEConfig(**c["sae"])
        run, hook, tokens, corpus, context, acts = c["lm"], c["hook"], c["tokens"], c["corpus"], c["context"], Path(c["acts"])
    elif run is None or hook is None:
        raise ConfigError("give the language model RUN and --hook (or --resume SAE_RUN)")
    else:
        cfg = S.SAEConfig(arch=arch, latents=latents, k=k, l1=l1, l0_coef=l0_coef, steps=steps, batch=batch,
                          lr=lr, seed=seed)
    cfg.check()
    if every < 1:
        raise ConfigError("--checkpoint-every must be positive")
    rid, model, ids, ctx, corpus_name, tok = _run_tokens(run, "train", tokens, context, corpus)
    tail = "".join(f"-{v}" for v in (corpus_name if corpus else "", context or "") if v)
    folder = acts or paths.store_dir() / "acts" / f"{rid}-{hook}-{tokens}{tail}"
    err = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))
    cache_activations(model, ids, hook, tokens, folder, context=ctx,
                      source={"run": rid, "corpus": corpus_name, "split": "train"},
                      progress=None if quiet else lambda d, t: print(f"\rcaching {d}/{t}", end="", file=sys.stderr))
    err("")
    data = np.asarray(open_activations(folder))
    n_eval = max(1, len(data) // 10)   # the last 10% is held out for the metrics
    if sid is None:
        sid = store.create_run("sae", f"sae-{cfg.arch}-{cfg.latents}-{hook}",
                               {"sae": cfg.__dict__, "hook": hook, "lm": rid, "tokens": tokens,
                                "corpus": corpus_name, "context": ctx, "acts": str(folder.resolve())}, parent=rid)
    else:
        store.set_status(sid, "running")
    with StopFlag() as stop:
        sae, reached, stopped = train_resumable(data[:-n_eval], cfg, store.run_dir(sid), every=every, stop=stop,
                                                log=lambda st, loss: err(f"step {st}: loss {loss:.4f}"))
    if stopped:
        store.set_status(sid, "interrupted")
        typer.echo(f"sae run {sid}: stopped at step {reached}/{cfg.steps}, checkpointed; "
                   f"continue with: imo inspect sae --resume {sid[:12]}")
        raise typer.Exit(128 + (stop.signum or 2))
    m = S.evaluate(sae, data[-n_eval:])
    _, _, val, vctx, _, _ = _run_tokens(run, "val", eval_windows * ctx, ctx, corpus)
    n_win = min(eval_windows, len(val) // vctx)
    windows = torch.tensor(np.asarray(val[: n_win * vctx], dtype=np.int64).reshape(n_win, vctx))
    m.update(S.loss_recovered(model, sae, hook, windows))
    dark = dark_matter(model, sae, hook, windows, tok)
    for kind, row in dark.items():
        m[f"dark_{kind}_tokens"], m[f"dark_{kind}_loss_gap"] = row["tokens"], row["loss_gap"]
    with torch.no_grad():  # the TMS measure on the decoder: a hidden dimension's share per feature
        m["decoder_dims_per_feature_median"] = float(dimensions_per_feature(sae.W_dec.T).median())
    tensors, jcfg = S.state(sae)
    out = store.run_dir(sid) / "sae.safetensors"
    with atomic_path(out) as tmp:
        save_file(tensors, str(tmp), metadata={"config": json.dumps(jcfg), "hook": hook, "lm": rid})
    store.add_artifact(sid, "sae", out)
    store.finish(sid, m)
    (store.run_dir(sid) / STATE).unlink(missing_ok=True)   # the final SAE replaces the training state
    typer.echo(f"sae run {sid}: FVU {m['fvu']:.4f}  L0 {m['l0']:.2f}  dead {m['dead']:.2%}  "
               f"loss recovered {m['loss_recovered']:.3f} vs zero, {m['loss_recovered_mean']:.3f} vs mean "
               f"(CE clean {m['ce_clean']:.3f}, SAE {m['ce_sae']:.3f}, zero {m['ce_zero']:.3f}, "
               f"mean {m['ce_mean']:.3f}; KL {m['kl_sae']:.4f} nats)")
    typer.echo("dark matter, share of the loss the SAE adds (share of tokens): " + ", ".join(
        f"{kind} {row['loss_gap']:.2f} ({row['tokens']:.2f})" for kind, row in dark.items()))
    typer.echo(f"decoder: median dimensions per feature D_i {m['decoder_dims_per_feature_median']:.3f}")


def register(app: typer.Typer) -> None:
    from imo.inspect import tools_cli  # browse, lens, patch, attn, dla

    tools_cli.register(inspect_app)
    app.add_typer(inspect_app, name="inspect")
