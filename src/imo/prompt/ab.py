"""The A/B harness: prompt variants against any OpenAI-compatible endpoint, exact scoring, and a
transcript of every request and response so a run can be re-scored offline and shared.

A variants file (TOML) names the tasks and one `[[variant]]` table per arm; a variant's keys are
the knobs of imo.prompt.builder.PromptSpec, so two arms that differ in one key measure that key:

    [tasks]
    split = "plain"      # imo.prompt.tasks.SPLITS
    n = 40
    seed = 0
    [request]
    max_tokens = 160
    temperature = 0.0    # 0: greedy, so one answer per item and the bootstrap runs over items
    [[variant]]
    name = "defaults"
    defaults = true
    [[variant]]
    name = "no-defaults"
    defaults = false

The transcript (JSONL) starts with a header (the variants file as read, the endpoint, the model)
and holds one line per item of each variant: the variant, the item with its truth, the request
and the response (with `retries`, every attempt in `attempts`; the last is the answer).
`rescore` reads only that file.

    summaries = run_ab(load_variants(path), Endpoint(url, model), out_path)
"""

from __future__ import annotations

import json
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from imo.atomic import atomic_path
from imo.errors import ConfigError, DataError, ImoError
from imo.files import read_jsonl, read_text
from imo.prompt.builder import PromptSpec, build_messages, render_plain
from imo.prompt.score import ItemScore, Summary, score_answer, summarize
from imo.prompt.tasks import SPLITS, Item, generate, shots_for
from imo.prompt.typed import answer_model, ask_typed

FORMAT = "imo-prompt-ab/1"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TasksSpec(_Strict):
    split: str = "plain"
    n: int = Field(40, ge=1, le=100_000)
    seed: int = 0

    @field_validator("split")
    @classmethod
    def _split(cls, v):
        if v not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}")
        return v


class RequestSpec(_Strict):
    max_tokens: int = Field(160, ge=1)
    temperature: float = Field(0.0, ge=0, le=2)
    seed: int | None = 0


class VariantSpec(_Strict):
    name: str = Field(min_length=1)
    order: Literal["context-first", "instruction-first"] = "context-first"
    defaults: bool = True
    strict: bool = True
    types: bool = True
    json_context: bool = True
    expand: bool = False
    answer: Literal["json", "records"] = "json"
    shots: int = Field(0, ge=0, le=16)
    system: str | None = "You extract facts from text."
    retries: int = Field(0, ge=0, le=5)  # typed retries (imo.prompt.typed): JSON answers only

    @model_validator(mode="after")
    def _retries_need_json(self):
        if self.retries and self.answer != "json":
            raise ValueError("retries validate JSON answers; use answer = \"json\" or retries = 0")
        return self

    def prompt_spec(self) -> PromptSpec:
        return PromptSpec(**self.model_dump(exclude={"name", "retries"}))


class VariantsFile(_Strict):
    tasks: TasksSpec = TasksSpec()
    request: RequestSpec = RequestSpec()
    variant: list[VariantSpec] = Field(min_length=1)

    @field_validator("variant")
    @classmethod
    def _unique(cls, v):
        names = [x.name for x in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"variant names must be unique; repeated: {', '.join(dup)}")
        return v


def _one_line(e: ValidationError, data: dict) -> str:
    err = e.errors()[0]
    loc = list(err.get("loc", ()))
    where = []
    for i, part in enumerate(loc):
        if isinstance(part, int) and i and loc[i - 1] == "variant":
            name = (data.get("variant") or [{}])[part].get("name") if isinstance(data.get("variant"), list) else None
            where[-1] = f"[[variant]] {part + 1}" + (f" ({name!r})" if isinstance(name, str) else "")
        else:
            where.append(str(part))
    msg = err.get("msg", "invalid").removeprefix("Value error, ")
    if err.get("type") == "extra_forbidden":
        msg = "unknown key"
    elif err.get("type") == "missing":
        msg = "required key missing"
    return f"{'.'.join(where) or 'file'}: {msg}"


def parse_variants(data: dict, source: str) -> VariantsFile:
    try:
        return VariantsFile.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"variants file {source}: {_one_line(e, data)}") from None


