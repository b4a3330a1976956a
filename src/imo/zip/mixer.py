"""Geometric mixing of byte distributions with online-learned, context-selected weights.

Each model i gives log-probabilities l_i(y) over the 256 next bytes; the mix is
`p(y) ∝ exp(sum_i w_i l_i(y))`, the 256-way form of PAQ's logistic mixing (Mattern 2012,
"Mixing strategies in data compression"). The coding cost -log p(x) is convex in w and its
gradient is `-(l_i(x) - E_p[l_i])`, so after each byte the weights take one gradient step
towards the models that predicted it better than the mix expected. A model that is uniform adds
the same constant to every byte and drops out of the softmax, so "no opinion" costs nothing.
Weights are kept per selector value (e.g. the longest context seen so far), so the mixer can
trust high orders where they have statistics and fall back elsewhere.

    mx = Mixer(n_inputs=7, n_sets=24, lr=0.02)
    logp = mx.mix(inputs, select)    # inputs (M, m, 256) log-probs, select (m,) ints
    mx.update(symbols)               # after the bytes are known
"""

from __future__ import annotations

import numpy as np


class Mixer:
    def __init__(self, n_inputs: int, n_sets: int, lr: float = 0.02, init: np.ndarray | None = None):
        self.w = np.zeros((n_sets, n_inputs), dtype=np.float32)
        self.w[:] = init if init is not None else 1.0 / n_inputs
        self.lr = np.float32(lr)

    def mix(self, inputs: np.ndarray, select: np.ndarray) -> np.ndarray:
        """(m, 256) log-probabilities of the mix; remembers what `update` needs."""
        w = self.w[select]  # (m, M)
        z = np.einsum("im,mij->ij", w, inputs)  # (m, 256)
        z -= z.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        self._inputs, self._select, self._logp = inputs, select, logp
        return logp

    def update(self, symbols: np.ndarray) -> None:
        inputs, p = self._inputs, np.exp(self._logp)
        rows = np.arange(len(symbols))
        expected = np.einsum("mij,ij->im", inputs, p)  # (m, M): E_p[l_i]
        got = inputs[:, rows, symbols.astype(np.int64)].T  # (m, M): l_i(x)
        step = self.lr * (got - expected)  # (m, M)
        order = np.argsort(self._select, kind="stable")  # streams that share a weight set add up
        sel = self._select[order]
        starts = np.flatnonzero(np.r_[True, sel[1:] != sel[:-1]])
        self.w[sel[starts]] += np.add.reduceat(step[order], starts, axis=0)
