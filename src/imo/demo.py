"""`imo demo`: the main job on the built-in corpus, end to end, in a few minutes on 2 cores.

Trains the tiny preset on python-docs, evaluates it beside xz given the training text as a
prefix (the fair classic baseline), samples from it and lists the run.
"""

from typing import Annotated

import typer


def demo_command(
    minutes: Annotated[float, typer.Option(help="Training budget in minutes.")] = 2.0,
) -> None:
    """Train, evaluate and sample a tiny model on the built-in corpus."""
    from imo.baselines import conditional_bpb
    from imo.data.corpora import load_corpus
    from imo.engine.sample import generate
    from imo.runs.store import RunStore
    from imo.train.checkpoint import load_model
    from imo.train.config import RunConfig
    from imo.train.trainer import train

    cfg = RunConfig.build(preset="tiny", model={"pos": "rope"}, train={"minutes": minutes})
    run_id = train(cfg)
    store = RunStore.open()
    figures = store.get(run_id)["figures"]
    corpus = load_corpus(cfg.train.corpus)
    xz = conditional_bpb("xz", bytes(corpus.train), bytes(corpus.val))
    print(f"\nvalidation: model {figures['val_bpb']:.3f} bits/byte; "
          f"xz -9e given the training bytes as a prefix {xz:.3f} bits/byte")
    model, _ = load_model(store.run_dir(run_id))
    prompt = "The for statement"
    print("\nsample:\n" + prompt + "".join(generate(model, prompt, 200, temperature=0.8, seed=0)))
    print(f"\nnext: imo runs show {run_id}   imo eval {run_id}   imo sample {run_id} --prompt 'def '")
