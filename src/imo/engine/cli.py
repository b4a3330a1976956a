"""`imo sample`: the one text-generation command."""

import sys
from typing import Annotated

import typer

Opt = typer.Option


def sample_command(
    run: Annotated[str, typer.Argument(help="Run id, unique prefix or name.")],
    prompt: Annotated[str, Opt(help="Text to continue.")] = "\n",
    tokens: Annotated[int, Opt(help="Bytes to generate.")] = 200,
    temperature: Annotated[float, Opt(help="Sampling temperature; 0 is greedy.")] = 0.8,
    top_k: Annotated[int | None, Opt(help="Sample among the k most likely bytes.")] = None,
    seed: Annotated[int | None, Opt(help="Seed, for a repeatable sample.")] = None,
) -> None:
    """Continue a prompt with a run's model, printing as it goes."""
    from imo.engine.sample import generate
    from imo.runs.store import RunStore
    from imo.train.checkpoint import load_model

    store = RunStore.open()
    model, _ = load_model(store.run_dir(store.resolve(run)))
    sys.stdout.write(prompt)
    for piece in generate(model, prompt, tokens, temperature=temperature, top_k=top_k, seed=seed):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
