"""`imo inspect browse|lens|patch|attn|dla`: the feature browser and the everyday lens tools.

    imo inspect browse SAE_RUN -o site/            # a static site; open site/index.html
    imo inspect lens RUN --prompt "def main():" -o lens.png
    imo inspect patch RUN --clean "x = 1 + 2" --corrupt "x = 1 + 5" -o patch.png
    imo inspect attn RUN --prompt "import numpy as np" -o attn.png
    imo inspect dla RUN --prompt "import numpy as np" -o dla.png
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from imo.errors import ConfigError

Opt = typer.Option
Run = Annotated[str, typer.Argument(help="Run id, unique prefix or name of the language model.")]
Force = Annotated[bool, Opt(help="Overwrite an existing output file.")]


def _load_lm(run: str):
    """(run id, model, tokenizer, run metadata) of a language-model run."""
    from imo.data.tokenizer import load_tokenizer
    from imo.runs.store import RunStore
    from imo.train.checkpoint import load_model

    store = RunStore.open()
    rid = store.resolve(run)
    run_dir = store.run_dir(rid)
    model, meta = load_model(run_dir)
    return rid, model, load_tokenizer(run_dir, meta), meta


def _encode(model, tok, text: str, what: str = "--prompt"):
    import torch

    ids = tok.encode(text)
    if not ids:
        raise ConfigError(f"{what} is empty")
    if len(ids) > model.cfg.context_length:
        raise ConfigError(f"{what} is {len(ids)} tokens; the model's context is {model.cfg.context_length}")
    return torch.tensor([ids])


def _one_token(tok, text: str, what: str) -> int:
    ids = tok.encode(text)
    if len(ids) != 1:
        raise ConfigError(f"{what} {text!r} is {len(ids)} tokens; give text that is exactly one token")
    return ids[0]


def _fresh(path: Path, force: bool) -> Path:
    if path.exists() and not force:
        raise ConfigError(f"{path} exists", hint="pass --force to overwrite it")
    if not path.parent.is_dir():
        raise ConfigError(f"folder {path.parent} does not exist")
    return path


def _texts(tok, ids) -> list[str]:
    from imo.inspect.browser import token_text

    return [token_text(tok, i) for i in ids]


def browse_command(
    sae_run: Annotated[str, typer.Argument(help="Run id or unique prefix of an SAE run (imo inspect sae).")],
    out: Annotated[Path, Opt("-o", "--out", help="Folder for the site (index.html, app.js, data/).")] = Path("site"),
    windows: Annotated[int, Opt(help="Validation windows to scan.")] = 64,
    context: Annotated[int, Opt(help="Tokens per window; 0 = the model's context length.")] = 128,
    examples: Annotated[int, Opt(help="Examples in the top bin and in each quantile bin.")] = 8,
    bins: Annotated[int, Opt(help="Quantile intervals of each feature's nonzero activations.")] = 4,
    ablate: Annotated[int, Opt(help="Top examples per feature whose ablation effect is measured (0: none).")] = 8,
    ablate_features: Annotated[int, Opt(help="Measure ablation effects on features 0 .. N-1 only (0: all); "
                                        "each feature costs a forward pass of its top windows.")] = 0,
    seed: Annotated[int, Opt(help="Seed for the quantile samples.")] = 0,
    force: Annotated[bool, Opt(help="Write into a folder that is not empty.")] = False,
    quiet: Annotated[bool, Opt("-q", "--quiet", help="No progress lines.")] = False,
) -> None:
    """Write a static feature browser for an SAE run; open OUT/index.html (no server needed).

    Per feature: density and a log-density histogram, top activations in quantile bins, ± logits
    through the decoder, per-token ablation effects on the loss, nearest features; a search box."""
    import sys

    import numpy as np
    import torch
    from safetensors.torch import load_file

    from imo.data.corpora import load_corpus
    from imo.data.tokenizer import ByteTokenizer
    from imo.inspect import browser
    from imo.inspect import sae as S
    from imo.runs.store import RunStore

    torch.set_num_threads(1)
    cfg = browser.BrowseConfig(windows=windows, context=context, examples=examples, bins=bins,
                               ablate=ablate, ablate_features=ablate_features, seed=seed)
    cfg.check()
    browser.check_out(out, force)
    store = RunStore.open()
    sid = store.resolve(sae_run)
    run = store.get(sid)
    if run["kind"] != "sae" or "sae" not in (run.get("artifacts") or {}):
        raise ConfigError(f"run {sid[:12]} is a {run['kind']} run, not an SAE (imo inspect sae makes them)")
    sae = S.load(load_file(run["artifacts"]["sae"]), run["config"]["sae"])
    hook, lm = run["config"]["hook"], run["config"]["lm"]
    rid, model, tok, meta = _load_lm(lm)
    # the SAE's own corpus (several, joined by commas: their validation splits in turn), else the LM's
    corpus = run["config"].get("corpus") or ((meta.get("config") or {}).get("train") or {}).get("corpus", "python-docs")
    ctx = min(context or model.cfg.context_length, model.cfg.context_length)
    parts = []
    for name in corpus.split(","):
        val = load_corpus(name).split("val")
        parts.append(np.asarray(val if isinstance(tok, ByteTokenizer)     # a subword run: encode enough bytes
                                else tok.encode(bytes(val[: windows * ctx * 8])), dtype=np.int64))
        if sum(map(len, parts)) >= windows * ctx:
            break
    ids = np.concatenate(parts)
    n = min(windows, len(ids) // ctx)
    if n < 1:
        raise ConfigError(f"the validation split has {len(ids)} tokens, less than one window of {ctx}")
    w = torch.from_numpy(ids[: n * ctx].reshape(n, ctx))
    log = None if quiet else (lambda d, t: print(f"\rfeatures {d}/{t}", end="", file=sys.stderr, flush=True))
    data = browser.collect(model, tok, sae, hook, w, cfg, log=log)
    if not quiet:
        print(file=sys.stderr)
    figs = run.get("figures") or {}
    shown = [f"{k} {figs[k]:.3g}" for k in ("fvu", "l0", "loss_recovered") if isinstance(figs.get(k), int | float)]
    meta_out = {"sae": sid, "lm": rid, "hook": hook, "arch": sae.cfg.arch, "latents": sae.cfg.latents,
                "corpus": f"{corpus} (val)", "metrics": shown}
    page = browser.write_site(out, data, meta_out, force=force)
    typer.echo(f"wrote {page}: {sae.cfg.latents} features over {data['tokens']} tokens "
               f"({data['dead']} never fired)")


def lens_command(
    run: Run,
    prompt: Annotated[str, Opt(help="Text to read.")],
    out: Annotated[Path, Opt("-o", "--out", help="PNG of the layer x position grid.")] = Path("lens.png"),
    top: Annotated[int, Opt(help="Predictions printed per layer at the last position.")] = 5,
    force: Force = False,
) -> None:
    """Logit lens: each layer's residual read through the final norm and the unembedding.

    Draws the layer x position grid of top predictions; prints each layer's top tokens at the end."""
    import torch

    from imo.inspect import lens, lens_figures

    torch.set_num_threads(1)
    _, model, tok, _ = _load_lm(run)
    idx = _encode(model, tok, prompt)
    _fresh(out, force)
    probs = lens.logit_lens(model, idx)[:, 0].float().softmax(-1)      # (L + 1, T, vocab)
    p, i = probs.max(-1)
    layers = ["embed"] + [f"block {b}" for b in range(model.cfg.n_layer)]
    text = [_texts(tok, row.tolist()) for row in i]
    lens_figures.lens_figure(p, text, _texts(tok, idx[0].tolist()), layers, out)
    for name, row in zip(layers, probs[:, -1], strict=True):
        v, t = row.topk(min(top, row.numel()))
        typer.echo(f"{name:>9}: " + "  ".join(f"{s!r} {x:.2f}" for s, x in zip(_texts(tok, t.tolist()), v.tolist(), strict=True)))
    typer.echo(f"wrote {out}")


