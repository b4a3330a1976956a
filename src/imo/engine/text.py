"""Tokens as text, for any tokenizer: the bytes each token stands for, the token ids that end a
row (end of sequence), stop strings found across token boundaries, and incremental
detokenization that never splits a UTF-8 character.

The engine decodes token ids; whether an id is a byte (imo's own models) or a BPE piece of
several bytes (an imported model) is this module's business only. A row's *text* is the
concatenation of its tokens' bytes, decoded as UTF-8. Stop strings are matched on those bytes,
so a stop is found whether it lies inside one token, spans several, or begins in the middle of a
multi-byte character's token; a stop ends the row at the token that completes it, and the text is
cut where the stop begins (the stop removed, as OpenAI's API does). An end-of-sequence token
(`eos`, e.g. SmolLM2's `<|im_end|>`) ends its row too and adds no text. The tokens kept with an
answer are those whose bytes begin before the cut, so a token that straddles it stays, with
only its part before the stop in the text (vLLM keeps such a token too).

`RowText` releases a row's text while it is generated: a token waits while its bytes end in what
could still be the start of a stop string, and bytes that do not yet complete a character wait in
an incremental UTF-8 decoder (Python's codecs), so the released pieces, one per token, always
join to exactly the final text.

    tt = TokenText(tokenizer, eos=[2]); stops = tt.stops(("\\n\\n",))
    tt.finished(out, stops)  # "stop" or None, after each token;  tokens, text = tt.cut(out, stops)
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator

from imo.engine.sampling import stop_bytes


class TokenText:
    """How an engine reads its token ids as text. tokenizer: anything with vocab_size,
    token_bytes(i) and encode(text) (imo.data.tokenizer); None is bytes. eos: ids that end a row."""

    def __init__(self, tokenizer=None, eos: Iterable[int] = ()) -> None:
        if tokenizer is None:
            from imo.data.tokenizer import ByteTokenizer

            tokenizer = ByteTokenizer()
        self.tokenizer = tokenizer
        self.eos = frozenset(int(t) for t in eos)
        self.pieces = [tokenizer.token_bytes(i) for i in range(tokenizer.vocab_size)]
        self.byte_level = all(p == bytes([i]) for i, p in enumerate(self.pieces)) and len(self.pieces) == 256

    def piece(self, token: int) -> bytes:
        """The bytes `token` adds to the text (an end-of-sequence token: none)."""
        if token in self.eos or not 0 <= token < len(self.pieces):
            return b""
        return self.pieces[token]

    def encode(self, text: str | bytes) -> list[int]:
        """A prompt as token ids. A byte model takes any bytes (a str as UTF-8, argv's lone
        surrogates back to their raw bytes); a BPE model reads text."""
        if self.byte_level:
            return list(text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape"))
        return self.tokenizer.encode(text)

    def bytes_of(self, tokens: Iterable[int]) -> bytes:
        return b"".join(self.piece(t) for t in tokens)

    def name(self, token: int) -> str:
        """A token's name among top logprobs: its text when it is whole UTF-8, else bytes:\\xNN..."""
        data = self.pieces[token] if 0 <= token < len(self.pieces) else b""
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return "bytes:" + "".join(f"\\x{b:02x}" for b in data)

    @staticmethod
    def stops(stop: Iterable[str | bytes]) -> list[bytes]:
        return stop_bytes(stop)

    def finished(self, out: list[int], stops: list[bytes]) -> str | None:
        """"stop" if the last token of `out` is an end-of-sequence token or completes a stop
        string, else None. Only the bytes that could form a stop ending in that token are read,
        so a check costs the same however long the row is."""
        if not out:
            return None
        if out[-1] in self.eos:
            return "stop"
        if not stops:
            return None
        last = self.piece(out[-1])
        if not last:
            return None
        want = len(last) + max(map(len, stops)) - 1  # a stop that ends in the last token lies here
        tail, i = [last], len(out) - 2
        have = len(last)
        while have < want and i >= 0:
            p = self.piece(out[i])
            tail.append(p)
            have += len(p)
            i -= 1
        window = b"".join(reversed(tail))[-want:]
        return "stop" if any(s in window for s in stops) else None

    def cut(self, out: list[int], stops: list[bytes]) -> tuple[list[int], bytes]:
        """The tokens kept and the bytes of the text: up to the earliest stop string (removed) or
        an end-of-sequence token (dropped), whichever comes first."""
        keep = next((i for i, t in enumerate(out) if t in self.eos), len(out))
        out = out[:keep]
        data = self.bytes_of(out)
        at = min((i for i in (data.find(s) for s in stops) if i >= 0), default=-1)
        if at < 0:
            return out, data
        n, start = 0, 0
        while n < len(out) and start < at:  # tokens whose bytes begin before the stop
            start += len(self.piece(out[n]))
            n += 1
        return out[:n], data[:at]

    def decode(self, out: list[int], stops: list[bytes] = ()) -> str:
        """The text of a finished row (invalid UTF-8 shown as U+FFFD)."""
        return self.cut(out, list(stops))[1].decode("utf-8", "replace")


