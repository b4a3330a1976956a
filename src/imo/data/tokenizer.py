"""Tokenizers, registered by name.

  * `byte`: 256 symbols, so a loss in bits per token is a loss in bits per byte, which reads
    directly as a compression rate (imo's own models);
  * `bpe`: byte-level BPE from an imported model's vocabulary and merges (the GGUF's
    `tokenizer.ggml.tokens` / `.merges`), built with Hugging Face `tokenizers`, with the model's
    special tokens (`<|im_start|>` ...) matched whole. `token_bytes(id)` gives the bytes a token
    stands for, so losses are still reported per byte and BPE and byte models compare directly.

Every tokenizer has encode(text) -> ids, decode(ids) -> text, vocab_size and token_bytes(id).
A run's tokenizer is named in its config (`config["tokenizer"]`); runs without one use bytes.

    tok = TOKENIZERS.get("byte")(); tok.decode(tok.encode("héllo")) == "héllo"
    tok = load_tokenizer(run_dir, meta)   # bpe for imported runs
"""

import json
from functools import cached_property
from pathlib import Path

from imo.errors import DataError
from imo.registry import Registry

TOKENIZERS: Registry[type] = Registry("tokenizer")
TOKENIZER_FILE = "tokenizer.json"  # Hugging Face tokenizers' own JSON, beside the weights


@TOKENIZERS.register("byte")
class ByteTokenizer:
    vocab_size = 256
    special: dict[str, int] = {}

    def encode(self, text: str | bytes) -> list[int]:
        return list(text.encode("utf-8") if isinstance(text, str) else text)

    def decode(self, ids: list[int]) -> str:
        # a sampled byte sequence need not be valid UTF-8; show what cannot be decoded as U+FFFD
        return bytes(ids).decode("utf-8", errors="replace")

    def token_bytes(self, i: int) -> bytes:
        return bytes([i])


def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte-level alphabet: the printable character each byte is written as in a vocabulary
    (printable Latin-1 bytes stand for themselves, the others are shifted past U+0100)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


# Pre-tokenizer splits by GGUF `tokenizer.ggml.pre` name (llama.cpp's names): which regex-free
# steps run before the byte-level BPE. smollm (SmolLM/StarCoder) splits digits one by one first.
PRE_TOKENIZERS = {"gpt2": False, "smollm": True, "starcoder": True, "default": False}


@TOKENIZERS.register("bpe")
class BPETokenizer:
    def __init__(self, hf_tokenizer, special: dict[str, int] | None = None) -> None:
        self.hf = hf_tokenizer  # tokenizers.Tokenizer
        self.special = dict(special or {})

    @classmethod
    def from_vocab(cls, tokens: list[str], merges: list[str], pre: str = "gpt2",
                   special: dict[str, int] | None = None) -> "BPETokenizer":
        """Build from a byte-level vocabulary (id order) and merges ("a b" each, rank order)."""
        from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

        if pre not in PRE_TOKENIZERS:
            raise DataError(f"unsupported BPE pre-tokenizer {pre!r}; imo reads: {', '.join(PRE_TOKENIZERS)}")
        vocab = {t: i for i, t in enumerate(tokens)}
        pairs = [tuple(m.split(" ", 1)) for m in merges]
        tok = Tokenizer(models.BPE(vocab, pairs, fuse_unk=False, byte_fallback=False))
        steps = [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
        if PRE_TOKENIZERS[pre]:
            steps.insert(0, pre_tokenizers.Digits(individual_digits=True))
        tok.pre_tokenizer = pre_tokenizers.Sequence(steps)
        tok.decoder = decoders.ByteLevel()
        special = dict(special or {})
        if special:
            tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in special])
        return cls(tok, special)

    @classmethod
    def load(cls, folder: Path) -> "BPETokenizer":
        from tokenizers import Tokenizer

        path = Path(folder) / TOKENIZER_FILE
        try:
            hf = Tokenizer.from_file(str(path))
        except Exception as e:  # tokenizers raises its own Exception type for a bad file
            raise DataError(f"cannot read tokenizer {path}: {str(e).splitlines()[0]}") from None
        special = {t.content: i for i, t in hf.get_added_tokens_decoder().items() if t.special}
        return cls(hf, special)

    def save(self, folder: Path) -> None:
        from imo.atomic import write_text

        write_text(Path(folder) / TOKENIZER_FILE, self.hf.to_str())

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str | bytes) -> list[int]:
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        return self.hf.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self.token_bytes_of(ids).decode("utf-8", errors="replace")

    @cached_property
    def _bytes(self) -> list[bytes]:
        alphabet = _byte_level_alphabet()
        out = []
        for i in range(self.vocab_size):
            t = self.hf.id_to_token(i) or ""
            if t in self.special:
                out.append(t.encode())
            else:
                out.append(bytes(alphabet[c] for c in t if c in alphabet))
        return out

    def token_bytes(self, i: int) -> bytes:
        """The bytes token i stands for (a special token: its own text)."""
        return self._bytes[i]

    def token_bytes_of(self, ids: list[int]) -> bytes:
        return b"".join(self._bytes[i] for i in ids)


def load_tokenizer(run_dir: Path, meta: dict):
    """The tokenizer a run's config names (bytes for runs that name none)."""
    spec = (meta.get("config") or {}).get("tokenizer") or {"kind": "byte"}
    kind = spec.get("kind", "byte")
    TOKENIZERS.get(kind)
    if kind == "byte":
        return ByteTokenizer()
    return BPETokenizer.load(Path(run_dir))


def chat_spec(run_dir: Path) -> dict | None:
    """The chat template and special tokens an imported run stores (chat.json), or None."""
    path = Path(run_dir) / "chat.json"
    return json.loads(path.read_text()) if path.exists() else None
