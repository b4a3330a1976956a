"""Chat templates: the Jinja template an imported model ships (GGUF `tokenizer.chat_template`),
rendered the way Hugging Face's apply_chat_template does (a sandboxed environment, trim_blocks,
lstrip_blocks, `raise_exception`), so the model sees the prompt format it was tuned on.

    text = render(spec["template"], [{"role": "user", "content": "Hi"}], spec)
"""

from imo.errors import ConfigError

ROLES = ("system", "user", "assistant")
CHAT_KIND = "chat"  # store results of `imo chat --once`: {"question", "answer", ...}, keyed by run id


def render(template: str, messages: list[dict], spec: dict | None = None,
           add_generation_prompt: bool = True) -> str:
    """The prompt text for `messages` (dicts with role and content), ending where the assistant's
    answer begins when add_generation_prompt."""
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    for m in messages:
        if m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise ConfigError(f"a chat message needs role in {ROLES} and text content, got {m!r}")

    def raise_exception(message: str):
        raise ConfigError(f"chat template: {message}")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    spec = spec or {}
    try:
        return env.from_string(template).render(
            messages=messages, add_generation_prompt=add_generation_prompt,
            bos_token=spec.get("bos_token", ""), eos_token=spec.get("eos_token", ""),
        )
    except TemplateError as e:
        raise ConfigError(f"chat template does not render: {e}") from None


class ChatSession:
    """Answers to one conversation from a model with a chat template: the prompt is prefilled
    once into a KV cache and every answer decodes from a fork of it, so rejecting an answer and
    asking for the next costs only the new answer's tokens. Answer 0 is greedy; each rejection
    samples the next at `temperature` with seed = its index, so a session repeats exactly."""

    def __init__(self, model, tokenizer, spec: dict, messages: list[dict], *,
                 max_tokens: int = 256, temperature: float = 0.7) -> None:
        import torch

        from imo.engine.cache import KVCache

        if spec is None or not spec.get("template"):
            raise ConfigError("this run has no chat template (imo chat needs an imported instruct model)")
        if max_tokens < 1:
            raise ConfigError(f"max-tokens must be >= 1, got {max_tokens}")
        if not temperature > 0:
            raise ConfigError(f"temperature must be > 0 (the first answer is greedy), got {temperature}")
        self.model, self.tok, self.spec = model, tokenizer, spec
        self.max_tokens, self.temperature = max_tokens, temperature
        self.prompt = tokenizer.encode(render(spec["template"], messages, spec))
        limit = model.cfg.context_length
        if len(self.prompt) + max_tokens > limit:
            raise ConfigError(f"prompt ({len(self.prompt)} tokens) + max-tokens exceeds the context ({limit})")
        self.stops = set(spec.get("stop_ids") or [])
        self.answers: list[list[int]] = []
        with torch.no_grad():
            self.cache = KVCache.for_model(model, capacity=len(self.prompt) + 1)
            logits, _ = model(torch.tensor([self.prompt]), cache=self.cache)
        self.first = logits[0, -1].float()  # (vocab,) the first answer token's logits

    def next_answer(self) -> str:
        """The greedy answer first, then a new sampled one on each call."""
        import torch

        i = len(self.answers)
        gen = torch.Generator().manual_seed(i)
        cache, logits, out = self.cache.fork(), self.first, []
        with torch.no_grad():
            for _ in range(self.max_tokens):
                if i == 0:
                    nxt = int(logits.argmax())
                else:
                    probs = torch.softmax(logits / self.temperature, dim=-1)
                    nxt = int(torch.multinomial(probs, 1, generator=gen))
                if nxt in self.stops:
                    break
                out.append(nxt)
                step, _ = self.model(torch.tensor([[nxt]]), cache=cache)
                logits = step[0, -1].float()
        self.answers.append(out)
        return self.tok.decode(out).strip()
