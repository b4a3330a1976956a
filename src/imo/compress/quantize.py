"""Weight quantization: int8 per output channel, int4 in groups, and LLM.int8's outlier split.

* int8: each output row of W gets one scale s = max|w_row| / 127 and w ~ s * q, q in [-127, 127]
  (symmetric, so zeros stay exact zeros: pruning and quantizing combine).
* int4: each group of `group_size` consecutive input weights of a row gets s = max|w| / 7,
  q in [-8, 7], stored as q + 8, two to a byte (even index in the low nibble).
  Rounding to nearest gives |w - s q| <= s / 2 for both (the bound the tests check).
* Outlier split (Dettmers et al. 2022, "LLM.int8()"): when activations are quantized too, a few
  input features with huge values (> 6.0) ruin the scale of the rest. Their columns are taken
  out of the int8 product and multiplied in float (with the dequantized weight columns);
  everything else goes through int8.

int8 kernels (registry KERNELS), picked per layer:
  `fbgemm`      PyTorch's own dynamic-quantized linear (torch.ops.quantized.linear_dynamic, the
                kernel behind torch.ao's dynamic quantization): int8 weights packed once,
                activations quantized per tensor on the fly, int8 x int8 products in fbgemm.
                Fast on x86 CPUs; present in torch 2.13 but its quantized-tensor API is marked
                deprecated, so `auto` falls back when it is missing.
  `vectorwise`  LLM.int8's scheme written out: each activation row gets its own absmax scale,
                the int8 x int8 product is summed exactly (float64), then rescaled.
  `weight-only` multiply by the int8 codes in float, then scale each output (torchao's
                Int8WeightOnlyConfig does the same): the error is the weights' alone.
int4 kernels:
  `weight-only` (the default) dequantize W and multiply in float32: exact, fastest at large batches.
  `tinygemm`    PyTorch's CPU int4 kernel (aten._weight_int4pack_mm_for_cpu, the one torchao's CPU
                int4 config calls): imo's codes and scales repacked at first use, so nothing on
                disk changes; activations in bfloat16 inside the product. Faster at small batches
                (decoding), slower at large ones (benchmarks/RESULTS.md).

    report = quantize_(model, QuantConfig(bits=8), skip=["lm_head", "transformer.wte"])
    print(model)      # QuantLinear(256 -> 768, int8, fbgemm) in place of each Linear
"""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imo.errors import ConfigError
from imo.registry import Registry

KERNELS: Registry[str] = Registry("int8 kernel")
for _k in ("auto", "fbgemm", "vectorwise", "weight-only", "tinygemm"):
    KERNELS.register(_k)(_k)
BITS = (8, 4)


@dataclass(frozen=True)
class QuantConfig:
    bits: int = 8  # 8 | 4
    group_size: int = 64  # int4: input weights per scale
    outlier_threshold: float | None = None  # int8: activation columns above this stay in float (LLM.int8: 6.0)
    kernel: str = "auto"  # int8: auto | fbgemm | vectorwise | weight-only; int4: auto | weight-only | tinygemm
    version: int = 1

    def __post_init__(self) -> None:
        if self.bits not in BITS:
            raise ConfigError(f"bits must be one of {', '.join(map(str, BITS))}, got {self.bits}")
        KERNELS.get(self.kernel)
        if self.bits == 4 and (self.group_size < 2 or self.group_size % 2):
            raise ConfigError(f"group size must be an even number >= 2, got {self.group_size}")
        if self.outlier_threshold is not None:
            if not self.outlier_threshold > 0:
                raise ConfigError(f"outlier threshold must be > 0, got {self.outlier_threshold}")
            if self.bits != 8:
                raise ConfigError("the outlier split is for int8 (LLM.int8); int4 here is weight-only")

    def resolved_kernel(self) -> str:
        if self.bits == 4:
            if self.kernel in ("fbgemm", "vectorwise"):
                raise ConfigError(f"the {self.kernel} kernel is for int8; int4 runs weight-only or tinygemm")
            return "tinygemm" if self.kernel == "tinygemm" else "weight-only"
        if self.kernel == "tinygemm":
            raise ConfigError("the tinygemm kernel is for int4; int8 runs fbgemm, vectorwise or weight-only")
        if self.kernel == "auto":
            return "fbgemm" if fbgemm_available() else "vectorwise"
        if self.kernel == "fbgemm" and not fbgemm_available():
            raise ConfigError("the fbgemm int8 kernel is not available in this PyTorch build; "
                              "use --kernel vectorwise or weight-only")
        return self.kernel

    def to_dict(self) -> dict:
        return asdict(self)


