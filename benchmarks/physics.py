"""Forecasting and contact prediction on the pymunk exam (issue 21): the baselines that need no
training beside an MLP, an interaction network and a transformer over state vectors.

Every learned model trains on the frame pairs of the same training scenes (seeds 1000000, ...)
for the same number of steps and batch size, and is scored on other scenes (seeds 0, 1, ...).
It predicts positions at +0.25, 0.5, 1 and 2 s by rolling itself out from the last frame of 0.5 s
of context. Contact: will ball 0 begin to touch ball 1 within 3 s? A learned model answers by
rolling out 3 s and checking whether the two balls come within two radii. The score is
balanced accuracy.

    flock /tmp/imo-heavy.lock python benchmarks/physics.py [--train 500] [--test 200]
        [--steps 3000] [--models mlp,in,transformer] [--json out.json]

`--part contact` measures the learned contact classifiers (imo.physics.contact_learned) instead:
trained on seeds 2000000, ... at each of --contact-train sizes, scored on --test scenes (seeds
0, 1, ...) beside the constant answer, constant velocity, the solo-paths rule and pymunk resumed
from the context states.

    flock /tmp/imo-heavy.lock python benchmarks/physics.py --part contact --test 1000 \
        --contact-train 1000,4000,16000

`--part llm` measures the "LLM as physicist" row (imo.physics.llm): a byte GPT trained through
imo.train.loop.fit on --train scenes written as text, answering greedily through imo.engine, scored
on the same --test scenes beside constant velocity and ballistic (unparsed answers count as the
constant-velocity guess; the parse rate is printed).

    flock /tmp/imo-heavy.lock python benchmarks/physics.py --part llm --llm-steps 800
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np
import torch

from imo.physics import baselines, contact, learned
from imo.physics.scenes import SceneConfig, generate

WIDTHS = {"mlp": 128, "in": 64, "transformer": 44}  # roughly equal parameters for in/transformer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--train", type=int, default=500)
    ap.add_argument("--test", type=int, default=200)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--models", default="mlp,in,transformer")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json")
    ap.add_argument("--part", default="forecast", choices=("forecast", "contact", "phyre", "balance", "llm"))
    ap.add_argument("--llm-steps", type=int, default=800, help="--part llm: gradient steps of the byte GPT")
    ap.add_argument("--llm-width", type=int, default=96, help="--part llm: the GPT's n_embd")
    ap.add_argument("--llm-layers", type=int, default=3, help="--part llm: the GPT's n_layer")
    ap.add_argument("--stacks", type=int, default=500, help="balance / properties test items (4x train)")
    ap.add_argument("--phyre-train", type=int, default=40, help="PHYRE-lite training tasks per template")
    ap.add_argument("--phyre-test", type=int, default=20, help="PHYRE-lite test tasks per template")
    ap.add_argument("--contact-train", default="1000,4000,16000")
    args = ap.parse_args()
    torch.set_num_threads(1)
    commit = os.environ.get("BENCH_COMMIT") or subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}, 1 thread, commit {commit}, load {os.getloadavg()[0]:.2f}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    cfg = SceneConfig(seconds=3.5)
    if args.part == "contact":
        return contact_part(args, cfg, commit)
    if args.part == "phyre":
        return phyre_part(args, commit)
    if args.part == "balance":
        return balance_part(args, commit)
    if args.part == "llm":
        return llm_part(args, cfg, commit)
    train = [generate(1_000_000 + i, cfg) for i in range(args.train)]
    test = [generate(i, cfg) for i in range(args.test)]
    labels = [contact.touches(s, 0, 1) for s in test]
    rows = []
    base = baselines.forecast_errors(test)
    cv_guess = [contact.constant_velocity_touches(s, 0, 1) for s in test]
    for name, errs in base.items():
        acc = contact.balanced_accuracy(labels, cv_guess) if name == "constant velocity" else None
        rows.append({"model": name, "errors": errs, "contact": acc})
    for m in args.models.split(","):
        fc = learned.ForecastConfig(model=m, hidden=WIDTHS[m], steps=args.steps, seed=args.seed)
        load = os.getloadavg()[0]
        f = learned.fit(train, fc)
        acc = contact.balanced_accuracy(labels, learned.rollout_touches(f, test))
        row = {"model": m, "errors": learned.forecast_errors(f, test), "contact": acc,
               "parameters": f.parameters, "flops_per_step": learned.step_flops(f, test, fc.batch),
               "seconds": round(f.seconds, 1), "load": round(load, 2), "config": fc.__dict__}
        rows.append(row)
        print(m, row, flush=True)
    ballistic_1s = base["ballistic"][1.0]
    print(f"\n{args.train} training scenes, {args.test} test scenes, {args.steps} steps of "
          f"{learned.ForecastConfig().batch} frames; {sum(labels)}/{args.test} test scenes positive "
          "for contact\n")
    print("| model | parameters | train GFLOPs | train s (load) | +0.25 s | +0.5 s | +1 s | +2 s | "
          "+1 s / ballistic | contact balanced accuracy |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        e = r["errors"]
        flops = f"{r['flops_per_step'] * args.steps / 1e9:.1f}" if "flops_per_step" in r else "-"
        secs = f"{r['seconds']} ({r['load']:.1f})" if "seconds" in r else "-"
        acc = f"{100 * r['contact']:.1f}%" if r["contact"] is not None else "-"
        print(f"| {r['model']} | {r.get('parameters', 0):,} | {flops} | {secs} | {e[0.25]:.2f} | "
              f"{e[0.5]:.2f} | {e[1.0]:.2f} | {e[2.0]:.2f} | {e[1.0] / ballistic_1s:.2f} | {acc} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"commit": commit, "rows": rows}, fh, indent=2, default=str)


def llm_part(args, cfg, commit) -> None:
    from imo.physics import llm

    if min(args.llm_steps, args.llm_width, args.llm_layers, args.train, args.test) < 1:
        print("error: --llm-steps, --llm-width, --llm-layers, --train and --test must be >= 1", file=sys.stderr)
        raise SystemExit(2)
    train = [generate(1_000_000 + i, cfg) for i in range(args.train)]
    test = [generate(i, cfg) for i in range(args.test)]
    lc = llm.LLMConfig(n_embd=args.llm_width, n_layer=args.llm_layers, steps=args.llm_steps, seed=args.seed)
    load = os.getloadavg()[0]
    f = llm.fit(train, lc, quiet=True)
    t0 = time.perf_counter()
    ev = llm.forecast_errors(f, test)
    decode_s = time.perf_counter() - t0
    base = baselines.forecast_errors(test)
    # two guesses that read no motion, for scale: the last context position, and the mean
    # position of every frame of the training scenes
    mean = np.concatenate([s.states[:, :, :2].reshape(-1, 2) for s in train]).mean(0)
    c = int(round(0.5 * cfg.hz))
    for name, guess in (("last position", lambda s: s.states[c, :, :2]), ("training mean position", lambda s: mean)):
        base[name] = {h: float(np.mean([np.linalg.norm(guess(s) - s.states[c + int(round(h * cfg.hz)), :, :2], axis=-1)
                                        / cfg.radius for s in test])) for h in baselines.HORIZONS_S}
    row = {**f.to_dict(), **ev, "decode_s": round(decode_s, 1), "load": round(load, 2)}
    print("llm", row, flush=True)
    print(f"\n{args.train} training scenes, {args.test} test scenes; byte GPT {args.llm_layers}x{args.llm_width}, "
          f"{f.steps} steps of {lc.batch} examples ({f.example_bytes} bytes each), "
          f"{f.seconds:.0f} s training at load {load:.1f}, {decode_s:.0f} s greedy decoding\n")
    print("| model | parameters | +0.25 s | +0.5 s | +1 s | +2 s | parsed (+0.25/0.5/1/2 s) |")
    print("|---|---|---|---|---|---|---|")
    for name, e in base.items():
        print(f"| {name} | 0 | {e[0.25]:.2f} | {e[0.5]:.2f} | {e[1.0]:.2f} | {e[2.0]:.2f} | - |")
    e, p = ev["errors"], ev["parsed"]
    print(f"| byte LM (text) | {f.parameters:,} | {e[0.25]:.2f} | {e[0.5]:.2f} | {e[1.0]:.2f} | {e[2.0]:.2f} | "
          + " / ".join(f"{100 * p[h]:.0f}%" for h in p) + " |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"commit": commit, "llm": row, "baselines": base}, fh, indent=2, default=str)


def contact_part(args, cfg, commit) -> None:
    from imo.physics import contact_learned

    test = [generate(i, cfg) for i in range(args.test)]
    sizes = [int(n) for n in args.contact_train.split(",")]
    pool = [generate(2_000_000 + i, cfg) for i in range(max(sizes))]
    results = []
    for n in sizes:
        t0 = time.perf_counter()
        ev = contact_learned.evaluate(pool[:n], test, seed=args.seed)
        ev["seconds"], ev["load"] = round(time.perf_counter() - t0, 1), round(os.getloadavg()[0], 2)
        results.append(ev)
        print(n, {k: round(v, 4) for k, v in ev["balanced_accuracy"].items()}, flush=True)
    ev = results[-1]
    print(f"\n{args.test} test scenes (seeds 0-{args.test - 1}), {100 * ev['positive_share']:.1f}% "
          "positive; training scenes from seed 2000000\n")
    names = list(ev["balanced_accuracy"])
    print("| training scenes | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for n, r in zip(sizes, results, strict=True):
        print(f"| {n:,} | " + " | ".join(f"{100 * r['balanced_accuracy'][k]:.1f}%" for k in names) + " |")
    print("\nplain accuracy at the largest size: " + ", ".join(
        f"{k} {100 * v:.1f}%" for k, v in ev["accuracy"].items()))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"commit": commit, "sizes": sizes, "results": results}, fh, indent=2, default=str)


def phyre_part(args, commit) -> None:
    from imo.physics import phyre_lite

    t0 = time.perf_counter()
    r = phyre_lite.evaluate(args.phyre_train, args.phyre_test, seed=args.seed)
    r["seconds"], r["load"] = round(time.perf_counter() - t0, 1), round(os.getloadavg()[0], 2)
    print(f"PHYRE-lite: {len(r['templates'])} templates, {args.phyre_train} training and "
          f"{args.phyre_test} test tasks per template, {r['per_task']} simulated actions per "
          f"training task, a pool of {r['pool']}, oracle budget {r['oracle_budget']}; "
          f"{r['seconds']} s\n")
    print("| split | template | random | ranker | oracle |")
    print("|---|---|---|---|---|")
    for split in ("within", "cross"):
        for t, row in r[split]["per_template"].items():
            print(f"| {split} | {t} | {100 * row['random']:.1f} | {100 * row['ranker']:.1f} | "
                  f"{100 * row['oracle']:.1f} |")
        print(f"| {split} | **all** | {100 * r[split]['random']:.1f} | {100 * r[split]['ranker']:.1f} | "
              f"{100 * r[split]['oracle']:.1f} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"commit": commit, **r}, fh, indent=2, default=str)


def balance_part(args, commit) -> None:
    """The balance task and object properties from motion (4x --stacks training items)."""
    from imo.physics import balance, properties

    n = args.stacks
    t0 = time.perf_counter()
    b = balance.evaluate(train=4 * n, test=n, seed=args.seed)
    p = properties.evaluate(train=4 * n, test=n, seed=args.seed)
    print(f"balance: {4 * n} training stacks, {n} test stacks, "
          f"{100 * b['test_standing_share']:.1f}% of test stacks stand; {time.perf_counter() - t0:.1f} s\n")
    print("| stands: answer | balanced accuracy |\n|---|---|")
    for k, v in b["stands_balanced_accuracy"].items():
        print(f"| {k} | {100 * v:.1f}% |")
    print("\n| centre of mass: answer | mean error, m |\n|---|---|")
    for k, v in b["com_error_m"].items():
        print(f"| {k} | {v:.4f} |")
    print(f"\nproperties: {4 * n} training and {n} test trajectories, "
          f"{100 * p['test_collided_share']:.1f}% collide\n")
    names = list(next(iter(p["mae"].values())))
    print("| property (mean abs error) | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for prop, row in p["mae"].items():
        print(f"| {prop} | " + " | ".join(f"{row[k]:.4f}" for k in names) + " |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"commit": commit, "balance": b, "properties": p}, fh, indent=2, default=str)


if __name__ == "__main__":
    main()
