"""`imo sample` (the one text-generation command) and `imo serve` (the HTTP server)."""

import sys
from typing import Annotated

import typer

from imo.errors import ConfigError

Opt = typer.Option


def _load(run: str):
    from imo.runs.store import RunStore
    from imo.train.checkpoint import load_model

    store = RunStore.open()
    run_id = store.resolve(run)
    model, _ = load_model(store.run_dir(run_id))
    return run_id, model


def sample_command(
    run: Annotated[str, typer.Argument(help="Run id, unique prefix or name.")],
    prompt: Annotated[str, Opt(help="Text to continue.")] = "\n",
    tokens: Annotated[int, Opt(help="Bytes to generate.")] = 200,
    strategy: Annotated[str | None, Opt(help="greedy, sample or beam. [default: sample; greedy if --temperature 0]")] = None,
    temperature: Annotated[float | None, Opt(help="Sampling temperature; 0 is greedy. [default: 0.8]")] = None,
    top_k: Annotated[int | None, Opt(help="Sample among the k most likely bytes.")] = None,
    top_p: Annotated[float | None, Opt(help="Sample from the smallest set of bytes with this much probability.")] = None,
    seed: Annotated[int | None, Opt(help="Seed, for a repeatable sample.")] = None,
    n: Annotated[int, Opt("--n", help="Answers: samples from one prefill, or the best beams.")] = 1,
    beam_width: Annotated[int | None, Opt(help="Beams (strategy beam). [default: 4]")] = None,
    length_penalty: Annotated[float | None, Opt(help="Beam score = sum log p / length ** this. [default: 1]")] = None,
    stop: Annotated[list[str] | None, Opt(help="Stop after this text (repeatable).")] = None,
    alternatives: Annotated[int, Opt(help="Also print this many next answers, as if each were rejected.")] = 0,
    interactive: Annotated[bool, Opt("--interactive", "-i", help="Enter accepts, r rejects and shows the next answer, q quits.")] = False,
    threshold: Annotated[float, Opt(help="Branch where the runner-up has at least this share of the top probability.")] = 0.5,
    speculate: Annotated[int, Opt(help="Passes to spend ahead on runner-up branches (eager alternatives).")] = 0,
) -> None:
    """Continue a prompt with a run's model, printing as it goes."""
    from imo.engine.branches import BranchConfig
    from imo.engine.config import GenerationConfig
    from imo.engine.decode import Engine

    if strategy is None:
        strategy = "greedy" if temperature == 0 else "sample"
    kw: dict = dict(strategy=strategy, max_tokens=tokens, n=n, stop=tuple(stop or ()))
    if temperature == 0 and strategy == "greedy":
        temperature = None
    if strategy == "sample" and temperature is None:
        temperature = 0.8
    opts = dict(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, beam_width=beam_width,
                length_penalty=length_penalty)
    kw.update({k: v for k, v in opts.items() if v is not None})
    if temperature is not None and temperature < 0:
        raise ConfigError(f"temperature must be >= 0 (0 is greedy), got {temperature}")
    cfg = GenerationConfig(**kw)
    if tokens < 0:
        raise ConfigError(f"tokens must be >= 0, got {tokens}")
    branch = BranchConfig(threshold=threshold, speculate=speculate)
    if (alternatives or interactive) and (strategy == "beam" or n > 1):
        raise ConfigError("--alternatives and --interactive need strategy greedy or sample with --n 1")
    if alternatives < 0:
        raise ConfigError(f"alternatives must be >= 0, got {alternatives}")
    _, model = _load(run)
    eng = Engine(model)
    ids = list(prompt.encode())
    if alternatives or interactive:
        _alternatives(eng, prompt, ids, cfg, branch, alternatives, interactive)
        return
    if strategy == "beam" or n > 1:
        for i, c in enumerate(eng.complete(ids, cfg)):
            score = "" if c.score is None else f", score {c.score:.3f}"
            print(f"--- answer {i + 1} ({c.finish_reason}{score})")
            print(prompt + c.text)
        return
    from imo.engine.sample import decode_stream

    sys.stdout.write(prompt)
    for piece in decode_stream(ev.token for ev in eng.stream(ids, cfg)):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")


def _alternatives(eng, prompt, ids, cfg, branch, count: int, interactive: bool) -> None:
    from imo.errors import ImoError

    s = eng.session(ids, cfg, branch)

    def show(a) -> None:
        how = "first answer" if a.parent is None else f"branched at byte {a.parent[1]} of answer {a.parent[0] + 1}"
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
                print(f"answer {p['answer'] + 1} byte {p['position']}: {bytes([a])!r} {pa:.2f} vs "
                      f"{bytes([b])!r} {pb:.2f}{' (used)' if p['used'] else ''}")
        else:
            print(f"unknown key {cmd!r}; Enter, r, b or q")


def serve_command(
    run: Annotated[str, typer.Argument(help="Run id, unique prefix or name.")],
    host: Annotated[str, Opt(help="Address to bind; other machines can reach it only if you change this.")] = "127.0.0.1",
    port: Annotated[int, Opt(help="Port.")] = 8000,
    api_key: Annotated[str | None, Opt(help="Require 'Authorization: Bearer KEY' on every request.")] = None,
    prefix_budget: Annotated[int, Opt(help="Tokens the shared prefix tree may hold (0: no prefix tree).")] = 65536,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No start-up line.")] = False,
) -> None:
    """Serve a run over HTTP: OpenAI-compatible /v1/completions plus imo's alternatives endpoints."""
    import uvicorn

    from imo.engine.decode import Engine
    from imo.engine.prefix import PrefixTree
    from imo.engine.server import create_app

    if not 0 < port < 65536:
        raise ConfigError(f"port must be in 1..65535, got {port}")
    if prefix_budget < 0:
        raise ConfigError(f"prefix-budget must be >= 0, got {prefix_budget}")
    import socket

    try:  # refuse a taken port or a foreign address with one line, before loading anything
        with socket.create_server((host, port)):
            pass
    except OSError as e:
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    run_id, model = _load(run)
    eng = Engine(model, PrefixTree(prefix_budget) if prefix_budget else None)
    app = create_app(eng, run_id, api_key=api_key)
    if not quiet:
        print(f"imo: serving run {run_id} on http://{host}:{port}/v1 (model id {run_id!r})", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning" if quiet else "info")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