def tinygemm_available() -> bool:
    return hasattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu")


def fbgemm_available() -> bool:
    return (hasattr(torch.ops.quantized, "linear_dynamic")
            and "fbgemm" in torch.backends.quantized.supported_engines)


# --- the number formats ---------------------------------------------------------------------------


def quantize_int8(w: Tensor) -> tuple[Tensor, Tensor]:
    """(out, in) float -> int8 codes (out, in) and one float32 scale per output row (out,)."""
    w = w.detach().float()
    amax = w.abs().amax(dim=1)
    scale = torch.where(amax > 0, amax / 127.0, torch.ones_like(amax))
    q = torch.clamp(torch.round(w / scale[:, None]), -127, 127).to(torch.int8)
    return q, scale


def dequantize_int8(q: Tensor, scale: Tensor) -> Tensor:
    return q.float() * scale[:, None]


def quantize_int4(w: Tensor, group_size: int) -> tuple[Tensor, Tensor]:
    """(out, in) float -> packed uint8 (out, in / 2) and float32 scales (out, in / group_size)."""
    out, n_in = w.shape
    if n_in % group_size:
        raise ConfigError(f"group size {group_size} does not divide the input width {n_in}; "
                          f"pick a divisor of {n_in}")
    g = w.detach().float().reshape(out, n_in // group_size, group_size)  # (out, groups, G)
    amax = g.abs().amax(dim=2)
    scale = torch.where(amax > 0, amax / 7.0, torch.ones_like(amax))  # (out, groups)
    q = torch.clamp(torch.round(g / scale[..., None]), -8, 7).to(torch.int16) + 8  # 0..15
    q = q.reshape(out, n_in).to(torch.uint8)
    packed = q[:, 0::2] | (q[:, 1::2] << 4)  # (out, in / 2)
    return packed, scale


def dequantize_int4(packed: Tensor, scale: Tensor, group_size: int) -> Tensor:
    out, half = packed.shape
    q = torch.empty(out, half * 2, dtype=torch.int16, device=packed.device)
    q[:, 0::2] = (packed & 0x0F).to(torch.int16)
    q[:, 1::2] = (packed >> 4).to(torch.int16)
    g = (q - 8).float().reshape(out, -1, group_size)
    return (g * scale[..., None]).reshape(out, half * 2)


class QWeight(nn.Module):
    """A quantized weight matrix (out, in): codes and scales as buffers. A tied embedding and
    output head share one QWeight."""

    def __init__(self, q: Tensor, scale: Tensor, bits: int, group_size: int, shape: tuple[int, int]) -> None:
        super().__init__()
        self.register_buffer("q", q)
        self.register_buffer("scale", scale)
        self.bits, self.group_size, self.shape = bits, group_size, tuple(shape)

    @classmethod
    def from_float(cls, w: Tensor, bits: int, group_size: int) -> QWeight:
        q, s = quantize_int8(w) if bits == 8 else quantize_int4(w, group_size)
        return cls(q, s, bits, group_size, tuple(w.shape))

    def dequantize(self) -> Tensor:
        if self.bits == 8:
            return dequantize_int8(self.q, self.scale)
        return dequantize_int4(self.q, self.scale, self.group_size)

    def nbytes(self) -> int:
        return self.q.numel() * self.q.element_size() + self.scale.numel() * self.scale.element_size()

    def extra_repr(self) -> str:
        return f"{self.shape[1]} -> {self.shape[0]}, int{self.bits}" + (f", groups of {self.group_size}" if self.bits == 4 else "")


def _vectorwise(x: Tensor, q: Tensor, scale: Tensor) -> Tensor:
    """LLM.int8's vector-wise product: x (N, in) rows scaled to int8 by their own absmax,
    codes multiplied exactly (integers summed in float64), rescaled by both scales."""
    amax = x.abs().amax(dim=1, keepdim=True)
    sx = torch.where(amax > 0, amax / 127.0, torch.ones_like(amax))  # (N, 1)
    xq = torch.round(x / sx)
    acc = xq.double() @ q.double().t()  # (N, out): exact integer sums
    return (acc * sx.double() * scale.double()[None, :]).float()


class QuantLinear(nn.Module):
    """A Linear whose weight is a QWeight; see the module docstring for the kernels."""

    def __init__(self, qweight: QWeight, bias: Tensor | None, kernel: str, outlier_threshold: float | None) -> None:
        super().__init__()
        self.qweight = qweight
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())
        self.kernel, self.outlier_threshold = kernel, outlier_threshold
        self.in_features, self.out_features = qweight.shape[1], qweight.shape[0]
        self._packed = None  # fbgemm's packed weight, built on first use (not saved)
        self.outlier_columns_seen = 0  # columns routed through float, over all calls (statistics)

    def extra_repr(self) -> str:
        t = f", outliers > {self.outlier_threshold:g} in float" if self.outlier_threshold else ""
        return f"{self.in_features} -> {self.out_features}, int{self.qweight.bits}, {self.kernel}{t}"

    def _fbgemm(self, x: Tensor) -> Tensor:
        if self._packed is None:
            qw = self.qweight
            with warnings.catch_warnings():  # the quantized-tensor constructors are marked deprecated
                warnings.simplefilter("ignore")
                wq = torch._make_per_channel_quantized_tensor(
                    qw.q, qw.scale.double(), torch.zeros(qw.shape[0], dtype=torch.long), 0)
                self._packed = torch.ops.quantized.linear_prepack(wq, None)
        return torch.ops.quantized.linear_dynamic(x.contiguous(), self._packed)

    def _tinygemm(self, x: Tensor) -> Tensor | None:
        """int4 through PyTorch's CPU int4 kernel; None where it cannot run (no such op, a
        shape it refuses, not on CPU), and the layer then runs weight-only."""
        if self._packed is None:
            qw = self.qweight
            ok = tinygemm_available() and qw.q.device.type == "cpu"
            try:
                if ok:
                    codes = torch.empty(qw.shape, dtype=torch.int32)
                    codes[:, 0::2] = (qw.q & 0x0F).to(torch.int32)  # stored as q + 8: tinygemm's
                    codes[:, 1::2] = (qw.q >> 4).to(torch.int32)    # (q - 8) * scale + zero, zero 0
                    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes, 2)
                    s = qw.scale.t().to(torch.bfloat16)  # (groups, out)
                    self._packed = (packed, torch.stack([s, torch.zeros_like(s)], dim=-1).contiguous())
            except RuntimeError:
                ok = False
            if not ok:
                self._packed = False
        if self._packed is False:
            return None
        packed, scales_zeros = self._packed
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(x.to(torch.bfloat16), packed,
                                                        self.qweight.group_size, scales_zeros)
        return y.float()

    def _int8(self, x: Tensor) -> Tensor:
        if self.kernel == "fbgemm":
            return self._fbgemm(x)
        return _vectorwise(x, self.qweight.q, self.qweight.scale)

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1]).float()  # (N, in)
        if self.qweight.bits == 4:
            y = self._tinygemm(x) if self.kernel == "tinygemm" else None
            if y is None:
                y = x @ self.qweight.dequantize().t()
        elif self.kernel == "weight-only":
            # torchao's order (Int8WeightOnlyConfig): the codes cast to float and multiplied, the
            # per-row scale applied to the (N, out) product, not to the (out, in) weight: the
            # same value, one multiply fewer per weight on every call (benchmarks/RESULTS.md)
            y = (x @ self.qweight.q.t().float()) * self.qweight.scale
        elif self.outlier_threshold is None:
            y = self._int8(x)
        else:
            cols = (x.abs() > self.outlier_threshold).any(dim=0)  # (in,) outlier feature columns
            n = int(cols.sum())
            if n == 0:
                y = self._int8(x)
            else:
                self.outlier_columns_seen += n
                inliers = x.masked_fill(cols[None, :], 0.0)
                w_out = dequantize_int8(self.qweight.q[:, cols], self.qweight.scale)  # (out, n)
                y = self._int8(inliers) + x[:, cols] @ w_out.t()
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*shape[:-1], self.out_features)


