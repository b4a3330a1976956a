"""Export a run's model as a Hugging Face GPT-2 checkpoint (`GPT2LMHeadModel`).

imo's GPT keeps nanoGPT's layout and names, which are GPT-2's, so the export is a renaming plus
one transposition: GPT-2 stores its projections as `Conv1D` with (in, out) weights where
`nn.Linear` has (out, in). Only the shapes GPT-2 can express are exported: learned positions,
biases everywhere, and exact GELU (`activation_function="gelu"`, erf; GPT-2's own default
"gelu_new" is the tanh approximation, which nn.GELU() is not). transformers is not imported
here: config.json is plain JSON and the weights are written with safetensors.

    export_hf_gpt2(run_dir, Path("out/my-model"))
    # then: GPT2LMHeadModel.from_pretrained("out/my-model")(torch.tensor([list(text.encode())]))
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from imo.errors import ConfigError, DataError
from imo.model.config import ModelConfig
from imo.model.gpt import GPT

FORMATS = ("hf-gpt2",)

# nanoGPT/imo names that GPT-2 stores as Conv1D, i.e. with the weight transposed
_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")

_README = """\
# {name}

A byte-level GPT exported from imo (run step {step}) as a Hugging Face `GPT2LMHeadModel`.

- Vocabulary: 256 tokens, the raw bytes of UTF-8 text. There is no tokenizer and no tokenizer
  files: token ids are `list(text.encode())`, and generated ids decode with
  `bytes(ids).decode("utf-8", errors="replace")`.
- Context: {context_length} tokens (learned position table).
- Shape: {n_layer} layers, {n_head} heads, width {n_embd}; exact (erf) GELU.

```python
import torch
from transformers import GPT2LMHeadModel

model = GPT2LMHeadModel.from_pretrained("{name}")
ids = torch.tensor([list("Hello".encode())])
logits = model(ids).logits  # (1, 5, 256)
```
"""


def check_gpt2_shape(cfg: ModelConfig) -> None:
    """Raise ConfigError (one line, what is allowed) unless GPT-2 can express this model."""
    if cfg.pos != "learned":
        raise ConfigError(
            f"hf-gpt2 export needs pos='learned' (GPT-2 has a learned position table); "
            f"this model has pos={cfg.pos!r}"
        )
    if not cfg.bias:
        raise ConfigError(
            "hf-gpt2 export needs bias=True: GPT-2 always has biases in its linear and "
            "LayerNorm layers; this model was trained with bias=False"
        )
    if cfg.n_future != 1:
        raise ConfigError(
            f"hf-gpt2 export needs a single next-token head (n_future=1); this model has {cfg.n_future}"
        )


def gpt2_config(cfg: ModelConfig) -> dict:
    """config.json for GPT2LMHeadModel with the same shape; dropout off (an inference export)."""
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": cfg.vocab_size,
        "n_positions": cfg.context_length,
        "n_embd": cfg.n_embd,
        "n_layer": cfg.n_layer,
        "n_head": cfg.n_head,
        "n_inner": 4 * cfg.n_embd,
        "activation_function": "gelu",  # nn.GELU(): erf, not the tanh "gelu_new"
        "layer_norm_epsilon": 1e-5,  # nn.LayerNorm's default
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "scale_attn_weights": True,  # 1/sqrt(head size), as imo
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "tie_word_embeddings": cfg.tie_weights,
        "bos_token_id": None,  # bytes have no special tokens (GPT-2's 50256 is out of range)
        "eos_token_id": None,
        "initializer_range": 0.02,
        "use_cache": True,
        "torch_dtype": "float32",
    }


def gpt2_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    """imo weights under GPT-2 names, Conv1D weights transposed to (in, out)."""
    check_gpt2_shape(model.cfg)
    out = {}
    for name, t in model.state_dict_for_save().items():
        if name.endswith(_CONV1D):
            t = t.t()  # (out, in) -> (in, out)
        out[name] = t.detach().to(torch.float32).contiguous().cpu()
    return out


def export_hf_gpt2(run_dir: Path, out_dir: Path, force: bool = False) -> Path:
    """Write config.json, model.safetensors and README.md of the run's latest checkpoint to
    out_dir and return it. Built in a temporary folder beside out_dir and renamed into place."""
    from imo.train.checkpoint import load_model

    out_dir = Path(out_dir).expanduser().resolve()
    if out_dir.exists() and not force and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ConfigError(f"'{out_dir}' exists; pass --force to overwrite")
    if not out_dir.parent.is_dir():  # as imo zip and imo report: never create folders on a typo
        raise DataError(f"folder {out_dir.parent} does not exist")
    model, meta = load_model(Path(run_dir))
    cfg = model.cfg
    check_gpt2_shape(cfg)

    tmp = out_dir.with_name(f".{out_dir.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        save_file(gpt2_state_dict(model), tmp / "model.safetensors", metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(gpt2_config(cfg), indent=2) + "\n")
        (tmp / "README.md").write_text(
            _README.format(name=out_dir.name, step=meta.get("step", "?"), **cfg.to_dict())
        )
        _replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _replace(new: Path, dest: Path) -> None:
    """Move the finished folder `new` to `dest`; an old `dest` is moved aside first and deleted
    last, so at every moment either the old or the new export is in place."""
    if not dest.exists():
        os.rename(new, dest)
        return
    old = dest.with_name(f".{dest.name}.old{os.getpid()}")
    os.rename(dest, old)
    os.rename(new, dest)
    if old.is_dir():
        shutil.rmtree(old)
    else:
        old.unlink()
