"""`imo sample` (the one text-generation command) and `imo serve` (the HTTP server), for any
run: imo's byte models and imported BPE models alike (the run's tokenizer encodes the prompt; its
end-of-sequence tokens end an answer; stop strings are matched on the text: imo.engine.text).

A byte model takes any bytes as a prompt or stop string: argv's undecodable bytes come back
through surrogateescape (`--prompt $'\\xff\\xfeabc'`), and `--prompt-file` reads a file as it is.
Errors name the flags as typed (`--tokens`), not the config fields behind them.

    imo sample RUN --prompt 'def ' --tokens 64 --temperature 0
"""

import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from imo.errors import ConfigError, DataError

Opt = typer.Option

# GenerationConfig / BranchConfig field -> the `imo sample` flag that sets it
FLAGS = {"max_tokens": "--tokens", "top_k": "--top-k", "top_p": "--top-p", "beam_width": "--beam-width",
         "length_penalty": "--length-penalty", "temperature": "--temperature", "seed": "--seed", "n": "--n",
         "stop": "--stop", "strategy": "--strategy", "threshold": "--threshold", "speculate": "--speculate"}
_FIELD = re.compile(r"(?<![\w-])(" + "|".join(sorted(FLAGS, key=len, reverse=True)) + r")(?![\w-])")


def flag_names(message: str) -> str:
    """A config error's message with each field named as the flag that sets it."""
    return _FIELD.sub(lambda m: FLAGS[m.group(1)], message)


def _argv_bytes(text: str) -> bytes:
    """argv text back to the bytes typed (Python decoded them with surrogateescape)."""
    return text.encode("utf-8", "surrogateescape")


def _shown(data: bytes) -> str:
    return data.decode("utf-8", "replace")


WEIGHTS_HELP = ("float32 (as stored), bfloat16, or int8 / int4 weight-only packed at load (torch's CPU "
                "kernels: faster decoding, slightly different numbers; docs/models.md).")


def load_run(run: str, weights: str = "float32"):
    """(run id, model, TokenText, chat spec or None) of a run, for the engine; `weights` as
    imo.model.qlinear.prepare takes them."""
    from imo.data.tokenizer import chat_spec, load_tokenizer
    from imo.engine.text import TokenText
    from imo.model.qlinear import check_weights, prepare
    from imo.runs.store import RunStore
    from imo.train.checkpoint import load_model

    with RunStore.open() as store:
        run_id = store.resolve(run)
        run_dir = store.run_dir(run_id)
    check_weights(weights)  # before the (slow) load
    model, meta = load_model(run_dir)
    prepare(model, weights)
    chat = chat_spec(run_dir)
    eos = (chat or {}).get("stop_ids") or ()
    return run_id, model, TokenText(load_tokenizer(run_dir, meta), eos), chat


def sample_command(
    run: Annotated[str, typer.Argument(help="Run id, unique prefix or name.")],
    prompt: Annotated[str | None, Opt(help="Text to continue (a byte model: any bytes). [default: a newline]")] = None,
    prompt_file: Annotated[Path | None, Opt(help="Continue this file's text instead.")] = None,
    tokens: Annotated[int, Opt(help="Tokens to generate (a byte model's tokens are bytes).")] = 200,
    strategy: Annotated[str | None, Opt(help="greedy, sample or beam. [default: sample; greedy if --temperature 0]")] = None,
    temperature: Annotated[float | None, Opt(help="Sampling temperature; 0 is greedy. [default: 0.8]")] = None,
    top_k: Annotated[int | None, Opt(help="Sample among the k most likely tokens.")] = None,
    top_p: Annotated[float | None, Opt(help="Sample from the smallest set of tokens with this much probability.")] = None,
    seed: Annotated[int | None, Opt(help="Seed, for a repeatable sample.")] = None,
    n: Annotated[int, Opt("--n", help="Answers: samples from one prefill, or the best beams.")] = 1,
    beam_width: Annotated[int | None, Opt(help="Beams (strategy beam). [default: 4]")] = None,
    length_penalty: Annotated[float | None, Opt(help="Beam score = sum log p / length ** this. [default: 1]")] = None,
    stop: Annotated[list[str] | None, Opt(help="Stop after this text (repeatable).")] = None,
    alternatives: Annotated[int, Opt(help="Also print this many next answers, as if each were rejected.")] = 0,
    interactive: Annotated[bool, Opt("--interactive", "-i", help="Enter accepts, r rejects and shows the next answer, q quits.")] = False,
    threshold: Annotated[float, Opt(help="Branch where the runner-up has at least this share of the top probability.")] = 0.5,
    speculate: Annotated[int, Opt(help="Passes to spend ahead on runner-up branches (eager alternatives).")] = 0,
    json_schema: Annotated[Path | None, Opt(help="Decode under this JSON Schema (llguidance): the answer is valid JSON of it.")] = None,
    weights: Annotated[str, Opt(help=WEIGHTS_HELP)] = "float32",
) -> None:
    """Continue a prompt with a run's model, printing as it goes."""
    try:
        _sample(run, prompt, prompt_file, tokens, strategy, temperature, top_k, top_p, seed, n, beam_width,
                length_penalty, stop, alternatives, interactive, threshold, speculate, json_schema, weights)
    except ConfigError as e:
        raise ConfigError(flag_names(str(e)), e.hint) from None