class QuantEmbedding(nn.Module):
    """An Embedding whose table is a QWeight (rows dequantized as they are looked up)."""

    def __init__(self, qweight: QWeight) -> None:
        super().__init__()
        self.qweight = qweight

    def forward(self, idx: Tensor) -> Tensor:
        qw = self.qweight
        if qw.bits == 8:
            return qw.q[idx].float() * qw.scale[idx][..., None]
        return F.embedding(idx, qw.dequantize())

    def extra_repr(self) -> str:
        return f"{self.qweight.shape[0]} x {self.qweight.shape[1]}, int{self.qweight.bits}"


QUANTIZED = (QuantLinear, QuantEmbedding)


def is_quantized(model: nn.Module) -> bool:
    return any(isinstance(m, QUANTIZED) for m in model.modules())


# --- the transform ---------------------------------------------------------------------------------

FilterFn = Callable[[str, nn.Module], bool]


@dataclass
class QuantReport:
    config: dict
    kernel: str
    layers: dict[str, dict] = field(default_factory=dict)  # name -> shape, bytes, max error, bound
    kept: list[str] = field(default_factory=list)  # matrices left in float

    def table(self) -> str:
        w = max([len(n) for n in [*self.layers, *self.kept]] or [5])
        lines = [f"{'layer':<{w}}  {'format':<8} {'float32 B':>10} {'stored B':>10}  max |error| (bound)"]
        for n, d in self.layers.items():
            lines.append(f"{n:<{w}}  {d['format']:<8} {d['float_bytes']:>10,} {d['bytes']:>10,}  "
                         f"{d['max_error']:.2e} ({d['bound']:.2e})")
        for n in self.kept:
            lines.append(f"{n:<{w}}  {'float32':<8} (kept)")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"config": self.config, "kernel": self.kernel, "layers": self.layers, "kept": self.kept}


