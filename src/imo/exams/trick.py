"""Trickability: how small a change to an input flips a model's answer.

Vision half, after Goodfellow, Shlens & Szegedy 2014 ("Explaining and harnessing adversarial
examples"). A classifier's loss J(x, y) is nearly linear in its input for small steps, so the
step of size eps in the L-infinity ball that raises the loss most is, to first order,
x' = x + eps * sign(grad_x J) — the fast gradient sign method (FGSM). Projected gradient descent
(PGD, Madry et al. 2018) repeats smaller steps of that kind and projects back into the eps ball
after each, which finds stronger examples. Both keep images valid (pixels clipped to [0, 1]).
Adversarial training mixes the two losses: J~ = a J(x, y) + (1 - a) J(x + eps sign(grad_x J), y)
with a = 1/2, the paper's recipe.

Language half (`imo.exams.trick_text`): byte substitutions in a char model's prompt.

The paper's MNIST figures (ANCHORS.md) are printed beside imo's 8x8 digits figures:

    report = vision_exam("digits", eps=(0.1, 0.25), attack="fgsm", seed=0)
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imo.errors import ConfigError

ATTACKS = ("fgsm", "pgd")
ARCHS = ("softmax", "mlp")

# Goodfellow et al. 2014, section 5-6, MNIST, eps = 0.25 (pixels in [0, 1])
PAPER_MNIST = {
    "softmax": {"fgsm_error": 0.999, "fgsm_confidence": 0.793},
    "maxout": {"fgsm_error": 0.894, "fgsm_confidence": 0.976},
    "maxout adversarially trained": {"fgsm_error": 0.179, "clean_error_before": 0.0094, "clean_error": 0.0084},
}


def check_eps(eps: float | Sequence[float]) -> list[float]:
    values = [float(e) for e in (eps if isinstance(eps, Sequence) else [eps])]
    if not values:
        raise ConfigError("give at least one epsilon, in [0, 1]")
    for e in values:
        if not 0.0 <= e <= 1.0:  # also refuses NaN
            raise ConfigError(f"epsilon must be in [0, 1] (pixels are in [0, 1]), got {e:g}")
    return values


def check_attack(name: str) -> str:
    if name not in ATTACKS:
        raise ConfigError(f"unknown attack {name!r}; choose one of: {', '.join(ATTACKS)}")
    return name


# --- classifiers ------------------------------------------------------------------------------


def make_classifier(arch: str, n_in: int, n_classes: int, hidden: int = 128) -> nn.Module:
    """`softmax`: one linear layer (multinomial logistic regression, the paper's shallow model);
    `mlp`: two hidden ReLU layers (imo's stand-in for the paper's maxout network)."""
    if arch == "softmax":
        return nn.Linear(n_in, n_classes)
    if arch == "mlp":
        return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                             nn.Linear(hidden, n_classes))
    raise ConfigError(f"unknown classifier {arch!r}; choose one of: {', '.join(ARCHS)}")


def fit(model: nn.Module, x: Tensor, y: Tensor, epochs: int, seed: int, lr: float = 1e-2,
        batch_size: int = 64, weight_decay: float = 1e-4, adv_eps: float | None = None) -> nn.Module:
    """Adam on shuffled mini-batches. With `adv_eps`, each batch's loss is half clean and half
    on its FGSM examples at that epsilon, regenerated from the current weights every step."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for b in range(0, len(x), batch_size):
            xb, yb = x[order[b:b + batch_size]], y[order[b:b + batch_size]]
            loss = F.cross_entropy(model(xb), yb)
            if adv_eps is not None:
                loss = 0.5 * loss + 0.5 * F.cross_entropy(model(fgsm(model, xb, yb, adv_eps)), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()


# --- attacks ----------------------------------------------------------------------------------


def input_gradient(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """grad_x of the summed cross-entropy: each example's gradient is its own loss's (B, D)."""
    with torch.enable_grad():  # callers may be inside no_grad
        x = x.detach().clone().requires_grad_(True)
        loss = F.cross_entropy(model(x), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def fgsm(model: nn.Module, x: Tensor, y: Tensor, eps: float | Tensor) -> Tensor:
    """x + eps * sign(grad_x J(x, y)), clipped to valid pixels. `eps` may be per example (B, 1).
    The labels y are only read; the result is detached."""
    return (x + eps * input_gradient(model, x, y).sign()).clamp(0.0, 1.0).detach()


def pgd(model: nn.Module, x: Tensor, y: Tensor, eps: float | Tensor, steps: int = 10,
        step_size: float | Tensor | None = None) -> Tensor:
    """Projected gradient ascent on the loss in the L-infinity ball of radius eps around x:
    `steps` signed steps of `step_size` (default 2.5 eps / steps, Madry et al.), each followed by a
    projection back into the ball and into [0, 1]. Starts at x, so it is deterministic."""
    if steps < 1:
        raise ConfigError(f"PGD steps must be >= 1, got {steps}")
    alpha = 2.5 * eps / steps if step_size is None else step_size
    adv = x.detach().clone()
    for _ in range(steps):
        adv = adv + alpha * input_gradient(model, adv, y).sign()
        adv = torch.max(torch.min(adv, x + eps), x - eps).clamp(0.0, 1.0).detach()  # project
    return adv


def attack_fn(name: str) -> Callable[..., Tensor]:
    return {"fgsm": fgsm, "pgd": pgd}[check_attack(name)]


@torch.no_grad()
def error_and_confidence(model: nn.Module, x: Tensor, y: Tensor) -> tuple[float, float]:
    """Error rate and mean confidence (probability of the predicted class) over a set."""
    p = F.softmax(model(x), dim=-1)
    conf, pred = p.max(dim=-1)
    return float((pred != y).float().mean()), float(conf.mean())


def minimal_eps(model: nn.Module, x: Tensor, y: Tensor, attack: str = "fgsm", eps_max: float = 1.0,
                iters: int = 12, **attack_kw: Any) -> Tensor:
    """Per example, the smallest eps (to eps_max / 2^iters) at which the attack makes the model
    answer wrongly, found by bisection with a per-example eps; 0 where the clean answer is already
    wrong, inf where even eps_max does not flip it. (Bisection assumes a larger eps flips at least
    what a smaller one does: true of FGSM on a linear model, close to true elsewhere.)"""
    atk = attack_fn(attack)
    with torch.no_grad():
        wrong0 = model(x).argmax(-1) != y

    def flips(e: Tensor) -> Tensor:  # (B,) bool: the attack at per-example eps (B, 1) fools the model
        adv = atk(model, x, y, e, **attack_kw)
        with torch.no_grad():
            return model(adv).argmax(-1) != y

    lo = torch.zeros(len(x), 1)
    hi = torch.full((len(x), 1), float(eps_max))
    ever = flips(hi)
    for _ in range(iters):
        mid = (lo + hi) / 2
        f = flips(mid).unsqueeze(1)
        hi = torch.where(f, mid, hi)
        lo = torch.where(f, lo, mid)
    out = hi.squeeze(1)
    out[~ever] = float("inf")
    out[wrong0] = 0.0
    return out


# --- the exam ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class VisionSize:
    epochs: int = 30
    hidden: int = 128
    pgd_steps: int = 10
    max_test: int | None = None  # attack only the first N test images (MNIST: 10,000 is slow)


def vision_exam(data: str = "digits", eps: Sequence[float] = (0.05, 0.1, 0.25), attack: str = "fgsm",
                seed: int = 0, size: VisionSize = VisionSize(), adv_eps: float = 0.25,
                archs: Sequence[str] = ARCHS, adversarial: bool = True,
                log: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """Train each classifier (and, with `adversarial`, its adversarially trained twin), then
    attack the test set at each eps: error and mean confidence, and each example's minimal
    flipping eps. Returns {"rows": [...], ...}: one row per (model, eps)."""
    from imo.data.vision import load

    eps = check_eps(eps)
    check_attack(attack)
    check_eps(adv_eps)
    torch.manual_seed(seed)
    d = load(data, seed=seed)
    xtr, ytr = torch.from_numpy(d.x_train), torch.from_numpy(d.y_train)
    xte, yte = torch.from_numpy(d.x_test), torch.from_numpy(d.y_test)
    if size.max_test is not None:
        xte, yte = xte[:size.max_test], yte[:size.max_test]
    atk = attack_fn(attack)
    kw = {"steps": size.pgd_steps} if attack == "pgd" else {}
    rows, models = [], {}
    for arch in archs:
        for adv in ((False, True) if adversarial else (False,)):
            name = arch + (" adv" if adv else "")
            log(f"training {name} on {d.source}")
            torch.manual_seed(seed)
            model = make_classifier(arch, xtr.shape[1], d.n_classes, size.hidden)
            fit(model, xtr, ytr, size.epochs, seed, adv_eps=adv_eps if adv else None)
            models[name] = model
            clean_err, clean_conf = error_and_confidence(model, xte, yte)
            min_eps = minimal_eps(model, xte, yte, attack, **kw)
            finite = min_eps[torch.isfinite(min_eps)]
            median = float(min_eps.median()) if len(finite) > len(min_eps) / 2 else float("inf")
            for e in eps:
                err, conf = error_and_confidence(model, atk(model, xte, yte, e, **kw), yte)
                rows.append({"model": name, "arch": arch, "adversarial_training": adv, "eps": e,
                             "clean_error": clean_err, "clean_confidence": clean_conf,
                             "error": err, "confidence": conf, "median_min_eps": median})
    return {"data": d.source, "attack": attack, "eps": eps, "adv_eps": adv_eps, "seed": seed,
            "n_train": len(xtr), "n_test": len(xte), "rows": rows, "paper_mnist": PAPER_MNIST}


def adversarial_training_effect(rows: list[dict[str, Any]], arch: str, eps: float) -> dict[str, float]:
    """From an exam's rows: adversarial error at eps before and after adversarial training, its
    relative fall, and the clean error's rise (in points, i.e. fraction x 100)."""
    pick = {r["adversarial_training"]: r for r in rows if r["arch"] == arch and abs(r["eps"] - eps) < 1e-9}
    if set(pick) != {False, True}:
        raise ConfigError(f"the exam has no standard and adversarially trained {arch} at eps {eps:g}")
    before, after = pick[False], pick[True]
    fall = 1.0 - after["error"] / before["error"] if before["error"] > 0 else 0.0
    return {"adv_error_before": before["error"], "adv_error_after": after["error"],
            "adv_error_relative_fall": fall, "clean_error_before": before["clean_error"],
            "clean_error_after": after["clean_error"],
            "clean_error_rise_points": 100 * (after["clean_error"] - before["clean_error"])}



# --- language: byte edits --------------------------------------------------------------------

TRICKABILITY_DEFINITION = (
    "trickability@k = among held-out prompts the model answers correctly, the fraction whose "
    "greedy answer an attacker makes wrong with at most k byte substitutions inside the task's "
    "input that leave the true answer unchanged (beam search over substitutions, scored by the "
    "log-probability of the right answer)"
)


@torch.no_grad()
def answer_scores(model, prompts: Sequence[str], answer: str) -> tuple[Tensor, Tensor]:
    """Teacher-forced scores of `answer` + newline after each prompt (all of one length):
    (log-probability of the answer, whether greedy decoding would reproduce it exactly). Greedy
    decoding reproduces it iff every answer byte is the argmax given the bytes before it."""
    from imo.exams.textmodel import LINE_START

    target = (answer + "\n").encode("utf-8")
    seqs = [list((LINE_START + p).encode("utf-8") + target) for p in prompts]
    x = torch.tensor(seqs)  # (N, T)
    logits, _ = model(x[:, :-1])
    n = len(target)
    logp = F.log_softmax(logits[:, -n:].float(), dim=-1)  # (N, n, vocab): the answer positions
    tgt = x[:, -n:]  # (N, n)
    score = logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1).sum(-1)
    greedy_ok = (logp.argmax(-1) == tgt).all(-1)
    return score, greedy_ok


def min_byte_edits(model, task, prompt: str, answer: str, k: int = 3, beam: int = 4,
                   alphabet: str | None = None) -> int | None:
    """The fewest substitutions (<= k) in the input part of `prompt` after which the model's
    greedy answer is wrong while the task's own solver still gives `answer`; 0 if it is already
    wrong, None if no edit within k is found. Beam search: each round scores every single
    substitution of the beam's prompts and keeps the `beam` that make the right answer least likely."""
    if k < 0 or beam < 1:
        raise ConfigError(f"k must be >= 0 and beam >= 1, got k={k}, beam={beam}")
    text = task.parse(prompt)
    if text is None:
        raise ConfigError(f"{prompt!r} is not a prompt of task {task.name}")
    start = prompt.index(text)
    span = range(start, start + len(text))  # only the input may change, never the instruction
    alphabet = alphabet or "".join(sorted(set(text)))
    if not answer_scores(model, [prompt], answer)[1][0]:
        return 0
    frontier, seen = [prompt], {prompt}
    for edits in range(1, k + 1):
        cands = []
        for p in frontier:
            for i in span:
                for ch in alphabet:
                    q = p[:i] + ch + p[i + 1:]
                    if q not in seen and task.solve(q) == answer:  # the label source stays put
                        seen.add(q)
                        cands.append(q)
        if not cands:
            return None
        score, ok = answer_scores(model, cands, answer)
        if not bool(ok.all()):
            return edits
        order = torch.argsort(score)[:beam].tolist()
        frontier = [cands[j] for j in order]
    return None


def text_exam(run: str, task_name: str = "compare", k: int = 3, beam: int = 4, n: int = 50,
              seed: int = 0, difficulty: int = 1, store=None) -> dict[str, Any]:
    """Attack a char run on `n` held-out problems of a skill (the test split the skills exam
    uses): minimal byte edits per correctly answered prompt and trickability@1..k."""
    from imo import tasks
    from imo.exams.skills import check_skills
    from imo.exams.textmodel import LINE_START, check_expressible
    from imo.runs.store import RunStore
    from imo.train.checkpoint import load_model

    (name,) = check_skills([task_name])
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    store = store or RunStore.open()
    run_id = store.resolve(run)
    model, _ = load_model(store.run_dir(run_id))
    task = tasks.get(name)
    _, test = tasks.split(task, difficulty, 0, n, seed)
    check_expressible(model, [LINE_START + p.prompt + p.answer + "\n" for p in test], f"task {name}")
    alphabet = "".join(sorted({c for p in test for c in task.parse(p.prompt)}))
    edits = [min_byte_edits(model, task, p.prompt, p.answer, k, beam, alphabet) for p in test]
    correct = [e for e in edits if e != 0]
    within = {j: (sum(e is not None and e <= j for e in correct) / len(correct) if correct else float("nan"))
              for j in range(1, k + 1)}
    flipped = [e for e in correct if e is not None]
    return {"run": run_id, "task": name, "k": k, "beam": beam, "n": len(test), "seed": seed,
            "clean_accuracy": len(correct) / len(test), "attacked": len(correct),
            "success_within": within, "trickability": within[k],
            "mean_edits_when_flipped": sum(flipped) / len(flipped) if flipped else None,
            "definition": TRICKABILITY_DEFINITION.replace("k ", f"k={k} ", 1)}
