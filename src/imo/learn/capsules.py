"""Capsules with dynamic routing (Sabour, Frosst & Hinton 2017, "Dynamic Routing Between
Capsules", NeurIPS; arXiv:1710.09829), slimmed for a CPU, and a CNN of equal parameters.

A capsule is a vector whose length is the probability that its entity is present. Each primary
capsule i predicts each digit capsule j through a matrix, û_j|i = W_ij u_i; routing by agreement
then decides how much of i goes to j:

    b_ij = 0
    repeat r times:  c_i = softmax_j(b_i);  s_j = Σ_i c_ij û_j|i;  v_j = squash(s_j);
                     b_ij += û_j|i · v_j            (not after the last iteration)
    squash(s) = |s|² / (1 + |s|²) · s / |s|

One iteration is uniform coupling (c_ij = 1 / n_out). Following naturomics/CapsNet-Tensorflow
PR #33 (and XifengGuo/CapsNet-Pytorch), the inner iterations see û detached: the gradient goes
through the last iteration only. The loss is the paper's margin loss (m+ = 0.9, m- = 0.1,
λ = 0.5) plus, optionally, 0.0005 × the summed squared error of a decoder that redraws the
image from the true digit's capsule (the decoder is not counted as classifier parameters).

Slim sizes: 28x28 input: conv 9x9 (32 channels), primary capsules 9x9 stride 2 (8 types of 8-D
capsules on a 6x6 grid), 10 digit capsules of 16-D. 8x8 digits use 3x3 kernels, stride 1.

    net = CapsNet(side=28, routing=3); lengths, recon = net(x, y)   # x (B, 784)
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


def squash(s: torch.Tensor, dim: int = -1) -> torch.Tensor:
    n2 = s.pow(2).sum(dim, keepdim=True)
    return n2 / (1 + n2) * s / torch.sqrt(n2 + 1e-9)


def route(u_hat: torch.Tensor, iterations: int, detach_inner: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Routing by agreement. u_hat (B, n_in, n_out, d): predictions of every input capsule for
    every output capsule. Returns v (B, n_out, d) and the final couplings c (B, n_in, n_out)."""
    if iterations < 1:
        raise ValueError("routing needs at least one iteration")
    b = torch.zeros(u_hat.shape[:3], dtype=u_hat.dtype)
    inner = u_hat.detach() if detach_inner else u_hat
    for r in range(iterations):
        c = b.softmax(dim=2)  # (B, n_in, n_out): each input splits itself among the outputs
        last = r == iterations - 1
        s = (c.unsqueeze(-1) * (u_hat if last else inner)).sum(1)  # (B, n_out, d)
        v = squash(s)
        if not last:
            b = b + (inner * v.unsqueeze(1)).sum(-1)  # agreement û·v
    return v, c


def margin_loss(lengths: torch.Tensor, y: torch.Tensor, m_pos=0.9, m_neg=0.1, lam=0.5) -> torch.Tensor:
    t = F.one_hot(y, lengths.shape[1]).float()
    per = t * F.relu(m_pos - lengths).pow(2) + lam * (1 - t) * F.relu(lengths - m_neg).pow(2)
    return per.sum(1).mean()


def _sizes(side: int) -> tuple[int, int, int]:
    """Kernel, primary stride and primary grid side for a square image of `side` pixels."""
    k, stride = (9, 2) if side >= 20 else (3, 1)
    after_conv = side - k + 1
    return k, stride, (after_conv - k) // stride + 1


class CapsNet(nn.Module):
    def __init__(self, side: int = 28, n_classes: int = 10, routing: int = 3, channels: int = 32,
                 types: int = 8, d_primary: int = 8, d_digit: int = 16, recon: bool = True):
        super().__init__()
        k, stride, grid = _sizes(side)
        self.side, self.routing, self.types, self.d_primary = side, routing, types, d_primary
        self.conv = nn.Conv2d(1, channels, k)
        self.primary = nn.Conv2d(channels, types * d_primary, k, stride=stride)
        self.n_primary = types * grid * grid
        # W_ij (n_in, n_out, d_digit, d_primary), the paper's N(0, 0.01)-like small init
        self.W = nn.Parameter(0.05 * torch.randn(self.n_primary, n_classes, d_digit, d_primary))
        self.decoder = nn.Sequential(nn.Linear(n_classes * d_digit, 256), nn.ReLU(), nn.Linear(256, 512),
                                     nn.ReLU(), nn.Linear(512, side * side), nn.Sigmoid()) if recon else None

    def capsules(self, x: torch.Tensor) -> torch.Tensor:
        """(B, pixels) -> digit capsules (B, n_classes, d_digit)."""
        B = len(x)
        h = F.relu(self.conv(x.view(B, 1, self.side, self.side)))
        p = self.primary(h)  # (B, types*d, g, g)
        g = p.shape[-1]
        u = p.view(B, self.types, self.d_primary, g, g).permute(0, 1, 3, 4, 2).reshape(B, -1, self.d_primary)
        u = squash(u)  # (B, n_primary, d_primary)
        u_hat = torch.einsum("ijdk,bik->bijd", self.W, u)  # (B, n_in, n_out, d_digit)
        v, _ = route(u_hat, self.routing)
        return v

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None):
        v = self.capsules(x)
        lengths = v.norm(dim=-1)
        recon = None
        if self.decoder is not None and y is not None:
            mask = F.one_hot(y, v.shape[1]).unsqueeze(-1).float()
            recon = self.decoder((v * mask).flatten(1))
        return lengths, recon

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        lengths, recon = self(x, y)
        loss = margin_loss(lengths, y)
        if recon is not None:
            loss = loss + 0.0005 * (recon - x).pow(2).sum(1).mean()
        return loss

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.capsules(x).norm(dim=-1).argmax(-1)

    def classifier_params(self) -> int:
        skip = set(id(p) for p in self.decoder.parameters()) if self.decoder is not None else set()
        return sum(p.numel() for p in self.parameters() if id(p) not in skip)


