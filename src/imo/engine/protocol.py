"""The server's request models and error shape: OpenAI's API as its `openai` client sends it.

Requests are pydantic models (FastAPI validates the body against them): strict types (a bool is
not a number, "5" is not an integer), unknown fields refused, OpenAI's no-op values accepted
(`presence_penalty=0`, `frequency_penalty=0`, `best_of=1`, `echo=false`, `logit_bias={}`, `suffix`
unset) and any other value of them refused, since the engine does not implement them. Every error
leaves the server as OpenAI's error object, `{"error": {"message", "type", "param", "code"}}`:
validation errors through `validation_message`, the rest through `APIError`.

`SamplingParams` holds the fields shared by every generating endpoint, so a chat endpoint adds
only its own (`messages`) and reuses `generation_config()`.

    req = CompletionRequest.model_validate({"prompt": "def ", "max_tokens": 8}); cfg = req.generation_config()
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from imo.engine.config import MAX_N, MAX_STOPS, GenerationConfig

MAX_LOGPROBS = 5  # as OpenAI's completions API
MAX_TOP_LOGPROBS = 20  # as OpenAI's chat completions API
DEFAULT_MAX_TOKENS = 16  # as OpenAI's completions API


class APIError(Exception):
    """An error answered in OpenAI's shape."""

    def __init__(self, message: str, status: int = 400, kind: str = "invalid_request_error",
                 param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.param = status, kind, param


def error_body(message: str, kind: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _no_surrogates(value: Any, where: str) -> None:
    """A JSON string may hold a lone surrogate (\\ud800), which is no Unicode text: refuse it here
    rather than fail on encoding it later (a plain-text 500)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError(f"{where} holds a lone surrogate ({value[e.start]!a}), which is not valid Unicode") from None
    elif isinstance(value, list):
        for v in value:
            _no_surrogates(v, where)
    elif isinstance(value, dict):
        for k, v in value.items():
            _no_surrogates(k, where)
            _no_surrogates(v, where)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _text_is_unicode(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for k, v in data.items():
                _no_surrogates(k, "a field name")
                _no_surrogates(v, str(k))
        return data


class StreamOptions(_Strict):
    include_usage: bool = False


class SamplingParams(_Strict):
    """Fields every generating endpoint takes (OpenAI's names and defaults; temperature 0 is greedy)."""

    model: str | None = None
    max_tokens: int | None = Field(None, ge=0)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, ge=1, le=MAX_N)
    stop: str | list[str] | None = Field(None, description=f"stop must be a string or a list of at most {MAX_STOPS}")
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    # accepted at their no-op values only (the engine has no penalties or biases)
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[str, float] | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, v):
        stops = [v] if isinstance(v, str) else (v or [])
        if len(stops) > MAX_STOPS or not all(stops):
            raise ValueError(f"stop must be a non-empty string or a list of at most {MAX_STOPS} of them")
        return stops

    @field_validator("presence_penalty", "frequency_penalty")
    @classmethod
    def _penalty(cls, v, info):
        if v != 0:
            raise ValueError(f"{info.field_name} is not supported (only 0)")
        return v

    @field_validator("logit_bias")
    @classmethod
    def _bias(cls, v):
        if v:
            raise ValueError("logit_bias is not supported (only {} or null)")
        return v

    def generation_config(self, default_max_tokens: int = DEFAULT_MAX_TOKENS) -> GenerationConfig:
        max_tokens = default_max_tokens if self.max_tokens is None else self.max_tokens
        stop = tuple(self.stop or ())
        if self.temperature == 0:
            if self.n > 1:
                raise APIError("n > 1 with temperature 0 (greedy) gives n identical answers", param="n")
            return GenerationConfig(strategy="greedy", max_tokens=max_tokens, stop=stop)
        return GenerationConfig(strategy="sample", max_tokens=max_tokens, temperature=self.temperature,
                                top_p=self.top_p, n=self.n, seed=self.seed, stop=stop)


class JSONSchemaSpec(_Strict):
    """response_format's json_schema: OpenAI's name, description, schema and strict."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    json_schema: dict = Field(alias="schema")
    description: str | None = None
    strict: bool | None = None


class ResponseFormat(_Strict):
    """OpenAI's response_format: plain text, any JSON object, or JSON of a schema (decoded under
    it with imo.engine.constrained, so the answer is valid whatever the model)."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaSpec | None = None

    @model_validator(mode="after")
    def _schema_iff_json_schema(self):
        if (self.type == "json_schema") != (self.json_schema is not None):
            raise ValueError('response_format takes json_schema exactly when its type is "json_schema"')
        return self

    def target(self) -> dict | None:
        """The JSON Schema to decode under; None for plain text."""
        if self.type == "json_object":
            return {"type": "object"}
        return self.json_schema.json_schema if self.json_schema is not None else None


