"""`voltage`: the notes' guess that "unfired neurons stack up voltage to cause correction", made
precise as a local rule on top of direct feedback alignment.

Backprop is global: a hidden unit's update needs the transposed weights of every layer above it.
Here each hidden layer l gets its teaching signal directly from the output error through a fixed
random matrix B_l (direct feedback alignment, Nøkland 2016, "Direct Feedback Alignment Provides
Learning in Deep Neural Networks", NeurIPS; arXiv:1609.01596):

    e   = softmax(z) − onehot(y)                  (B, C)   the output error
    δ_l = e B_l                                   (B, n_l) the layer's local teaching signal
    firing units (a > 0):   ∂W_l ≈ (δ_l ⊙ 1[a > 0])ᵀ x_l / B        (DFA; x_l the layer's input)

A ReLU unit that is silent (a ≤ 0) gets no update from this, or from backprop. The voltage part
gives it one. Each hidden unit j keeps a membrane-like trace V_j, a leaky integral over steps of
how much the teaching signal asked it to fire while it stayed silent:

    s_bj = relu(−δ_bj) · 1[a_bj ≤ 0]               the sub-threshold drive on example b
    V_j  ← λ V_j + mean_b s_bj                    (λ = decay, 0.9)
    if V_j > θ:   ∂w_j −= V_j · Σ_b s_bj x_b / Σ_b s_bj,   ∂b_j −= V_j,   V_j ← 0

that is, once the stacked voltage crosses the threshold θ, the unit's weights move (by the
optimiser, like any gradient) towards the inputs on which it should have fired, and the trace
resets. The output layer learns by the exact local delta rule eᵀh / B. Nothing is sent backwards
through a weight matrix. θ = ∞ switches the voltage off and leaves plain DFA (rule `dfa`), which
is the ablation that says whether the voltage matters.

    rule = RULES.get("voltage")(RuleConfig(hidden=(256, 256)), 784, 10)
"""

import math

import torch
import torch.nn.functional as F

from imo.learn.rules import RULES, Rule, RuleConfig, make_optimizer, mlp


@RULES.register("dfa")
class DirectFeedbackAlignment(Rule):
    """Direct feedback alignment: each hidden layer learns from the output error through a fixed random matrix."""

    name = "dfa"
    threshold = math.inf

    def __init__(self, cfg: RuleConfig, n_in: int, n_classes: int):
        super().__init__(cfg, n_in, n_classes)
        self.net = mlp(n_in, cfg.hidden, n_classes)
        self.linears = [m for m in self.net if isinstance(m, torch.nn.Linear)]
        for p in self.net.parameters():
            p.requires_grad_(False)  # no autograd graph: every update below is written out
        self.feedback = [torch.empty(n_classes, h).uniform_(-1, 1) / math.sqrt(n_classes) for h in cfg.hidden]
        self.voltage = [torch.zeros(h) for h in cfg.hidden]
        self.opt = make_optimizer(self.net.parameters(), cfg, self.lr)
        self.corrections = 0  # voltage-driven unit corrections so far

    def step(self, x, y):
        inputs, pre = [], []
        h = x
        for m in self.linears[:-1]:
            inputs.append(h)
            a = m(h)
            pre.append(a)
            h = a.relu()
        z = self.linears[-1](h)
        loss = F.cross_entropy(z, y)
        e = z.softmax(-1) - F.one_hot(y, self.n_classes).float()  # (B, C)
        out = self.linears[-1]
        self._apply(out, e.T @ h / len(x), e.mean(0))
        for m, xin, a, B, V in zip(self.linears[:-1], inputs, pre, self.feedback, self.voltage, strict=True):
            delta = e @ B  # (B, n_l)
            fire = (a > 0).float()
            gated = delta * fire
            gw = (gated.T @ xin).div_(len(x))  # in place: one weight-sized tensor per layer
            gb = gated.mean(0)
            if math.isfinite(self.threshold):
                s = F.relu(-delta) * (1 - fire)  # sub-threshold drive
                V.mul_(self.cfg.decay).add_(s.mean(0))
                hot = V > self.threshold
                if hot.any():
                    pattern = (s[:, hot].T @ xin) / s[:, hot].sum(0).clamp_min(1e-12)[:, None]
                    gw[hot] -= V[hot, None] * pattern
                    gb[hot] -= V[hot]
                    V[hot] = 0.0
                    self.corrections += int(hot.sum())
            self._apply(m, gw, gb)
            del gw, gb  # before the next layer's gradient is made
        self.steps += 1
        return loss.item()

    def _apply(self, m: torch.nn.Linear, gw: torch.Tensor, gb: torch.Tensor) -> None:
        """Update one layer and free its gradient at once: no layer's update waits for another's,
        so a step holds one layer's gradient at most (the forward activations are all kept: the
        output error is needed before any hidden layer can learn)."""
        m.weight.grad, m.bias.grad = gw, gb
        self.opt.step()  # only this layer has a gradient; the optimiser skips the others
        m.weight.grad = m.bias.grad = None

    def describe(self) -> dict:
        return {**super().describe(), "threshold": self.threshold, "corrections": self.corrections}


@RULES.register("voltage")
class Voltage(DirectFeedbackAlignment):
    """DFA plus the notes' rule: silent units stack up voltage until it triggers a local correction."""

    name = "voltage"

    def __init__(self, cfg: RuleConfig, n_in: int, n_classes: int):
        super().__init__(cfg, n_in, n_classes)
        self.threshold = cfg.volt_threshold
