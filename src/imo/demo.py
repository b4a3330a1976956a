"""`imo demo`: the main job on the built-in corpus, end to end, in under 10 minutes on 2 cores.

1. trains the tiny preset on python-docs and puts its validation bits/byte beside xz given the
   training bytes as a prefix (the fair classic baseline), then samples from it;
2. checks every registered claim at the quick budget;
3. writes the HTML report and says where it is.
"""

from typing import Annotated

import typer


def demo_command(
    minutes: Annotated[float, typer.Option(help="Training budget of step 1, in minutes.")] = 2.0,
    claims: Annotated[bool, typer.Option(help="Check the claims and write the report (steps 2-3).")] = True,
) -> None:
    """Train, evaluate and sample a tiny model; check every claim (quick); write the report."""
    from imo import paths
    from imo.baselines import conditional_bpb
    from imo.claims.cli import check_command, report_command
    from imo.data.corpora import load_corpus
    from imo.engine.sample import generate
    from imo.runs.store import RunStore
    from imo.train.checkpoint import load_model
    from imo.train.config import RunConfig
    from imo.train.trainer import train

    print("== 1. train the tiny preset on python-docs ==", flush=True)
    cfg = RunConfig.build(preset="tiny", model={"pos": "rope"}, train={"minutes": minutes})
    run_id = train(cfg)
    store = RunStore.open()
    figures = store.get(run_id)["figures"]
    corpus = load_corpus(cfg.train.corpus)
    xz = conditional_bpb("xz", bytes(corpus.train), bytes(corpus.val))
    print(f"validation: model {figures['val_bpb']:.3f} bits/byte; "
          f"xz -9e given the training bytes as a prefix {xz:.3f} bits/byte")
    model, _ = load_model(store.run_dir(run_id))
    prompt = "The for statement"
    print("sample: " + prompt + "".join(generate(model, prompt, 160, temperature=0.8, seed=0)), flush=True)
    if claims:
        print("\n== 2. check every claim (quick budget) ==", flush=True)
        check_command(ids=None, all_=True, quick=True, threads=1)
        print("\n== 3. the report ==", flush=True)
        report_command(out=paths.store_dir() / "report.html", force=True)
    print(f"\nnext: imo runs show {run_id}   imo eval {run_id}   imo sample {run_id} --prompt 'def '")
