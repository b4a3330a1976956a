"""`POST /v1/chat/completions` on `imo serve`: OpenAI's chat API over the run's own chat template.

The messages are rendered with the Jinja template the imported model ships (imo.importers.chat,
as Hugging Face's apply_chat_template renders it, generation prompt added), tokenized with the
run's tokenizer and decoded like any completion (imo.engine.serving.run_jobs): `n`, `seed`,
`temperature` (0: greedy), `top_p`, `stop`, `max_tokens` / `max_completion_tokens` (default: the
rest of the token budget), `logprobs` + `top_logprobs`, `stream` (+ `stream_options`), `response_format` (`json_schema`
or `json_object`: decoded under the schema, imo.engine.structured). An answer
ends at the model's end-of-sequence token (e.g. `<|im_end|>`), finish_reason "stop". A run
without a chat template (imo's byte models) answers 400.

    add_chat_routes(app, served)
"""

from __future__ import annotations

from fastapi import FastAPI, Request

from imo.engine.answers import ChatShape
from imo.engine.protocol import APIError, ChatCompletionRequest
from imo.engine.serving import Served
from imo.engine.structured import check_request, constrained_answer
from imo.errors import ConfigError


def chat_prompt(served: Served, req: ChatCompletionRequest) -> list[int]:
    """The token ids of the rendered conversation, ending where the assistant's answer begins."""
    from imo.importers.chat import render

    spec = served.chat
    if not spec or not spec.get("template"):
        raise APIError(f"model {served.model_id!r} has no chat template (imo's byte models have none); "
                       "use /v1/completions", param="messages")
    try:
        text = render(spec["template"], req.message_dicts(), spec)
    except ConfigError as e:
        raise APIError(str(e), param="messages") from None
    return served.engine.text.encode(text)


def add_chat_routes(app: FastAPI, served: Served) -> None:
    @app.post("/v1/chat/completions")
    async def chat_completions(req: ChatCompletionRequest, request: Request):
        served.check_model(req.model)
        ids = chat_prompt(served, req)
        cfg = served.config_for(req, [ids], default_max_tokens=served.budget)
        usage = bool(req.stream_options and req.stream_options.include_usage)
        schema = req.response_format and check_request(req.response_format, req.logprob_count())
        if schema is not None:
            return await constrained_answer(served, request, [ids], cfg, schema, ChatShape(served.model_id),
                                            stream=req.stream, include_usage=usage)
        return await served.run_jobs(request, [ids], cfg, stream=req.stream, logprobs=req.logprob_count(),
                                     shape=ChatShape(served.model_id), include_usage=usage)