def load_variants(path: str | Path) -> VariantsFile:
    path = Path(path)
    text = read_text(path, "variants file")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"variants file {path} is not valid TOML: {e}") from None
    return parse_variants(data, str(path))


@dataclass
class Endpoint:
    url: str
    model: str | None = None
    api: Literal["chat", "completions"] = "chat"
    api_key: str = "none"
    timeout: float = 120.0

    @property
    def base_url(self) -> str:
        url = self.url.rstrip("/")
        return url if url.endswith("/v1") else url + "/v1"


def connect(ep: Endpoint):
    """An openai client, after checking the endpoint answers; fills in the model when it serves one."""
    import openai

    client = openai.OpenAI(base_url=ep.base_url, api_key=ep.api_key, max_retries=0, timeout=ep.timeout)
    try:
        served = [m.id for m in client.with_options(timeout=min(ep.timeout, 15.0)).models.list().data]
    except openai.APIConnectionError as e:
        why = str(getattr(e, "__cause__", None) or e).splitlines()[0]
        raise ImoError(f"cannot reach the endpoint {ep.base_url}: {why}") from None
    except openai.APIStatusError as e:
        if ep.model is None:
            raise ImoError(f"the endpoint {ep.base_url} does not list its models ({e.status_code}); give --model") from None
        served = []
    if ep.model is None:
        if len(served) != 1:
            raise ConfigError(f"the endpoint serves {len(served)} models; choose one with --model "
                              f"({', '.join(served[:5])})")
        ep.model = served[0]
    return client


def _call(client, ep: Endpoint, req: RequestSpec, messages: list[dict]) -> dict[str, Any]:
    """One request; returns the transcript's request and response (or error) parts."""
    import openai

    kw = {"model": ep.model, "max_tokens": req.max_tokens, "temperature": req.temperature}
    if req.seed is not None:
        kw["seed"] = req.seed
    if ep.api == "chat":
        request = {"api": "chat", **kw, "messages": messages}
    else:
        request = {"api": "completions", **kw, "prompt": render_plain(messages)}
    began = time.perf_counter()
    try:
        if ep.api == "chat":
            r = client.chat.completions.create(messages=messages, **kw)
            text, finish = r.choices[0].message.content or "", r.choices[0].finish_reason
        else:
            r = client.completions.create(prompt=request["prompt"], **kw)
            text, finish = r.choices[0].text, r.choices[0].finish_reason
        usage = r.usage.model_dump() if r.usage else None
        response, error = {"text": text, "finish_reason": finish, "usage": usage}, None
    except openai.APIStatusError as e:
        response, error = None, f"HTTP {e.status_code}: {_api_message(e)}"
    except openai.APIConnectionError as e:  # timeouts included
        response, error = None, f"connection: {e}"
    except (IndexError, AttributeError, TypeError, ValueError) as e:  # not OpenAI's response shape
        response, error = None, f"malformed response: {type(e).__name__}: {e}"
    return {"request": request, "response": response, "error": error,
            "seconds": round(time.perf_counter() - began, 4)}


def _job(client, ep: Endpoint, req: RequestSpec, variant: VariantSpec, item: Item, messages: list[dict]) -> dict:
    """One item of one variant: one call, or with `retries` the typed loop, every attempt kept."""
    if not variant.retries:
        return _call(client, ep, req, messages)
    attempts: list[dict] = []

    def call(msgs: list[dict]) -> str:
        attempts.append(_call(client, ep, req, msgs))
        return (attempts[-1]["response"] or {}).get("text") or ""

    result = ask_typed(call, messages, answer_model(item.fields), retries=variant.retries)
    for a, checked in zip(attempts, result.attempts, strict=True):
        a["validation_error"] = checked.error
    return {**attempts[-1], "attempts": attempts}


def _api_message(e) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(e)


