"""Forward-Forward (Hinton 2022, "The Forward-Forward Algorithm: Some Preliminary
Investigations", arXiv:2212.13345), in the simultaneous form of loeweX/Forward-Forward.

Each layer has its own objective: its goodness G = Σ_j h_j² should be high on positive data (an
image with its true label) and low on negative data (the same image with a wrong label). The
layer's loss is the logistic loss of G − θ, θ the layer width (loeweX's threshold). A layer's
input is the length-normalised, *detached* output of the layer below, so its loss reaches only
its own weights: there is no global backward pass. All layers learn at once, each with its own
Adam.

The label is one-hot, scaled by `label_scale` (10) and appended to the pixels (Hinton overwrites
the first ten pixels with the brightest pixel value; appending also works for 8x8 digits, whose
border pixels are not blank). At scale 1 the label is a tenth of an MNIST image's length and the
goodness read-out stays near chance for many epochs: on 2,000 digits, 2x500 units, 6 epochs, the
goodness error was 0.87 at scale 1 with Adam 1e-3, 0.25 at scale 10 with Adam 3e-3 (the
defaults; a short sweep read on the validation split, backprop's Adam 1e-3 was not swept). Two read-outs are kept
apart, because they give very different figures (WAVE2.md §0, item 6):
- goodness: run the image once per candidate label and pick the label with the most goodness,
  summed over the layers above the first (Hinton's choice);
- softmax: a linear classifier on the normalised activations of the layers above the first for
  the image with a neutral label (0.1 everywhere), trained on detached features by its own
  cross-entropy (loeweX's read-out, 1.45% on full MNIST).

    rule = RULES.get("ff")(RuleConfig(hidden=(1000, 1000, 1000)), n_in=784, n_classes=10)
"""

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from imo.learn.rules import RULES, Rule, RuleConfig, make_optimizer


def normalise(h: torch.Tensor) -> torch.Tensor:
    """Divide each row by its root mean square: the next layer sees the direction, not the
    goodness (otherwise it could read the previous layer's verdict off the length)."""
    return h / (h.pow(2).mean(-1, keepdim=True).sqrt() + 1e-8)


class FFLayer(nn.Module):
    def __init__(self, n_in: int, n_out: int, threshold: float | None):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        self.threshold = float(n_out) if threshold is None else threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.linear(normalise(x)))

    def loss(self, h_pos: torch.Tensor, h_neg: torch.Tensor) -> torch.Tensor:
        """Logistic loss of the goodness: positive rows above the threshold, negative rows below."""
        g_pos = h_pos.pow(2).sum(-1) - self.threshold
        g_neg = h_neg.pow(2).sum(-1) - self.threshold
        return F.softplus(-g_pos).mean() + F.softplus(g_neg).mean()


@RULES.register("ff")
class ForwardForward(Rule):
    """Forward-Forward: a local goodness loss per layer, no backward pass between layers."""

    name = "ff"
    DEFAULT_LR = 3e-3

    def __init__(self, cfg: RuleConfig, n_in: int, n_classes: int):
        super().__init__(cfg, n_in, n_classes)
        widths = (n_in + n_classes, *cfg.hidden)
        self.layers = nn.ModuleList(FFLayer(a, b, cfg.ff_threshold) for a, b in pairwise(widths))
        self.readout_from = 1 if len(self.layers) > 1 else 0
        n_feat = sum(cfg.hidden[self.readout_from:])
        self.readout = nn.Linear(n_feat, n_classes)
        self.net = nn.ModuleDict({"layers": self.layers, "readout": self.readout})  # for n_params
        self.opts = [make_optimizer(layer.parameters(), cfg, self.lr) for layer in self.layers]
        self.readout_opt = make_optimizer(self.readout.parameters(), cfg, self.lr)

    def embed(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Pixels with the one-hot label appended; labels=None appends the neutral label."""
        if labels is None:
            tag = torch.full((len(x), self.n_classes), 1.0 / self.n_classes)
        else:
            tag = F.one_hot(labels, self.n_classes).float()
        return torch.cat([x, self.cfg.label_scale * tag], dim=1)

    def wrong_labels(self, y: torch.Tensor) -> torch.Tensor:
        """A uniformly drawn label other than the true one, per row."""
        shift = torch.randint(1, self.n_classes, y.shape, generator=self.gen)
        return (y + shift) % self.n_classes

    def layer_losses(self, x_pos: torch.Tensor, x_neg: torch.Tensor) -> list[torch.Tensor]:
        """Each layer's local loss; layer k's input is detached, so loss k depends on layer k only.
        Positive and negative rows go through a layer as one batch (one weight gradient, not two
        summed)."""
        losses = []
        h, n = torch.cat([x_pos, x_neg]), len(x_pos)
        for layer in self.layers:
            h = layer(h.detach())
            losses.append(layer.loss(h[:n], h[n:]))
        return losses

    def features(self, x: torch.Tensor, labels: torch.Tensor | None) -> list[torch.Tensor]:
        """The activations of every layer (no graph is kept across layers)."""
        hs, h = [], self.embed(x, labels)
        for layer in self.layers:
            h = layer(h.detach())
            hs.append(h)
        return hs

    def step(self, x, y):
        # one layer at a time: forward the layer, its loss, its backward, its update, then its
        # gradient and graph are freed before the next layer runs, so a step holds one layer's
        # gradient and activations at most. The next layer reads this layer's output from before
        # the update (detached), the same as computing every layer's loss first.
        h, n = torch.cat([self.embed(x, y), self.embed(x, self.wrong_labels(y))]), len(x)
        losses = []
        for layer, opt in zip(self.layers, self.opts, strict=True):
            h = layer(h.detach())  # positive rows, then negative rows: one batch
            loss = layer.loss(h[:n], h[n:])
            opt.zero_grad(set_to_none=True)
            loss.backward()  # local: the graph of this loss holds this layer's weights only
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.detach())
        ro = F.cross_entropy(self.readout(self.readout_features(x)), y)
        self.readout_opt.zero_grad(set_to_none=True)
        ro.backward()
        self.readout_opt.step()
        self.readout_opt.zero_grad(set_to_none=True)
        self.steps += 1
        return sum(loss.item() for loss in losses) / len(losses)

    @torch.no_grad()
    def goodness(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n_classes): goodness summed over the read-out layers, for each candidate label."""
        cols = []
        for c in range(self.n_classes):
            hs = self.features(x, torch.full((len(x),), c, dtype=torch.long))
            cols.append(sum(h.pow(2).sum(-1) for h in hs[self.readout_from:]))
        return torch.stack(cols, dim=1)

    @torch.no_grad()
    def readout_features(self, x: torch.Tensor) -> torch.Tensor:
        """The softmax read-out's input: normalised activations above the first layer, neutral
        label, no graph (the read-out's loss must not reach the FF layers)."""
        return torch.cat([normalise(h) for h in self.features(x, None)[self.readout_from:]], dim=1)

    @torch.no_grad()
    def logits(self, x):
        return self.readout(self.readout_features(x))

    @torch.no_grad()
    def errors(self, x, y):
        soft = float((self.logits(x).argmax(-1) != y).float().mean())
        good = float((self.goodness(x).argmax(-1) != y).float().mean())
        return {"error": soft, "softmax_error": soft, "goodness_error": good}