def held_back(data: bytes, stops: list[bytes]) -> int:
    """How many bytes at the end of `data` could still be the beginning of a stop string."""
    most = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(data)), most, -1):
            if data.endswith(s[:k]):
                most = k
                break
    return most


class RowText:
    """One row's text as it is generated: `add(token)` records a token and returns the range of
    tokens it makes ready to send; `pieces[i]` is the text token i completes (empty while a
    character is unfinished), so the sent pieces join to the final text exactly."""

    def __init__(self, tt: TokenText, stops: list[bytes]) -> None:
        self.tt, self.stops = tt, stops
        self.tokens: list[int] = []
        self.data = bytearray()  # bytes of the tokens so far (end-of-sequence tokens add none)
        self.starts: list[int] = []  # byte offset where each token begins
        self.pieces: list[str] = []  # text of each released token
        self.raw: list[bytes] = []  # bytes of each released token (cut at a stop)
        self.kept: int | None = None  # tokens in the answer, once finished
        self._dec = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def add(self, token: int, finished: bool = False) -> tuple[int, int]:
        self.starts.append(len(self.data))
        self.tokens.append(token)
        self.data += self.tt.piece(token)
        return self.finish() if finished else self._release(self._ready())

    def _ready(self) -> int:
        if self.tokens[-1] in self.tt.eos:
            return len(self.pieces)
        safe = len(self.data)
        if self.stops:
            safe -= held_back(bytes(self.data[-max(map(len, self.stops)):]), self.stops)
        n = len(self.pieces)
        while n < len(self.tokens) and self._end(n) <= safe and self.tokens[n] not in self.tt.eos:
            n += 1
        return n

    def _end(self, i: int) -> int:
        return self.starts[i + 1] if i + 1 < len(self.starts) else len(self.data)

    def _release(self, hi: int, limit: int | None = None) -> tuple[int, int]:
        lo = len(self.pieces)
        for i in range(lo, hi):
            end = self._end(i) if limit is None else min(self._end(i), limit)
            chunk = bytes(self.data[self.starts[i] : max(end, self.starts[i])])
            self.raw.append(chunk)
            self.pieces.append(self._dec.decode(chunk))
        return lo, hi

    def finish(self) -> tuple[int, int]:
        """The row is over: release what is left up to the stop (or end-of-sequence token)."""
        if self.kept is not None:
            return len(self.pieces), len(self.pieces)
        kept, text = self.tt.cut(self.tokens, self.stops)
        self.kept = kept_n = max(len(kept), len(self.pieces))
        lo, hi = self._release(kept_n, limit=len(text))
        tail = self._dec.decode(b"", final=True)  # an unfinished character at the end: U+FFFD
        if tail and self.pieces:  # (no piece: no byte was decoded, so no tail either)
            self.pieces[-1] += tail
        return lo, hi

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def stream_text(tt: TokenText, events: Iterable[tuple[int, bool]], stops: list[bytes] = ()) -> Iterator[str]:
    """Text pieces of one row's (token, finished) events as they come: held back while they could
    begin a stop, cut at a stop or an end-of-sequence token; unfinished characters wait."""
    row = RowText(tt, list(stops))
    for t, finished in events:
        lo, hi = row.add(t, finished)
        if piece := "".join(row.pieces[lo:hi]):
            yield piece
        if row.kept is not None:
            return
    lo, hi = row.finish()
    if piece := "".join(row.pieces[lo:hi]):
        yield piece