def patch_command(
    run: Run,
    clean: Annotated[str, Opt(help="The clean prompt (patches are taken from its run).")],
    corrupt: Annotated[str, Opt(help="The corrupted prompt, as many tokens as the clean one.")],
    answer: Annotated[str | None, Opt(help="Answer token; default: the clean run's top prediction.")] = None,
    wrong: Annotated[str | None, Opt(help="Wrong token; default: the corrupted run's top prediction.")] = None,
    kind: Annotated[str, Opt(help="Activation patched: resid_pre, attn_out, mlp_out or resid_post.")] = "resid_pre",
    out: Annotated[Path, Opt("-o", "--out", help="PNG of the layer x position heatmap.")] = Path("patch.png"),
    force: Force = False,
) -> None:
    """Activation patching from a clean prompt into a corrupted one, per layer x position.

    Each cell runs the corrupted prompt with one activation taken from the clean run; its score is
    the share of the clean logit difference (answer - wrong, last position) it restores."""
    import torch

    from imo.inspect import lens, lens_figures
    from imo.model.hooks import run_with_cache

    torch.set_num_threads(1)
    _, model, tok, _ = _load_lm(run)
    c, x = _encode(model, tok, clean, "--clean"), _encode(model, tok, corrupt, "--corrupt")
    if c.shape != x.shape:
        raise ConfigError(f"--clean is {c.shape[1]} tokens and --corrupt {x.shape[1]}; patching needs equal lengths")
    if kind not in lens.KINDS:
        raise ConfigError(f"unknown --kind {kind!r}; choose one of: {', '.join(lens.KINDS)}")
    _fresh(out, force)
    clean_top = run_with_cache(model, c, [])[0][0, -1].topk(2).indices.tolist()
    a = _one_token(tok, answer, "--answer") if answer is not None else clean_top[0]
    if wrong is not None:
        b = _one_token(tok, wrong, "--wrong")
    else:
        b = int(run_with_cache(model, x, [])[0][0, -1].argmax())
        b = b if b != a else next(t for t in clean_top if t != a)
    if a == b:
        raise ConfigError("--answer and --wrong are the same token")
    res = lens.patch_scan(model, c, x, a, b, kind=kind)
    sa, sb = _texts(tok, [a, b])
    title = f"{kind} patched clean -> corrupt; logit diff {sa!r} - {sb!r}: clean {res['ld_clean']:.2f}, corrupt {res['ld_corrupt']:.2f}"
    lens_figures.patch_figure(res["score"], _texts(tok, x[0].tolist()), out, title)
    s = res["score"]
    layer, pos = divmod(int(torch.nan_to_num(s, nan=-1e9).argmax()), s.shape[1])
    typer.echo(f"logit difference {sa!r} - {sb!r}: clean {res['ld_clean']:.3f}, corrupt {res['ld_corrupt']:.3f}")
    typer.echo(f"largest restoration {float(s[layer, pos]):.3f} at block {layer}, position {pos}")
    if abs(res["ld_clean"] - res["ld_corrupt"]) < 0.5:
        typer.echo("note: the two prompts differ by under 0.5 in this logit difference, so the scores "
                   "are ratios of small numbers; pick --answer/--wrong that the prompts separate")
    typer.echo(f"wrote {out}")