class ConvNet(nn.Module):
    """The CNN baseline: CapsNet's two convolutions, then one hidden layer sized so that the
    parameter count matches the CapsNet classifier's (decoder excluded)."""

    def __init__(self, side: int = 28, n_classes: int = 10, match: int | None = None, channels: int = 32,
                 types: int = 8, d_primary: int = 8):
        super().__init__()
        k, stride, grid = _sizes(side)
        self.side = side
        self.conv = nn.Conv2d(1, channels, k)
        self.conv2 = nn.Conv2d(channels, types * d_primary, k, stride=stride)
        flat = types * d_primary * grid * grid
        convs = sum(p.numel() for p in (*self.conv.parameters(), *self.conv2.parameters()))
        target = match if match is not None else convs + flat * 64
        # convs + flat*h + h + h*n_classes + n_classes = target  ->  h
        h = max(1, math.floor((target - convs - n_classes) / (flat + 1 + n_classes)))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(flat, h), nn.ReLU(), nn.Linear(h, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B = len(x)
        h = F.relu(self.conv(x.view(B, 1, self.side, self.side)))
        return self.head(F.relu(self.conv2(h)))

    def loss(self, x, y):
        return F.cross_entropy(self(x), y)

    def predict(self, x):
        return self(x).argmax(-1)

    def classifier_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def affine_distort(x: torch.Tensor, side: int, seed: int, degrees: float = 20.0, scale: tuple[float, float] = (0.8, 1.2),
                   shear: float = 0.2) -> torch.Tensor:
    """affNIST-lite (WAVE2.md §7): each image under its own random affine map — rotation within
    ±degrees, scale in `scale`, shear within ±shear — drawn from `seed`; bilinear, zero outside.
    x (B, side*side) in [0, 1] -> the same shape."""
    B = len(x)
    g = torch.Generator().manual_seed(seed)
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(B, generator=g)  # noqa: E731
    theta = torch.deg2rad(u(-degrees, degrees))
    s, sh = u(*scale), u(-shear, shear)
    cos, sin = torch.cos(theta), torch.sin(theta)
    # output -> input sampling map: the inverse of scale·rotate·shear is applied by grid_sample
    a = torch.stack([torch.stack([cos, -sin + sh * cos], -1), torch.stack([sin, cos + sh * sin], -1)], 1) * s[:, None, None]
    inv = torch.linalg.inv(a)
    mat = torch.cat([inv, torch.zeros(B, 2, 1)], dim=2)  # (B, 2, 3), no translation
    grid = F.affine_grid(mat, (B, 1, side, side), align_corners=False)
    out = F.grid_sample(x.view(B, 1, side, side), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.view(B, -1).clamp(0, 1)


def _error(net, x, y) -> float:
    with torch.no_grad():
        pred = torch.cat([net.predict(x[i:i + 500]) for i in range(0, len(x), 500)])
    return float((pred != y).float().mean())


def fit_capsules(arch: str, data, epochs: int, batch: int = 100, routing: int = 3, recon: bool = True,
                 lr: float = 1e-3, seed: int = 0, log=None, affine: bool = False) -> tuple[dict, nn.Module]:
    """Train `capsnet` or `cnn` (equal classifier parameters) with Adam on data.x_train, the same
    seeded batch order as imo.learn.loop; validation error after each epoch, and with `affine`
    also the error on the validation digits under random affine maps (trained on undistorted ones)."""
    import time

    from imo.errors import ConfigError
    from imo.learn.data import batches

    if arch not in ("capsnet", "cnn"):
        raise ConfigError(f"unknown architecture {arch!r}; choose capsnet or cnn")
    if epochs < 1 or batch < 1 or routing < 1:
        raise ConfigError(f"--epochs, --batch and --routing must be >= 1 (got {epochs}, {batch}, {routing})")
    side = data.shape[0]
    if data.shape[0] != data.shape[1]:
        raise ConfigError(f"capsules need square images, got {data.shape}")
    torch.manual_seed(seed)
    caps = CapsNet(side, data.n_classes, routing=routing, recon=recon)
    net = caps if arch == "capsnet" else ConvNet(side, data.n_classes, match=caps.classifier_params())
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    history, t0 = [], time.perf_counter()
    for epoch in range(1, epochs + 1):
        net.train()
        total = 0.0
        for idx in batches(len(data.x_train), batch, gen):
            loss = net.loss(data.x_train[idx], data.y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        net.eval()
        err = _error(net, data.x_val, data.y_val)
        row = {"epoch": epoch, "train_loss": total / len(data.x_train), "error": err,
               "seconds": time.perf_counter() - t0}
        history.append(row)
        if log:
            log(f"{arch} epoch {epoch}/{epochs} loss {row['train_loss']:.4f} val error {err:.4f} "
                f"({row['seconds']:.1f}s)")
    if affine:
        history[-1]["affine_error"] = _error(net, affine_distort(data.x_val, side, seed + 7), data.y_val)
        if log:
            log(f"{arch} validation error under random affine maps {history[-1]['affine_error']:.4f}")
    record = {"arch": arch, "routing": routing if arch == "capsnet" else None,
              "recon": recon if arch == "capsnet" else None, "params": net.classifier_params(),
              "data": data.source, "n_train": len(data.x_train), "n_val": len(data.x_val), "epochs": epochs,
              "batch": batch, "lr": lr, "seed": seed, "final": history[-1], "history": history}
    return record, net
