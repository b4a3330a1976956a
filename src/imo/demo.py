"""`imo demo`: the main job on the built-in corpus, end to end, in under 10 minutes on 2 cores.

1. trains the tiny preset on python-docs and puts its validation bits/byte beside xz given the
   training bytes as a prefix (the fair classic baseline), then samples from it;
2. shows every claim's recorded full verdict (evidence/; "no full evidence yet" without one);
3. runs one-seed previews of a named subset that fits the demo's 10 minutes (DEMO_PREVIEWS,
   a few seconds each; the others stay at their recorded verdicts);
4. writes the HTML report and says where it is.
"""

from typing import Annotated

import typer

# previews that take a few seconds each at the quick budget (RESULTS.md: 0.4-5.4 s on 2 cores)
DEMO_PREVIEWS = ("compute-per-byte", "true-negative-hard", "lottery-tickets", "synflow-no-collapse",
                 "store-layer-state", "search-then-learn", "outlier-split")


def demo_command(
    minutes: Annotated[float, typer.Option(help="Training budget of step 1, in minutes.")] = 2.0,
    claims: Annotated[bool, typer.Option(help="Show the claims, preview a few and write the report (steps 2-4).")] = True,
) -> None:
    """Train, evaluate and sample a tiny model; show the recorded verdicts; preview a few claims
    (quick); write the report."""
    from imo import paths
    from imo.baselines import conditional_bpb
    from imo.claims.cli import check_command, claims_command, report_command
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
        print("\n== 2. the claims and their recorded full verdicts ==", flush=True)
        claims_command()
        print(f"\n== 3. previews (one seed each, never verdicts) of {len(DEMO_PREVIEWS)} claims ==",
              flush=True)
        check_command(ids=list(DEMO_PREVIEWS), all_=False, quick=True, threads=1)
        print("\n== 4. the report ==", flush=True)
        report_command(out=paths.store_dir() / "report.html", force=True)
    print(f"\nnext: imo runs show {run_id}   imo eval {run_id}   imo sample {run_id} --prompt 'def '")
