"""Compact checkpoints for pruned and quantized models: safetensors + a JSON layout, no pickle.

Every tensor is stored once (a tied head is an alias of the embedding). A tensor with enough
zeros (a pruned float matrix, or the int8 codes of a pruned-then-quantized one) is stored as a
bitmask of its nonzeros (numpy.packbits, one bit a weight) plus the nonzero values in order;
that pays once more than 1/32 of a float32 tensor (1/8 of an int8 one) is zero. int4 codes
arrive packed two to a byte. The layout in meta.json says, per tensor, how to decode it and,
per quantized module, what to rebuild; a bitmask whose bit count disagrees with its values is
refused as corrupt.

    tensors, layout = encode(model)
    model = build_gpt(meta, tensors)   # imo.train.checkpoint.load_model calls this
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from imo.compress.prune import set_mask
from imo.compress.quantize import QuantEmbedding, QuantLinear, QWeight, quant_modules
from imo.errors import CheckpointError

FORMAT = 1
SEP = "::"  # name::mask, name::values (a separator no parameter name contains)


def _bits(t: Tensor) -> np.ndarray:
    return np.packbits((t != 0).numpy().reshape(-1))


def encode_tensor(name: str, t: Tensor) -> tuple[dict[str, Tensor], dict]:
    """One tensor as stored: dense, or bitmask + nonzero values where that is smaller."""
    t = t.detach().cpu().contiguous()
    info = {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")}
    n, nnz = t.numel(), int((t != 0).sum())
    item = t.element_size()
    sparse_bytes = (n + 7) // 8 + nnz * item
    if t.dtype in (torch.float32, torch.int8) and t.dim() >= 2 and sparse_bytes < n * item:
        info["encoding"] = "bitmask"
        return ({f"{name}{SEP}mask": torch.from_numpy(_bits(t)),
                 f"{name}{SEP}values": t.reshape(-1)[t.reshape(-1) != 0].clone()}, info)
    info["encoding"] = "dense"
    return {name: t}, info


def decode_tensor(name: str, info: dict, stored: dict[str, Tensor]) -> Tensor:
    try:
        shape = tuple(int(s) for s in info["shape"])
        n = int(np.prod(shape)) if shape else 1
        if info["encoding"] == "dense":
            t = stored[name]
            if tuple(t.shape) != shape:
                raise CheckpointError(f"tensor {name} has shape {tuple(t.shape)}, its layout says {shape}")
            return t
        if info["encoding"] != "bitmask":
            raise CheckpointError(f"tensor {name} has unknown encoding {info['encoding']!r}")
        bits, values = stored[f"{name}{SEP}mask"], stored[f"{name}{SEP}values"]
    except KeyError as e:
        raise CheckpointError(f"compressed checkpoint is missing {e.args[0]!r}") from None
    if bits.dtype != torch.uint8 or bits.numel() != (n + 7) // 8:
        raise CheckpointError(f"corrupt mask for {name}: {bits.numel()} bytes for {n} weights")
    keep = torch.from_numpy(np.unpackbits(bits.numpy(), count=n).astype(bool))
    if int(keep.sum()) != values.numel():
        raise CheckpointError(f"corrupt mask for {name}: {int(keep.sum())} bits set but "
                              f"{values.numel()} values stored")
    if values.dtype != getattr(torch, info["dtype"], None):
        raise CheckpointError(f"tensor {name} values are {values.dtype}, its layout says {info['dtype']}")
    out = torch.zeros(n, dtype=values.dtype)
    out[keep] = values
    if values.numel() and bool((values == 0).any()):
        raise CheckpointError(f"corrupt mask for {name}: a stored nonzero value is zero")
    return out.reshape(shape)


def encode(model: nn.Module) -> tuple[dict[str, Tensor], dict]:
    """(tensors for safetensors, JSON layout) of a model with any quantized modules."""
    tensors: dict[str, Tensor] = {}
    layout: dict = {"format": FORMAT, "tensors": {}, "aliases": {}, "modules": {}}

    def put(name: str, t: Tensor) -> None:
        stored, info = encode_tensor(name, t)
        tensors.update(stored)
        layout["tensors"][name] = info

    qnames: dict[int, str] = {}  # QWeight id -> the key it is stored under
    covered = set()  # state-dict keys that belong to quantized modules
    for name, m in quant_modules(model).items():
        qw = m.qweight
        if id(qw) not in qnames:
            qnames[id(qw)] = f"{name}.qweight"
            put(f"{name}.qweight.q", qw.q)
            put(f"{name}.qweight.scale", qw.scale)
        spec = {"kind": "embedding" if isinstance(m, QuantEmbedding) else "linear",
                "weight": qnames[id(qw)], "bits": qw.bits, "group_size": qw.group_size, "shape": list(qw.shape)}
        if isinstance(m, QuantLinear):
            spec.update(kernel=m.kernel, outlier_threshold=m.outlier_threshold, bias=m.bias is not None)
            if m.bias is not None:
                put(f"{name}.bias", m.bias)
        layout["modules"][name] = spec
        covered.update(f"{name}.{k}" for k in m.state_dict())
    first: dict[int, str] = {}
    for key, t in model.state_dict().items():
        if key in covered:
            continue
        ptr = (t.data_ptr(), tuple(t.shape), t.dtype)
        if t.numel() and ptr in first:  # a tied weight: stored once, the other name is an alias
            layout["aliases"][key] = first[ptr]
            continue
        first[ptr] = key
        put(key, t)
    return tensors, layout


def build_gpt(meta: dict, stored: dict[str, Tensor]):
    """The GPT a compressed checkpoint describes (quantized modules rebuilt, sparse tensors
    decoded, masks re-attached to the pruned Linear layers so that further training keeps them)."""
    from imo.model import GPT, ModelConfig

    layout = meta["compress"]
    if layout.get("format") != FORMAT:
        raise CheckpointError(f"compressed layout format {layout.get('format')!r}; this imo reads {FORMAT}")
    model = GPT(ModelConfig.from_dict(meta["config"]["model"]))
    dense = {k: decode_tensor(k, info, stored) for k, info in layout["tensors"].items()}
    qweights: dict[str, QWeight] = {}
    for name, spec in layout["modules"].items():
        key = spec["weight"]
        if key not in qweights:
            try:
                q, scale = dense.pop(f"{key}.q"), dense.pop(f"{key}.scale")
            except KeyError:
                raise CheckpointError(f"compressed checkpoint lacks the codes of {key}") from None
            qweights[key] = QWeight(q, scale, spec["bits"], spec["group_size"], tuple(spec["shape"]))
        qw = qweights[key]
        if spec["kind"] == "embedding":
            new = QuantEmbedding(qw)
        else:
            bias = None
            if spec.get("bias"):
                if f"{name}.bias" not in dense:
                    raise CheckpointError(f"compressed checkpoint lacks the bias of {name}")
                bias = dense.pop(f"{name}.bias")
            new = QuantLinear(qw, bias, spec["kernel"], spec["outlier_threshold"])
        parent, _, child = name.rpartition(".")
        try:
            setattr(model.get_submodule(parent) if parent else model, child, new)
        except AttributeError:
            raise CheckpointError(f"compressed checkpoint names a module {name!r} the model lacks") from None
    for alias, key in layout["aliases"].items():
        if key in dense:
            dense[alias] = dense[key]
    quant_keys = {f"{n}.{k}" for n, m in quant_modules(model).items() for k in m.state_dict()}
    try:
        result = model.load_state_dict(dense, strict=False)
    except RuntimeError as e:
        raise CheckpointError(f"compressed checkpoint does not fit its config: {str(e).splitlines()[0]}") from None
    missing = [k for k in result.missing_keys if k not in quant_keys]
    if missing or result.unexpected_keys:
        raise CheckpointError(f"compressed checkpoint does not fit its config (missing "
                              f"{missing[:3]}, unexpected {result.unexpected_keys[:3]})")
    for name, m in model.named_modules():
        key = layout["aliases"].get(f"{name}.weight", f"{name}.weight")
        if isinstance(m, nn.Linear) and layout["tensors"].get(key, {}).get("encoding") == "bitmask":
            set_mask(m, m.weight != 0)
    return model