def attn_command(
    run: Run,
    prompt: Annotated[str, Opt(help="Text to run.")],
    layer: Annotated[list[int] | None, Opt(help="Layer(s) to draw (repeatable); default: all.")] = None,
    out: Annotated[Path, Opt("-o", "--out", help="PNG with one panel per (layer, head).")] = Path("attn.png"),
    force: Force = False,
) -> None:
    """Attention patterns of every head for one prompt (rows: queries, columns: keys)."""
    import torch

    from imo.inspect import lens, lens_figures

    torch.set_num_threads(1)
    _, model, tok, _ = _load_lm(run)
    idx = _encode(model, tok, prompt)
    layers = sorted(set(layer)) if layer else list(range(model.cfg.n_layer))
    if any(not 0 <= i < model.cfg.n_layer for i in layers):
        raise ConfigError(f"--layer must be in 0 .. {model.cfg.n_layer - 1}")
    _fresh(out, force)
    pat = lens.attention_patterns(model, idx)[layers]
    lens_figures.attn_figure(pat, _texts(tok, idx[0].tolist()), layers, out)
    prev = pat[..., 1:, :].diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1)   # (layers, nh)
    for r, i in enumerate(layers):
        typer.echo(f"block {i}: mean attention to the previous token per head " +
                   " ".join(f"{v:.2f}" for v in prev[r].tolist()))
    typer.echo(f"wrote {out}")


def dla_command(
    run: Run,
    prompt: Annotated[str, Opt(help="Text to run.")],
    token: Annotated[str | None, Opt(help="Token whose logit is split; default: the top prediction.")] = None,
    against: Annotated[str | None, Opt(help="Split logit[token] - logit[against] instead.")] = None,
    position: Annotated[int, Opt(help="Position read (negative counts from the end).")] = -1,
    top: Annotated[int, Opt(help="Largest parts printed.")] = 8,
    out: Annotated[Path, Opt("-o", "--out", help="PNG: heads grid and the other parts.")] = Path("dla.png"),
    force: Force = False,
) -> None:
    """Direct logit attribution: a logit split by head, MLP, embedding and biases.

    The parts are read through the final norm with its scale frozen, so they sum to the logit."""
    import torch

    from imo.inspect import lens, lens_figures
    from imo.model.hooks import run_with_cache

    torch.set_num_threads(1)
    _, model, tok, _ = _load_lm(run)
    idx = _encode(model, tok, prompt)
    T = idx.shape[1]
    if not -T <= position < T:
        raise ConfigError(f"--position {position} is outside the prompt's {T} tokens")
    _fresh(out, force)
    pos = position % T
    t = _one_token(tok, token, "--token") if token is not None else int(run_with_cache(model, idx, [])[0][0, pos].argmax())
    vs = _one_token(tok, against, "--against") if against is not None else None
    d = lens.direct_logit_attribution(model, idx, t, position=pos, against=vs)
    what = f"logit {_texts(tok, [t])[0]!r}" + (f" - {_texts(tok, [vs])[0]!r}" if vs is not None else "")
    lens_figures.dla_figure(d, out, f"direct logit attribution of {what} at position {pos}")
    parts = [(f"L{i}H{h}", float(d["heads"][i, h])) for i in range(d["heads"].shape[0]) for h in range(d["heads"].shape[1])]
    parts += [("embed", d["embed"]), ("norm bias", d["norm_bias"])] + [(f"mlp {i}", float(v)) for i, v in enumerate(d["mlp"])]
    parts += [(f"attn bias {i}", float(v)) for i, v in enumerate(d["attn_bias"]) if v != 0]
    typer.echo(f"{what} at position {pos}: {d['logit']:.3f}; parts sum to {lens.dla_total(d):.3f}")
    for name, v in sorted(parts, key=lambda p: -abs(p[1]))[:top]:
        typer.echo(f"  {name:>12} {v:+.3f}")
    typer.echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    app.command("browse")(browse_command)
    app.command("lens")(lens_command)
    app.command("patch")(patch_command)
    app.command("attn")(attn_command)
    app.command("dla")(dla_command)