class CompletionRequest(SamplingParams):
    """POST /v1/completions. A prompt is a string or token ids; a list of them is a batch."""

    prompt: str | list[str] | list[int] | list[list[int]] = Field(
        description="prompt must be a string, a list of strings, a list of token ids, or a list of those")
    logprobs: int | None = Field(None, ge=0, le=MAX_LOGPROBS)
    echo: bool = False
    best_of: int | None = None
    suffix: str | None = None
    response_format: ResponseFormat | None = None  # imo's extension: constrained decoding on completions

    @field_validator("echo")
    @classmethod
    def _echo(cls, v):
        if v:
            raise ValueError("echo is not supported (only false)")
        return v

    @field_validator("best_of")
    @classmethod
    def _best_of(cls, v):
        if v not in (None, 1):
            raise ValueError("best_of is not supported (only 1); ask for n samples instead")
        return v

    @field_validator("suffix")
    @classmethod
    def _suffix(cls, v):
        if v:
            raise ValueError("suffix is not supported")
        return v

    def prompts(self, encode: Callable[[str], list[int]]) -> list[list[int]]:
        """The batch as token ids; strings through `encode` (the model's tokenizer)."""
        p = self.prompt
        if isinstance(p, str):
            return [encode(p)]
        if not p:
            raise APIError("the prompt list is empty", param="prompt")
        if all(isinstance(x, int) for x in p):
            return [list(p)]
        return [encode(x) if isinstance(x, str) else list(x) for x in p]


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ChatMessage(_Strict):
    role: Literal["system", "user", "assistant"]
    content: str | list[TextPart] = Field(description="content must be a string or a list of text parts")
    name: str | None = None

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class ChatCompletionRequest(SamplingParams):
    """POST /v1/chat/completions: messages rendered with the run's chat template. max_tokens
    (or its newer name max_completion_tokens) defaults to the rest of the token budget, and an
    end-of-sequence token ends an answer, as OpenAI's chat API does."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=0)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    response_format: ResponseFormat | None = None

    @model_validator(mode="after")
    def _coherent(self):
        if self.max_completion_tokens is not None:
            if self.max_tokens is not None:
                raise ValueError("give max_tokens or max_completion_tokens, not both")
            self.max_tokens = self.max_completion_tokens
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        return self

    def message_dicts(self) -> list[dict]:
        return [{"role": m.role, "content": m.text()} for m in self.messages]

    def logprob_count(self) -> int | None:
        """Top alternatives per token (0: the chosen one's only); None: no logprobs."""
        return (self.top_logprobs or 0) if self.logprobs else None


class SessionRequest(SamplingParams):
    """POST /v1/imo/sessions: one prompt, an answer with branching alternatives."""

    prompt: str
    margin: str = "ratio"
    threshold: float = 0.5
    speculate: int = Field(0, ge=0)


def validation_message(errors: list[dict], model: type[BaseModel] | None = None) -> tuple[str, str | None]:
    """One line for pydantic's errors (the first field's), and the field's name."""
    if not errors:
        return "invalid request", None
    e = errors[0]
    loc = [str(x) for x in e.get("loc", ()) if x != "body"]
    kind = e.get("type", "")
    if kind == "json_invalid":
        return f"malformed JSON: {(e.get('ctx') or {}).get('error', e.get('msg'))}", None
    if not loc and kind == "value_error":  # a check across fields (a model validator)
        return e.get("msg", "invalid request").removeprefix("Value error, "), None
    if not loc:
        return f"the request body must be a JSON object ({e.get('msg', '')})", None
    field = loc[0]
    if field == "response_format" and len(loc) > 1:  # name the nested key: response_format.json_schema.name
        dotted = ".".join(loc)
        if kind == "missing":
            return f"{dotted} is required", field
        if kind == "extra_forbidden":
            return f"unsupported field {dotted!r}", field
        return f"{dotted}: {e.get('msg', 'invalid').removeprefix('Value error, ')}", field
    if kind == "extra_forbidden":
        supported = ", ".join(sorted(model.model_fields)) if model is not None else ""
        return f"unsupported field {field!r}" + (f"; supported: {supported}" if supported else ""), field
    if kind == "missing":
        return f"{field} is required", field
    same_field = [x for x in errors if [str(y) for y in x.get("loc", ()) if y != "body"][:1] == [field]]
    info = model.model_fields.get(field) if model is not None else None
    if len(same_field) > 1 and info is not None and info.description:  # a union: say what it takes
        return info.description, field
    msg = e.get("msg", "invalid")
    msg = msg.removeprefix("Value error, ")
    where = field
    if field == "messages" and len(loc) >= 3 and loc[1].isdigit():  # which message, which part
        where = f"messages[{loc[1]}].{loc[2]}"
    return (msg if msg.startswith(field) else f"{where}: {msg}"), field
