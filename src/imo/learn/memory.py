"""Training memory of each learning rule, three ways, beside the memory of inference.

1. Tensor bytes (exact, deterministic): after a few training steps, the bytes of the parameters,
   of the gradients still attached to them and of the optimiser's state. MeZO's is the parameters
   alone: no gradient is ever stored and its SGD has no state.
2. Exact live tensor bytes of one step (`step_bytes`, by torch dispatch): the peak of everything a
   step holds beyond the parameters — gradients, optimiser state, saved activations, temporaries —
   which is what the `local-learning` claim compares (the rules that learn layer by layer free each
   layer's gradient as soon as it is applied).
3. Peak resident memory in a fresh child process, by exams/memory.py's method (reset the kernel's
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


class LiveBytes:
    """Exact live tensor bytes while a block runs, by torch dispatch: every tensor an operation
    returns is followed to its storage, counted once, and uncounted when the storage is freed
    (a weak reference to it fires). Tensors made before the block count only if `adopt`ed.

        with LiveBytes() as lb: ...;  lb.peak"""

    def __init__(self) -> None:
        self.now = self.peak = 0
        self._live: dict[int, int] = {}

    def adopt(self, t, count: bool = True) -> None:
        """Follow t's storage from now on; count=False: known but not counted (the parameters,
        which in-place updates hand back)."""
        import weakref

        st = t.untyped_storage()
        key = id(st)
        if key in self._live:
            return
        n = st.nbytes() if count else 0
        self._live[key] = n
        self.now += n
        self.peak = max(self.peak, self.now)
        weakref.finalize(st, self._free, key)

    def _free(self, key: int) -> None:
        self.now -= self._live.pop(key, 0)

    def __enter__(self):
        import torch
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils._pytree import tree_flatten

        outer = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                for t in tree_flatten(out)[0]:
                    if isinstance(t, torch.Tensor) and t.device.type == "cpu" and not t.is_sparse:
                        outer.adopt(t)
                return out

        self._mode = Mode()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._mode.__exit__(*exc)


def step_bytes(rule, x, y) -> dict[str, int]:
    """Exact tensor bytes of one training step (after one warm-up step, so lazily made optimiser
    state exists): `held`, what inference holds too (parameters and buffers), and `training`, the
    peak during the step of everything else that is live: gradients, optimiser state, saved
    activations and temporaries (the gradients and state left from the warm-up step count from the
    start). Tensors a rule keeps outside its modules and optimisers (DFA's fixed feedback
    matrices, the voltage traces: 0.04 MiB at 3x1000) are not counted.

        step_bytes(rule, x, y)["training"]     # bytes a step needs beyond the parameters"""
    rule.step(x, y)
    opts = list(getattr(rule, "opts", [])) + [o for o in (getattr(rule, "opt", None),
                                                          getattr(rule, "readout_opt", None)) if o is not None]
    import torch

    held = sum(t.numel() * t.element_size() for t in (*rule.net.parameters(), *rule.net.buffers()))
    lb = LiveBytes()
    for t in (*rule.net.parameters(), *rule.net.buffers()):
        lb.adopt(t, count=False)
    for p in rule.net.parameters():
        if p.grad is not None:
            lb.adopt(p.grad)
    for o in opts:
        for state in o.state.values():
            for v in state.values():
                if isinstance(v, torch.Tensor) and v.dim() > 0:
                    lb.adopt(v)
    start = lb.now
    with lb:
        rule.step(x, y)
    return {"held": held, "training": lb.peak, "carried": start}


def measure_here(rule_name: str, hidden: tuple[int, ...], batch: int, n_in: int = 784, n_classes: int = 10,
                 seed: int = 0, optimizer: str = "adam") -> dict:
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
    cfg = RuleConfig(hidden=hidden, seed=seed, optimizer=optimizer)
    cfg.total_steps = 1000
    rule = make_rule(rule_name, cfg, shape)
    gen = torch.Generator().manual_seed(seed)
    x, y = torch.rand(batch, n_in, generator=gen), torch.randint(0, n_classes, (batch,), generator=gen)
    # warm-up: first-use costs (thread pool, kernels, autograd and optimiser code) are nobody's
    # training memory, so a throwaway copy of the rule at width 8 takes one step first
    small = RuleConfig(hidden=tuple(8 for _ in hidden), seed=seed, optimizer=optimizer)
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
    exact = step_bytes(rule, x, y)  # after the RSS figures: the dispatch tracer costs memory of its own
    return {"rule": rule_name, "optimizer": rule.optimizer_name(), "hidden": list(hidden), "batch": batch,
            "inference_peak_mib": inference, "training_peak_mib": training, "tensor_bytes": tensor_bytes(rule),
            "step_bytes": exact}


def measure(rule_name: str, hidden: tuple[int, ...], batch: int = 100, seed: int = 0, timeout: float = 600,
            optimizer: str = "adam") -> dict:
    """One rule's figures, from a fresh child process."""
    src = str(Path(__file__).resolve().parents[2])  # the child imports this very imo
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p),
           "MALLOC_MMAP_THRESHOLD_": str(128 * 1024), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "imo.learn.memory", rule_name, "--hidden", ",".join(map(str, hidden)),
           "--batch", str(batch), "--seed", str(seed), "--optimizer", optimizer]
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
    ap.add_argument("--optimizer", default="adam")
    args = ap.parse_args(argv)
    hidden = tuple(int(h) for h in args.hidden.split(","))
    print(json.dumps(measure_here(args.rule, hidden, args.batch, seed=args.seed, optimizer=args.optimizer)))


if __name__ == "__main__":
    main()