def _sample(run, prompt, prompt_file, tokens, strategy, temperature, top_k, top_p, seed, n, beam_width,
            length_penalty, stop, alternatives, interactive, threshold, speculate, json_schema=None,
            weights="float32") -> None:
    from imo.engine.branches import BranchConfig
    from imo.engine.config import GenerationConfig
    from imo.engine.decode import Engine

    if prompt is not None and prompt_file is not None:
        raise ConfigError("give --prompt or --prompt-file, not both")
    if prompt_file is not None:
        try:
            data = prompt_file.read_bytes()
        except OSError as e:
            raise DataError(f"cannot read --prompt-file {prompt_file}: {e.strerror or e}") from None
    else:
        data = _argv_bytes("\n" if prompt is None else prompt)
    if tokens < 0:
        raise ConfigError(f"--tokens must be >= 0, got {tokens}")
    if temperature is not None and temperature < 0:
        raise ConfigError(f"--temperature must be >= 0 (0 is greedy), got {temperature}")
    if alternatives < 0:
        raise ConfigError(f"--alternatives must be >= 0, got {alternatives}")
    if strategy is None:
        strategy = "greedy" if temperature == 0 else "sample"
    stops = tuple(_argv_bytes(s) for s in stop or ())
    kw: dict = dict(strategy=strategy, max_tokens=tokens, n=n, stop=stops)
    if temperature == 0 and strategy == "greedy":
        temperature = None
    if strategy == "sample" and temperature is None:
        temperature = 0.8
    opts = dict(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, beam_width=beam_width,
                length_penalty=length_penalty)
    kw.update({k: v for k, v in opts.items() if v is not None})
    cfg = GenerationConfig(**kw)
    branch = BranchConfig(threshold=threshold, speculate=speculate)
    if (alternatives or interactive) and (strategy == "beam" or n > 1):
        raise ConfigError("--alternatives and --interactive need strategy greedy or sample with --n 1")
    _, model, text, _ = load_run(run, weights)
    eng = Engine(model, text=text)
    ids = text.encode(data)
    eng.check_prompt(ids, cfg)  # before anything is printed: a refused prompt is not echoed
    shown = _shown(data)
    if json_schema is not None:
        _constrained(eng, shown, ids, cfg, json_schema, bool(alternatives or interactive or stop or top_k or top_p))
        return
    if alternatives or interactive:
        _alternatives(eng, shown, ids, cfg, branch, alternatives, interactive)
        return
    if strategy == "beam" or n > 1:
        for i, c in enumerate(eng.complete(ids, cfg)):
            score = "" if c.score is None else f", score {c.score:.3f}"
            print(f"--- answer {i + 1} ({c.finish_reason}{score})")
            print(shown + c.text)
        return
    from imo.engine.text import stream_text

    sys.stdout.write(shown)
    events = ((ev.token, bool(ev.finished)) for ev in eng.stream(ids, cfg))
    for piece in stream_text(text, events, text.stops(cfg.stop)):  # stop strings cut, as in the server
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")


def _constrained(eng, shown: str, ids: list[int], cfg, schema_file: Path, extras: bool) -> None:
    """imo sample --json-schema: one answer under the schema (imo.engine.constrained)."""
    from imo.engine.constrained import compile_schema, constrained_generate, load_schema

    if cfg.strategy == "beam" or cfg.n > 1 or extras:
        raise ConfigError("--json-schema takes greedy or plain sampling with --n 1 (no beam, --stop, --top-k, "
                          "--top-p, --alternatives or --interactive)")
    grammar = compile_schema(load_schema(schema_file), eng.text, eng.cfg.vocab_size)
    room = eng.cfg.context_length - len(ids)
    out = constrained_generate(eng, ids, grammar, max_tokens=max(1, min(cfg.max_tokens, room)),
                               temperature=cfg.temperature if cfg.strategy == "sample" else 0.0, seed=cfg.seed)
    if out.error:
        raise ConfigError(f"constrained decoding failed: {out.error}")
    print(shown + out.text)
    if not out.complete:
        raise ConfigError(f"the answer did not finish within {cfg.max_tokens} tokens; raise --tokens")


