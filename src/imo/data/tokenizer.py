"""Tokenizers. The default is bytes: 256 symbols, so a loss in bits per token is a loss in bits per
byte, which reads directly as a compression rate.

    tok = TOKENIZERS.get("byte")(); tok.decode(tok.encode("héllo")) == "héllo"
"""

from imo.registry import Registry

TOKENIZERS: Registry[type] = Registry("tokenizer")


@TOKENIZERS.register("byte")
class ByteTokenizer:
    vocab_size = 256

    def encode(self, text: str | bytes) -> list[int]:
        return list(text.encode("utf-8") if isinstance(text, str) else text)

    def decode(self, ids: list[int]) -> str:
        # a sampled byte sequence need not be valid UTF-8; show what cannot be decoded as U+FFFD
        return bytes(ids).decode("utf-8", errors="replace")
