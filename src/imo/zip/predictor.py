"""The model that `imo zip` codes with: context statistics, an online network, or both mixed.

`Predictor.predict(m)` gives the distribution of the next byte of each of the first m streams,
from the bytes before it only; `Predictor.update(symbols)` feeds the m bytes that followed. The
encoder and the decoder both run exactly this pair, step after step, with the same m and the same
bytes, so their probabilities agree bit for bit (see imo.zip.codec). `quantise` turns the
probabilities into the integer frequencies the range coder gets: 16 bits, every byte at least 1,
so any byte can always be coded.

    pr = Predictor(settings)
    freq = quantise(pr.predict(m)); ...code...; pr.update(symbols)
"""

from __future__ import annotations

import hashlib

import numpy as np

from imo.zip.mixer import Mixer
from imo.zip.settings import ZipSettings
from imo.zip.stats import MatchModel, OrderModels

PRECISION = 16  # bits of the quantised frequencies


def quantise(logp: np.ndarray) -> np.ndarray:
    """(m, 256) log-probabilities -> (m, 256) integer frequencies (as float64, which constriction
    takes) that are >= 1 and sum to at most 2**PRECISION."""
    p = np.exp(logp.astype(np.float64))
    p /= p.sum(1, keepdims=True)
    return np.floor(p * ((1 << PRECISION) - 256)) + 1.0


class Predictor:
    """Statistics (orders 0..N + match model) and/or the online net, mixed geometrically."""

    def __init__(self, s: ZipSettings, net=None):
        self.s = s
        self.use_stats = s.predictor in ("stats", "mix")
        self.use_net = s.predictor in ("net", "mix")
        if self.use_stats:
            self.orders = OrderModels(s.streams, s.max_order, s.table_bits, s.discount, s.count_limit)
            self.match = MatchModel(s.streams, -(-s.block_size // s.streams), min(22, s.table_bits + 2))
        if self.use_net:
            if net is None:
                from imo.zip.net import OnlineNet

                net = OnlineNet(s.streams, s.net_context, s.net_width, s.net_lr, s.seed)
            self.net = net
        n_in = (s.max_order + 4 if self.use_stats else 0) + (1 if self.use_net else 0)
        if self.use_stats:
            init = np.zeros(n_in, dtype=np.float32)
            init[s.max_order] = 1.0  # start as the plain interpolated top order
            init[s.max_order + 3] = 0.3  # the match model, after the two word contexts
            if self.use_net:
                init[-1] = 0.3
            # two mixers with different weight selectors (longest context seen x match state;
            # the previous byte), then a final 2-input mixer: PAQ's two-layer mixing
            self.mixer = Mixer(n_in, (s.max_order + 1) * 3, s.mixer_lr, init)
            self.mixer2 = Mixer(n_in, 256, s.mixer_lr, init)
            self.final = Mixer(2, s.max_order + 1, s.mixer_lr, np.array([0.5, 0.5], dtype=np.float32))

    def reset_streams(self) -> None:
        """Start of a block: each stream's own history starts empty; shared statistics stay."""
        if self.use_stats:
            self.orders.reset_streams()
            self.match.reset_streams()
        if self.use_net:
            self.net.reset_streams()

    def predict(self, m: int) -> np.ndarray:
        """(m, 256) float32 log-probabilities of the next byte of streams 0..m-1."""
        if not self.use_stats:
            return self.net.predict(m)
        inputs = [self.orders.predict(m)]
        match_logp, _, bucket = self.match.predict(m)
        inputs.append(match_logp[None])
        if self.use_net:
            inputs.append(self.net.predict(m)[None])
        match_class = np.where(bucket == 0, 0, np.where(bucket < 8, 1, 2))
        hit = self.orders.hit_order[:m]
        x = np.concatenate(inputs, 0)
        a = self.mixer.mix(x, hit * 3 + match_class)
        b = self.mixer2.mix(x, (self.orders.hist[:m] & np.uint64(0xFF)).astype(np.int64))
        return self.final.mix(np.stack([a, b]), hit)

    def update(self, symbols: np.ndarray) -> None:
        if self.use_stats:
            self.mixer.update(symbols)
            self.mixer2.update(symbols)
            self.final.update(symbols)
            self.orders.update(symbols)
            self.match.update(symbols)
        if self.use_net:
            self.net.update(symbols)

    def flops_per_byte(self) -> int:
        """Rough floating-point operations per coded byte (model part; the coder is negligible)."""
        flops = 0
        if self.use_stats:
            # per order: ~8 passes over 256 values; mixer: forward + gradient over its inputs
            n_in = self.s.max_order + 4 + (1 if self.use_net else 0)
            flops += (self.s.max_order + 3) * 8 * 256 + 6 * n_in * 256 + 3 * 256
        if self.use_net:
            flops += self.net.flops_per_byte()
        return flops


def probe_bytes(n: int = 4096) -> bytes:
    """A fixed, text-like probe (the same on every machine): words from a small vocabulary chosen
    by a linear congruential generator."""
    words = [b"the", b"zip", b"model", b"of", b"bytes", b"and", b"a", b"stream", b"to", b"code", b"in"]
    out, x = bytearray(), 12345
    while len(out) < n:
        x = (1103515245 * x + 12345) % (1 << 31)
        out += words[(x >> 16) % len(words)] + (b". " if (x >> 8) % 9 == 0 else b" ")
    return bytes(out[:n])


def fingerprint(s: ZipSettings, net=None, steps: int = 12) -> str:
    """Hash of the quantised frequencies a fresh predictor gives on the probe, with its updates.
    Any difference in arithmetic (threads, kernels, library versions) that would make the decoder
    disagree with the encoder shows up here first. `net`: a fresh pretrained net, if any."""
    pr = Predictor(s, net=net)
    probe = np.frombuffer(probe_bytes(s.streams * steps), dtype=np.uint8).reshape(s.streams, steps)
    h = hashlib.sha256()
    for t in range(steps):
        freq = quantise(pr.predict(s.streams))
        h.update(freq.astype(np.uint32).tobytes())
        pr.update(probe[:, t].copy())
    return h.hexdigest()[:16]