def _alternatives(eng, prompt, ids, cfg, branch, count: int, interactive: bool) -> None:
    from imo.errors import ImoError

    s = eng.session(ids, cfg, branch)

    def show(a) -> None:
        how = "first answer" if a.parent is None else f"branched at token {a.parent[1]} of answer {a.parent[0] + 1}"
        print(f"--- answer {a.index + 1} ({how}; {a.passes} forward passes, {a.seconds * 1000:.0f} ms)")
        print(prompt + a.text, flush=True)

    show(s.answer())
    for _ in range(count):
        try:
            show(s.reject())
        except ImoError as e:
            print(f"--- {e}")
            return
    while interactive:
        print("[Enter] accept  [r] reject  [b] branch points  [q] quit > ", end="", flush=True)
        line = sys.stdin.readline()
        cmd = line.strip().lower()
        if line == "" or cmd in ("", "q"):
            print()
            return
        if cmd == "r":
            try:
                show(s.reject())
            except ImoError as e:
                print(f"--- {e}")
        elif cmd == "b":
            for p in s.branch_points():
                a, b = p["candidates"]
                pa, pb = p["probabilities"]
                piece = eng.text.piece
                print(f"answer {p['answer'] + 1} token {p['position']}: {piece(a)!r} {pa:.2f} vs "
                      f"{piece(b)!r} {pb:.2f}{' (used)' if p['used'] else ''}")
        else:
            print(f"unknown key {cmd!r}; Enter, r, b or q")


def serve_command(
    run: Annotated[str, typer.Argument(help="Run id, unique prefix or name.")],
    host: Annotated[str, Opt(help="Address to bind; other machines can reach it only if you change this.")] = "127.0.0.1",
    port: Annotated[int, Opt(help="Port.")] = 8000,
    api_key: Annotated[str | None, Opt(help="Require 'Authorization: Bearer KEY' on every request.")] = None,
    prefix_budget: Annotated[int, Opt(help="Tokens the shared prefix tree may hold (0: no prefix tree).")] = 65536,
    token_budget: Annotated[int | None, Opt(help="Most tokens one request may ask for, prompt + max_tokens "
                                                 "(larger ones are refused, as OpenAI does). "
                                                 "[default: the model's context]")] = None,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No start-up line.")] = False,
    weights: Annotated[str, Opt(help=WEIGHTS_HELP)] = "float32",
    sae: Annotated[str | None, Opt(help="An SAE run of this model (imo inspect sae): adds /v1/imo/inspect "
                                        "for the feature browser's custom text and steering.")] = None,
) -> None:
    """Serve a run over HTTP: OpenAI-compatible /v1/completions and /v1/chat/completions, plus imo's alternatives."""
    from imo.engine.decode import Engine
    from imo.engine.prefix import PrefixTree
    from imo.engine.server import create_app, serve
    from imo.model.qlinear import check_weights

    check_weights(weights)
    if not 0 < port < 65536:
        raise ConfigError(f"port must be in 1..65535, got {port}")
    if prefix_budget < 0:
        raise ConfigError(f"--prefix-budget must be >= 0, got {prefix_budget}")
    if token_budget is not None and token_budget < 1:
        raise ConfigError(f"--token-budget must be >= 1, got {token_budget}")
    import socket

    try:  # refuse a taken port or a foreign address with one line, before loading anything
        with socket.create_server((host, port)):
            pass
    except OSError as e:
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    run_id, model, text, chat = load_run(run, weights)
    eng = Engine(model, PrefixTree(prefix_budget) if prefix_budget else None, text=text)
    app = create_app(eng, run_id, api_key=api_key, token_budget=token_budget, chat=chat)
    if sae:  # the feature browser's live routes (imo.inspect.routes)
        from imo.inspect.routes import add_inspect_routes, load_sae_run
        add_inspect_routes(app, model, text.tokenizer, *load_sae_run(sae, run_id))
    if not quiet:
        print(f"imo: serving run {run_id} on http://{host}:{port}/v1 (model id {run_id!r}); "
              f"Ctrl-C stops it", flush=True)
    serve(app, host=host, port=port, log_level="warning" if quiet else "info")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