def _matches(name: str, patterns) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def quantize_(model: nn.Module, config: QuantConfig | None = None, filter_fn: FilterFn | None = None,
              skip: list[str] | tuple[str, ...] = ()) -> QuantReport:
    """Replace the selected nn.Linear / nn.Embedding modules by quantized ones, in place.

    `filter_fn(name, module)` picks modules (default: every Linear and Embedding); names matching
    a `skip` glob stay in float. A tied embedding and head are one matrix: both are quantized or
    both kept. Refuses a model that is already quantized and a selection that matches nothing."""
    config = config or QuantConfig()
    if is_quantized(model):
        raise ConfigError("this model is already quantized; quantize its float parent instead")
    kernel = config.resolved_kernel()
    for p in skip:
        if not any(fnmatch.fnmatchcase(n, p) for n, _ in model.named_modules()):
            raise ConfigError(f"--keep/skip pattern {p!r} matches no layer of this model")
    candidates = [(n, m) for n, m in model.named_modules(remove_duplicate=False)
                  if isinstance(m, nn.Linear | nn.Embedding)]
    chosen = {n for n, m in candidates if (filter_fn is None or filter_fn(n, m)) and not _matches(n, skip)}
    by_weight: dict[int, list[str]] = {}
    for n, m in candidates:
        by_weight.setdefault(id(m.weight), []).append(n)
    report = QuantReport(config.to_dict(), kernel)
    todo = []
    for names in by_weight.values():
        picked = [n for n in names if n in chosen]
        if picked and len(picked) != len(names):
            raise ConfigError(f"{' and '.join(names)} share one (tied) weight; quantize both or keep both")
        if picked:
            todo.append(names)
        else:
            report.kept.append(names[0])
    if not todo:
        raise ConfigError("the layer selection matches no Linear or Embedding; nothing would be quantized")
    modules = dict(model.named_modules(remove_duplicate=False))
    for names in todo:
        w = modules[names[0]].weight.detach()
        if config.bits == 4 and w.shape[1] % config.group_size:
            raise ConfigError(f"group size {config.group_size} does not divide the input width "
                              f"{w.shape[1]} of {names[0]}; pick a divisor of {w.shape[1]}")
        qw = QWeight.from_float(w, config.bits, config.group_size)
        err = (qw.dequantize() - w.float()).abs()
        scale_per_weight = (qw.scale[:, None].expand_as(w) if config.bits == 8 else
                            qw.scale.repeat_interleave(config.group_size, dim=1))
        report.layers[" = ".join(names)] = {
            "format": f"int{config.bits}", "shape": list(w.shape), "float_bytes": w.numel() * 4,
            "bytes": qw.nbytes(), "max_error": float(err.max()),
            "bound": float((scale_per_weight / 2).max()),
        }
        for n in names:
            m = modules[n]
            new = (QuantEmbedding(qw) if isinstance(m, nn.Embedding)
                   else QuantLinear(qw, m.bias, kernel, config.outlier_threshold))
            parent_name, _, child = n.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
    return report


def quant_modules(model: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules(remove_duplicate=False) if isinstance(m, QUANTIZED)}
