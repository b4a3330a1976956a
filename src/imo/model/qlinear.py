"""Weight-only int8 and int4 linears on torch's own CPU kernels, for decoding a model fast.

Decoding one token reads every weight once and does little arithmetic with it, so on a CPU its
speed is the speed at which the weights stream from memory: fewer bytes per weight, faster steps.
`pack_(model, "int8" | "int4")` swaps every nn.Linear (and a tied embedding) for a packed one:

  * int8: one scale per output row, s = max|w_row| / 127, codes in [-127, 127] (imo's own int8,
    imo/compress/quantize.py), multiplied by torch._weight_int8pack_mm;
  * int4: groups of `group_size` input weights with a scale and an offset, w = (q - 8) * s + z,
    q in 0..15, s = (max - min) / 15, z = min + 8 s: the min/max grid of llama.cpp's Q4_1 blocks
    (z is tinygemm's "zero"), so a Q4_1 GGUF's weights (SmolLM2's, dequantized on import) land back
    on their own grid. Multiplied by aten._weight_int4pack_mm_for_cpu (tinygemm's CPU port, the
    kernel torchao's int4 CPU layout calls) from codes repacked by _convert_weight_to_int4pack_for_cpu.

Both kernels take bfloat16 activations (they have no fast float32 path on CPU: 10-20x slower),
so each packed linear rounds its input to bfloat16 and casts its output back to the input's dtype;
norms, attention, the KV cache and the residual stream stay float32. (Running the whole packed
model in bfloat16 saves those casts but loses more than it saves: torch's CPU attention kernel is
~2.5x slower in bfloat16 than in float32 on this AVX-512 machine without AMX; benchmarks/RESULTS.md.)
A tied embedding shares the head's int8 codes (int4 mode keeps the tied matrix int8, as the GGUF's
own token_embd is Q8_0). A packed model is for inference: it has no float weights to train or save.

    report = pack_(model, "int8")      # model.lm_head is now PackedLinear(576 -> 49152, int8)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from imo.compress.quantize import quantize_int8
from imo.errors import ConfigError

WEIGHTS = ("float32", "bfloat16", "int8", "int4")  # what `--weights` and prepare() accept
GROUP_SIZES = (32, 64, 128, 256)  # what tinygemm's CPU kernel takes


def kernels_available() -> bool:
    return hasattr(torch, "_weight_int8pack_mm") and hasattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu")


def quantize_int4_minmax(w: Tensor, group_size: int) -> tuple[Tensor, Tensor, Tensor]:
    """(out, in) float -> codes (out, in) int32 in 0..15, scales and zeros (out, in / group_size):
    w ~ (q - 8) * scale + zero. A constant group gets scale 1 and its value as zero (exact)."""
    out, n_in = w.shape
    g = w.detach().float().reshape(out, n_in // group_size, group_size)  # (out, groups, G)
    lo, hi = g.amin(dim=2), g.amax(dim=2)
    scale = torch.where(hi > lo, (hi - lo) / 15.0, torch.ones_like(lo))
    zero = lo + 8 * scale
    q = torch.clamp(torch.round((g - lo[..., None]) / scale[..., None]), 0, 15)
    return q.reshape(out, n_in).to(torch.int32), scale, zero


def dequantize_int4_minmax(q: Tensor, scale: Tensor, zero: Tensor, group_size: int) -> Tensor:
    out, n_in = q.shape
    g = (q.float() - 8).reshape(out, n_in // group_size, group_size)
    return (g * scale[..., None] + zero[..., None]).reshape(out, n_in)


class PackedLinear(nn.Module):
    """y = x W^T (+ b) with W held as int8 rows or packed int4 groups (module docstring)."""

    def __init__(self, weight: Tensor, bias: Tensor | None, bits: int, group_size: int = 32,
                 int8: tuple[Tensor, Tensor] | None = None) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.bits, self.group_size = bits, group_size
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())
        if bits == 8:
            q, s = int8 if int8 is not None else quantize_int8(weight)
            self.register_buffer("q", q)  # (out, in) int8
            self.register_buffer("scale", s.to(torch.bfloat16))  # (out,): the kernel's dtype
        else:
            q, s, z = quantize_int4_minmax(weight, group_size)
            self.register_buffer("packed", torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 2))
            # (groups, out, 2): scale and zero of each group, in bfloat16 as the kernel wants
            self.register_buffer("scales_zeros", torch.stack([s.t(), z.t()], dim=-1).to(torch.bfloat16).contiguous())

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        xb = x.reshape(-1, shape[-1]).to(torch.bfloat16).contiguous()  # (N, in)
        if self.bits == 8:
            y = torch._weight_int8pack_mm(xb, self.q, self.scale)
        else:
            y = torch.ops.aten._weight_int4pack_mm_for_cpu(xb, self.packed, self.group_size, self.scales_zeros)
        y = y.to(x.dtype)
        if self.bias is not None:
            y = y + self.bias.to(x.dtype)
        return y.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        g = f", groups of {self.group_size}" if self.bits == 4 else ""
        return f"{self.in_features} -> {self.out_features}, int{self.bits}{g}, bfloat16 activations"


class PackedEmbedding(nn.Module):
    """An embedding table of int8 rows (shared with a tied PackedLinear head), dequantized as looked up."""

    def __init__(self, q: Tensor, scale: Tensor) -> None:
        super().__init__()
        self.register_buffer("q", q)  # (vocab, C) int8
        self.register_buffer("scale", scale.float())  # (vocab,)

    def forward(self, idx: Tensor) -> Tensor:
        return self.q[idx].to(self.scale.dtype) * self.scale[idx][..., None]  # the model's dtype

    def extra_repr(self) -> str:
        return f"{self.q.shape[0]} x {self.q.shape[1]}, int8"


@dataclass
class PackReport:
    weights: str
    layers: dict[str, str] = field(default_factory=dict)  # name -> format
    float_bytes: int = 0  # of the swapped matrices, in float32
    packed_bytes: int = 0

    def summary(self) -> str:
        return (f"{self.weights}: {len(self.layers)} layers packed, {self.float_bytes / 2**20:.1f} MiB of float32 "
                f"weights -> {self.packed_bytes / 2**20:.1f} MiB")


def _nbytes(m: nn.Module) -> int:
    return sum(b.numel() * b.element_size() for b in m.buffers())


def pack_(model: nn.Module, weights: str, group_size: int = 32) -> PackReport:
    """Swap model's nn.Linear layers for PackedLinear ones in place ("int8" or "int4"), the tied
    embedding for a PackedEmbedding sharing the head's int8 codes."""
    if weights not in ("int8", "int4"):
        raise ConfigError(f"pack_ packs int8 or int4, got {weights!r}")
    if not kernels_available():
        raise ConfigError(f"this PyTorch ({torch.__version__}) lacks the CPU int8/int4 kernels; "
                          "use --weights float32 or bfloat16")
    if group_size not in GROUP_SIZES:
        raise ConfigError(f"int4 group size must be one of {', '.join(map(str, GROUP_SIZES))}, got {group_size}")
    if any(isinstance(m, PackedLinear | PackedEmbedding) for m in model.modules()):
        raise ConfigError("this model is already packed")
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError("the model has no nn.Linear layer to pack")
    bits = 8 if weights == "int8" else 4
    for n, m in linears:
        if m.weight.device.type != "cpu":
            raise ConfigError(f"{n} is on {m.weight.device}; the packed kernels here are torch's CPU ones")
        if bits == 4 and m.in_features % group_size:
            raise ConfigError(f"int4 group size {group_size} does not divide the input width {m.in_features} of {n}")
    report = PackReport(weights)
    for n, m in list(model.named_modules()):  # fuse first: one product for q, k, v (gate, up)
        for fused, parts in getattr(m, "FUSABLE", {}).items():
            mods = [getattr(m, p, None) for p in parts]
            if not all(isinstance(x, nn.Linear) and x.bias is None for x in mods):
                continue
            w = torch.cat([x.weight.detach() for x in mods])  # rows are quantized one by one: the same codes
            setattr(m, fused, PackedLinear(w, None, bits, group_size))
            for p in parts:
                delattr(m, p)
            report.layers[f"{n}.{fused}" if n else fused] = f"int{bits} ({' + '.join(parts)})"
            report.float_bytes += w.numel() * 4
            report.packed_bytes += _nbytes(getattr(m, fused))
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    wte = getattr(getattr(model, "transformer", None), "wte", None)
    tied = isinstance(wte, nn.Embedding) and any(m.weight is wte.weight for _, m in linears)
    for n, m in linears:
        w = m.weight.detach()
        if tied and m.weight is wte.weight:  # one int8 matrix for the head and the embedding
            q, s = quantize_int8(w)
            new = PackedLinear(w, m.bias, 8, int8=(q, s))
            model.transformer.wte = PackedEmbedding(q, s)
            report.layers["transformer.wte"] = "int8 (tied)"
        else:
            new = PackedLinear(w, m.bias, bits, group_size)
        report.layers[n] = f"int{new.bits}"
        report.float_bytes += w.numel() * 4
        report.packed_bytes += _nbytes(new)
        parent, _, child = n.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, new)
    return report


def check_weights(weights: str) -> None:
    if weights not in WEIGHTS:
        raise ConfigError(f"--weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")


def prepare(model: nn.Module, weights: str, group_size: int = 32) -> PackReport | None:
    """A loaded float32 model made ready to decode with `weights` (one of WEIGHTS), in place:
    bfloat16 casts everything; int8 and int4 pack the linears and keep the rest float32."""
    check_weights(weights)
    model.eval()
    if weights == "bfloat16":
        model.to(torch.bfloat16)
    elif weights != "float32":
        return pack_(model, weights, group_size)
    return None


def packed_modules(model: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if isinstance(m, PackedLinear | PackedEmbedding)}

