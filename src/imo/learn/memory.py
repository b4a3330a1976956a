"""Training memory of each learning rule, two ways, beside the memory of inference.

1. Tensor bytes (exact, deterministic): after a few training steps, the bytes of the parameters,
   of the gradients still attached to them and of the optimiser's state. MeZO's is the parameters
   alone: no gradient is ever stored and its SGD has no state.
2. Peak resident memory in a fresh child process, by exams/memory.py's method (reset the kernel's
   VmHWM mark through /proc/self/clear_refs, glibc's mmap threshold pinned so freed buffers leave):
   the growth of the peak over the resident size before, during one inference forward and during
   three training steps. This counts activations and temporaries too (MeZO's one regenerated
   direction tensor, backprop's saved activations).

    measure("mezo", hidden=(1000, 1000, 1000), batch=100)       # one child process -> dict
    python -m imo.learn.memory mezo --hidden 1000,1000,1000     # the child: prints one JSON line
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

MiB = 2**20


def tensor_bytes(rule) -> dict[str, int]:
    import torch

    params = list(rule.net.parameters())
    grads = sum(p.grad.numel() * p.grad.element_size() for p in params if p.grad is not None)
    opts = list(getattr(rule, "opts", [])) + [o for o in (getattr(rule, "opt", None),
                                                          getattr(rule, "readout_opt", None)) if o is not None]
    state = sum(v.numel() * v.element_size() for o in opts for s in o.state.values() for v in s.values()
                if isinstance(v, torch.Tensor) and v.dim() > 0)
    return {"params": sum(p.numel() * p.element_size() for p in params), "grads": grads, "optimizer": state}


def measure_here(rule_name: str, hidden: tuple[int, ...], batch: int, n_in: int = 784, n_classes: int = 10,
                 seed: int = 0) -> dict:
    """In this process (meaningful only in a fresh one): see the module docstring."""
    import torch

    from imo.exams.memory import _status_mib, reset_peak
    from imo.learn.loop import make_rule
    from imo.learn.rules import RuleConfig

    torch.set_num_threads(1)

    class Shape:  # make_rule reads only the sizes
        pass

    shape = Shape()
    shape.n_in, shape.n_classes = n_in, n_classes
    cfg = RuleConfig(hidden=hidden, seed=seed)
    cfg.total_steps = 1000
    rule = make_rule(rule_name, cfg, shape)
    gen = torch.Generator().manual_seed(seed)
    x, y = torch.rand(batch, n_in, generator=gen), torch.randint(0, n_classes, (batch,), generator=gen)
    # warm-up: first-use costs (thread pool, kernels, autograd and optimiser code) are nobody's
    # training memory, so a throwaway copy of the rule at width 8 takes one step first
    small = RuleConfig(hidden=tuple(8 for _ in hidden), seed=seed)
    small.total_steps = 1000
    make_rule(rule_name, small, shape).step(x, y)
    rule.logits(x)
    if not reset_peak():
        raise OSError("this kernel cannot reset the peak RSS mark (/proc/self/clear_refs)")
    base = _status_mib("VmRSS")
    rule.logits(x)
    inference = _status_mib("VmHWM") - base
    reset_peak()
    base = _status_mib("VmRSS")
    for _ in range(3):
        rule.step(x, y)
    training = _status_mib("VmHWM") - base
    return {"rule": rule_name, "hidden": list(hidden), "batch": batch, "inference_peak_mib": inference,
            "training_peak_mib": training, "tensor_bytes": tensor_bytes(rule)}


def measure(rule_name: str, hidden: tuple[int, ...], batch: int = 100, seed: int = 0, timeout: float = 600) -> dict:
    """One rule's figures, from a fresh child process."""
    src = str(Path(__file__).resolve().parents[2])  # the child imports this very imo
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p),
           "MALLOC_MMAP_THRESHOLD_": str(128 * 1024), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "imo.learn.memory", rule_name, "--hidden", ",".join(map(str, hidden)),
           "--batch", str(batch), "--seed", str(seed)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"memory measurement of {rule_name} failed (exit {res.returncode}): "
                           f"{res.stderr.strip().splitlines()[-1:] or ['no output']}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="one rule's training memory (prints one JSON line)")
    ap.add_argument("rule")
    ap.add_argument("--hidden", default="256,256")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    hidden = tuple(int(h) for h in args.hidden.split(","))
    print(json.dumps(measure_here(args.rule, hidden, args.batch, seed=args.seed)))


if __name__ == "__main__":
    main()