def plan(spec: VariantsFile) -> list[tuple[VariantSpec, Item, list[dict]]]:
    """Every (variant, item, messages) the run asks, in a fixed order."""
    items = generate(spec.tasks.split, spec.tasks.n, spec.tasks.seed)
    jobs = []
    for v in spec.variant:
        ps = v.prompt_spec()
        for item in items:
            shots = shots_for(item, v.shots, spec.tasks.seed) if v.shots else []
            jobs.append((v, item, build_messages(ps, item.fields, item.example(), shots)))
    return jobs


def run_ab(spec: VariantsFile, ep: Endpoint, out: Path, concurrency: int = 4,
           progress=None) -> dict[str, Summary]:
    """Run every variant on every item, write the transcript to `out` (atomically), and score."""
    if concurrency < 1:
        raise ConfigError(f"--concurrency must be >= 1, got {concurrency}")
    client = connect(ep)
    jobs = plan(spec)
    # The first call alone: an endpoint that refuses the request shape (a byte model has no chat
    # template) fails once, with its own message, instead of once per item.
    first = _job(client, ep, spec.request, *jobs[0])
    if first["error"] and first["error"].startswith("HTTP 4"):
        hint = " (try --api completions)" if "chat template" in first["error"] else ""
        raise ImoError(f"the endpoint refused the first request: {first['error']}{hint}")
    results = [first]
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for i, r in enumerate(pool.map(lambda j: _job(client, ep, spec.request, *j), jobs[1:]), 2):
            results.append(r)
            if progress:
                progress(i, len(jobs))
    header = {"type": "header", "format": FORMAT, "variants": spec.model_dump(),
              "endpoint": ep.base_url, "model": ep.model, "api": ep.api, "calls": len(jobs)}
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(header, ensure_ascii=False) + "\n")
        for (v, item, _), r in zip(jobs, results, strict=True):
            f.write(json.dumps({"type": "call", "variant": v.name, "item": item.to_dict(), **r},
                               ensure_ascii=False) + "\n")
    return rescore(out)


def read_transcript(path: str | Path) -> tuple[dict, list[dict]]:
    path = Path(path)
    rows = []
    for n, row in read_jsonl(path, "transcript"):
        if not isinstance(row, dict):
            raise DataError(f"transcript {path} line {n} is not a JSON object")
        rows.append(row)
    if not rows or rows[0].get("type") != "header" or rows[0].get("format") != FORMAT:
        raise DataError(f"transcript {path} has no {FORMAT} header on its first line")
    return rows[0], [r for r in rows[1:] if r.get("type") == "call"]


def rescore(path: str | Path, seed: int = 0) -> dict[str, Summary]:
    """Score a transcript offline with the current checkers: {variant: summary}, in file order."""
    header, calls = read_transcript(path)
    if not isinstance(header.get("variants"), dict):
        raise DataError(f"transcript {path}: the header holds no variants")
    spec = parse_variants(header["variants"], f"in transcript {path}")
    answers = {v.name: v.answer for v in spec.variant}
    scores: dict[str, list[ItemScore]] = {v.name: [] for v in spec.variant}
    errors = dict.fromkeys(scores, 0)
    for n, c in enumerate(calls, 2):
        try:
            item = Item.from_dict(c["item"])
            if c.get("error") or not c.get("response"):  # no answer: counted, not scored as one
                errors[c["variant"]] += 1
                continue
            text = c["response"].get("text") or ""
            scores[c["variant"]].append(score_answer(item, text, answers[c["variant"]]))
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise DataError(f"transcript {path} line {n}: malformed call ({type(e).__name__}: {e})") from None
    out = {name: summarize(s, seed) for name, s in scores.items()}
    for name, count in errors.items():
        out[name].errors = count
    return out


def summary_rows(summaries: dict[str, Summary]) -> list[list[str]]:
    return [[name, str(s.items), s.accuracy.show(), s.tpr.show(), s.tnr.show(), s.exact.show(),
             s.valid.show(), f"{s.outside_words:.1f}", str(s.errors)] for name, s in summaries.items()]


COLUMNS = ["variant", "items", "accuracy", "TPR", "TNR", "exact", "valid", "words outside", "errors"]


def summaries_json(summaries: dict[str, Summary]) -> str:
    return json.dumps({k: asdict(v) for k, v in summaries.items()}, sort_keys=True)
