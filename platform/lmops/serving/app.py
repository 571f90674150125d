"""The OpenAI-compatible HTTP API (FastAPI): completions, chat, models, health, metrics.

Every error a client can cause is an OpenAI-style JSON body with a 4xx status:
``{"error": {"message", "type", "param", "code"}}``. The OpenAPI spec is served at
``/openapi.json``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from lmops.errors import LmopsError
from lmops.serving.engine import Delta, Done, EngineClosed
from lmops.serving.metrics import ServingMetrics
from lmops.serving.output_filter import STREAM_HOLDBACK, BatchedFilter, OutputFilter
from lmops.serving.schemas import ChatCompletionRequest, CompletionRequest, ErrorResponse
from lmops.serving.settings import ServeSettings

log = logging.getLogger("lmops.serving")
# While streaming through the output filter, the text is re-checked each time it has
# grown this many characters (and once at the end), not on every token.
STREAM_CHECK_EVERY = 16


class ApiError(Exception):
    def __init__(
        self, status: int, message: str, param: str | None = None, code: str | None = None
    ):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def response(self) -> JSONResponse:
        kind = {401: "authentication_error", 404: "not_found_error", 413: "invalid_request_error"}
        body = {
            "error": {
                "message": self.message,
                "type": kind.get(self.status, "invalid_request_error"),
                "param": self.param,
                "code": self.code,
            }
        }
        return JSONResponse(body, status_code=self.status)


class RequestGuard:
    """Pure ASGI middleware: the body-size limit, request metrics, and a JSON 500 (never
    a traceback) for anything unhandled.

    Starlette's ``@app.middleware("http")`` wraps every request in an extra task and
    memory stream; under 16 concurrent clients that cost a visible share of the server.
    """

    def __init__(self, app, max_bytes: int, metrics: ServingMetrics):
        self.app, self.max_bytes, self.metrics = app, max_bytes, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status, seen, replied, over = time.perf_counter(), [500], [0], [False], [False]
        too_large = ApiError(413, f"request body over {self.max_bytes} bytes", code="too_large")

        async def send_status(message):
            if over[0]:  # the app answered a cut-off body: answer 413 instead, once
                if message["type"] == "http.response.start" and not replied[0]:
                    replied[0], status[0] = True, 413
                    await too_large.response()(scope, receive, send)
                return
            if message["type"] == "http.response.start":
                status[0], replied[0] = message["status"], True
            await send(message)

        async def counted():
            message = await receive()
            seen[0] += len(message.get("body", b""))
            if seen[0] > self.max_bytes:  # also without (or despite) a Content-Length
                # FastAPI turns any error while reading into a 400, so the body is cut
                # off here and the reply replaced in send_status.
                over[0] = True
                return {"type": "http.request", "body": b"", "more_body": False}
            return message

        try:
            length = dict(scope["headers"]).get(b"content-length", b"")
            if length.isdigit() and int(length) > self.max_bytes:
                await too_large.response()(scope, receive, send_status)
            else:
                await self.app(scope, counted, send_status)
        except Exception:
            log.exception("unhandled error on %s", scope.get("path"))
            if not replied[0]:
                status[0] = 500
                body = {"error": {"message": "internal error", "type": "server_error"}}
                await JSONResponse(body, 500)(scope, receive, send_status)
        finally:
            self.metrics.request(scope.get("path", ""), status[0], time.perf_counter() - started)


ERRORS = {
    400: {"model": ErrorResponse, "description": "Invalid request"},
    401: {"model": ErrorResponse, "description": "Missing or wrong API key"},
    404: {"model": ErrorResponse, "description": "Unknown model"},
    413: {"model": ErrorResponse, "description": "Request too large"},
}


def build_app(
    settings: ServeSettings, holder=None, keys=None, meter=None, verifier=None
) -> FastAPI:
    """The app; ``holder``, ``keys`` and ``meter`` default to the real ones from settings.

    ``verifier`` checks what the holder loads (see ``model_source.Verifier``).
    """
    metrics = holder.metrics if holder is not None else ServingMetrics()
    flt = OutputFilter(settings.safety_action, settings.toxicity_threshold)
    batched_filter = BatchedFilter(flt)
    state: dict = {"holder": holder, "keys": keys, "meter": meter}

    async def lifespan(app):
        if state["keys"] is None and settings.require_api_key:
            from pathlib import Path

            from lmops.serving.keys import ApiKeys

            path = Path(settings.api_keys_file) if settings.api_keys_file else None
            state["keys"] = ApiKeys.load(path)
            if not len(state["keys"]):
                raise LmopsError(
                    "no API keys are configured: create one with `lmops keys add NAME` or set "
                    "LMOPS_API_KEYS; `--no-auth` serves without keys on a private machine"
                )
        if state["meter"] is None:
            from lmops.serving.metering import UsageMeter

            state["meter"] = UsageMeter(settings.usage_db)
        if state["holder"] is None:
            from lmops.serving.model_source import ModelHolder

            state["holder"] = await run_in_threadpool(ModelHolder, settings, metrics, verifier)
        yield
        state["holder"].close()

    app = FastAPI(
        title="lmops OpenAI-compatible API",
        version="1",
        lifespan=lifespan,
        description="Completions and chat completions for the model lmops serves.",
    )

    def openapi():
        # Validation failures answer 400 (OpenAI's status), not FastAPI's 422: say so.
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            spec = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            for ops in spec["paths"].values():
                for op in ops.values():
                    op.get("responses", {}).pop("422", None)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi

    @app.exception_handler(ApiError)
    async def _api_error(_, e: ApiError):
        return e.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {}
        if first.get("type") == "json_invalid":
            return ApiError(
                400, "the request body is not valid JSON", code="invalid_json"
            ).response()
        loc = [str(x) for x in first.get("loc", ()) if x != "body"]
        msg = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
        param = ".".join(loc) or None
        text = f"{param}: {msg}" if param else msg
        return ApiError(400, text, param=param, code=first.get("type")).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_, e: StarletteHTTPException):
        return ApiError(e.status_code, str(e.detail)).response()

    app.add_middleware(RequestGuard, max_bytes=settings.max_request_bytes, metrics=metrics)

    async def api_key(request: Request) -> str:
        if not settings.require_api_key:
            return "anonymous"
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401, "missing API key: send 'Authorization: Bearer <key>'", code="no_key"
            )
        name = state["keys"].verify(token.strip())
        if name is None:
            raise ApiError(401, "incorrect API key", code="invalid_api_key")
        return name

    def served_for(model: str):
        cur = state["holder"].current
        accepted = {cur.name, cur.uri, settings.model}
        if cur.alias:
            accepted.add(f"{cur.name}@{cur.alias}")
        if model not in accepted:
            raise ApiError(
                404,
                f"model '{model}' is not served here; GET /v1/models lists it",
                param="model",
                code="model_not_found",
            )
        return cur

    def budget(req_tokens: int | None) -> int:
        n = req_tokens or settings.default_max_tokens
        if n > settings.max_tokens_limit:
            raise ApiError(
                400,
                f"max_tokens {n} is over this server's limit of {settings.max_tokens_limit}",
                param="max_tokens",
                code="max_tokens_over_limit",
            )
        return n

    def check_context(served, ids: list[int], max_tokens: int) -> None:
        ctx = served.engine.context_length
        if ctx and len(ids) + max_tokens > ctx:
            raise ApiError(
                400,
                f"this model's maximum context length is {ctx} tokens; the prompt has "
                f"{len(ids)} and max_tokens asks {max_tokens} more",
                param="prompt",
                code="context_length_exceeded",
            )

    @app.get("/healthz", tags=["ops"])
    async def healthz():
        h = state["holder"]
        cur = h.current
        out = {"status": "ok", "model": cur.name, "version": cur.version}
        if getattr(h, "refused", None):
            out["refused"] = h.refused
        return out

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    async def prom():
        body, ctype = metrics.exposition()
        return PlainTextResponse(body, media_type=ctype)

    @app.get("/v1/models", tags=["openai"], responses=ERRORS)
    async def models(key: str = Depends(api_key)):
        cur = state["holder"].current
        return {
            "object": "list",
            "data": [
                {
                    "id": cur.name,
                    "object": "model",
                    "created": int(cur.loaded_at),
                    "owned_by": "lmops",
                    "version": cur.version,
                    "alias": cur.alias,
                    "source": cur.uri,
                }
            ],
        }

    @app.post("/v1/completions", tags=["openai"], responses=ERRORS)
    async def completions(req: CompletionRequest, key: str = Depends(api_key)):
        served = served_for(req.model)
        max_tokens = budget(req.max_tokens)
        encoded = [served.engine.encode(p) for p in req.prompts]
        for ids in encoded:
            check_context(served, ids, max_tokens)
        params = req.sampling(max_tokens, req.logprobs)
        jobs = [(ids, params) for ids in encoded for _ in range(req.n)]
        return await respond(req, served, jobs, key, "completions", chat=False)

    @app.post("/v1/chat/completions", tags=["openai"], responses=ERRORS)
    async def chat(req: ChatCompletionRequest, key: str = Depends(api_key)):
        served = served_for(req.model)
        if not served.has_chat_template:
            raise ApiError(
                400,
                f"{served.name} v{served.version} has no chat template in its tokenizer; "
                "use /v1/completions",
                param="messages",
                code="no_chat_template",
            )
        max_tokens = budget(req.token_budget)
        try:
            msgs = [{"role": m.role, "content": m.text()} for m in req.messages]
        except ValueError as e:
            raise ApiError(400, str(e), param="messages") from None
        prompt = served.engine.tokenizer.apply_chat_template(
            msgs, add_generation_prompt=True, tokenize=False
        )
        ids = served.engine.encode(prompt)
        check_context(served, ids, max_tokens)
        top = (req.top_logprobs or 0) if req.logprobs else None
        jobs = [(ids, req.sampling(max_tokens, top))] * req.n
        return await respond(req, served, jobs, key, "chat.completions", chat=True)

    async def run_one(served, ids, params, incremental=True) -> AsyncIterator[Delta | Done]:
        # A swap between lookup and submit closes the old engine: go to the new one.
        engine = served.engine
        for _ in range(3):
            try:
                async with aclosing(engine.stream(ids, params, incremental)) as events:
                    async for ev in events:
                        yield ev
                return
            except EngineClosed:
                engine = state["holder"].current.engine
        raise ApiError(503, "the model is being swapped; retry")

    def nth(params, k):
        """The k-th of n choices: its own seed when sampling, its own beam when searching."""
        from dataclasses import replace

        if params.beam_width > 1:
            return replace(params, beam_rank=k)
        if params.seed is None or k == 0:
            return params
        return replace(params, seed=params.seed + k)

    async def respond(req, served, jobs, key, kind, chat):
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        created = int(time.time())
        # Jobs are prompt-major with the n choices of a prompt adjacent.
        jobs = [(ids, nth(p, i % req.n)) for i, (ids, p) in enumerate(jobs)]
        prompt_tokens = sum(len(ids) for ids, _ in jobs[:: max(req.n, 1)])
        obj = "chat.completion" if chat else "text_completion"

        async def account(completion_tokens: int, filtered: int):
            metrics.tokens(prompt_tokens, completion_tokens)
            state["meter"].record(  # buffered: no database write on this path
                key,
                served.name,
                served.version,
                kind,
                prompt_tokens,
                completion_tokens,
                200,
                filtered > 0,
            )

        if not req.stream:
            results = await asyncio.gather(*(collect(served, ids, p) for ids, p in jobs))
            verdicts = await asyncio.gather(*(batched_filter.check(r[0]) for r in results))
            choices, total, filtered = [], 0, 0
            for i, ((_, done, lp), v) in enumerate(zip(results, verdicts, strict=True)):
                if v.filtered:
                    filtered += 1
                    metrics.filtered(flt.action, v.blocked)
                    log.warning("%s choice %d filtered (%s): %s", rid, i, flt.action, v.reasons)
                finish = "content_filter" if v.blocked else done.finish_reason
                total += done.completion_tokens
                choices.append(choice(chat, i, v.text, finish, lp, served))
            await account(total, filtered)
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": total,
                "total_tokens": prompt_tokens + total,
            }
            return {
                "id": rid,
                "object": obj,
                "created": created,
                "model": served.name,
                "system_fingerprint": f"{served.name}-v{served.version}",
                "choices": choices,
                "usage": usage,
            }

        async def sse():
            queue: asyncio.Queue = asyncio.Queue()
            counts = {"tokens": 0, "filtered": 0}

            async def pump(i, ids, p):
                raw, sent, checked, blocked, blocked_by = "", 0, 0, False, ()
                try:
                    async with aclosing(run_one(served, ids, p)) as events:
                        async for ev in events:
                            if isinstance(ev, Delta):
                                raw += ev.text
                                if flt.action == "off":
                                    piece, sent = raw[sent:], len(raw)
                                elif len(raw) - checked < STREAM_CHECK_EVERY:
                                    continue
                                else:
                                    checked = len(raw)
                                    v = flt.check(raw)
                                    if v.blocked:
                                        blocked, blocked_by = True, v.reasons
                                        break
                                    safe = max(len(v.text) - STREAM_HOLDBACK, sent)
                                    piece, sent = v.text[sent:safe], safe
                                if piece:
                                    await queue.put((i, piece, None))
                            else:
                                counts["tokens"] += ev.completion_tokens
                                finish = ev.finish_reason
                        if blocked:
                            counts["filtered"] += 1
                            metrics.filtered(flt.action, True)
                            log.warning(
                                "%s choice %d blocked while streaming: %s", rid, i, blocked_by
                            )
                            await queue.put((i, "", "content_filter"))
                            return
                        tail = ""
                        if flt.action != "off":
                            v = flt.check(raw)
                            if v.reasons:
                                counts["filtered"] += 1
                                metrics.filtered(flt.action, v.blocked)
                                log.warning("%s choice %d filtered: %s", rid, i, v.reasons)
                            tail = "" if v.blocked else v.text[sent:]
                            finish = "content_filter" if v.blocked else finish
                        await queue.put((i, tail, finish))
                except Exception as e:  # reported in-band: the status line is already sent
                    log.exception("%s choice %d failed", rid, i)
                    await queue.put((i, "", f"error: {e}"))

            tasks = [asyncio.create_task(pump(i, ids, p)) for i, (ids, p) in enumerate(jobs)]
            open_ = len(tasks)
            try:
                if chat:
                    first = [
                        {
                            "index": i,
                            "delta": {"role": "assistant", "content": ""},
                            "finish_reason": None,
                        }
                        for i in range(len(jobs))
                    ]
                    yield _sse(chunk(rid, obj, created, served, first))
                while open_:
                    i, piece, finish = await queue.get()
                    if finish is not None:
                        open_ -= 1
                    if chat:
                        delta = {"content": piece} if piece else {}
                        c = {"index": i, "delta": delta, "finish_reason": finish}
                    else:
                        c = {"index": i, "text": piece, "logprobs": None, "finish_reason": finish}
                    yield _sse(chunk(rid, obj, created, served, [c]))
                await account(counts["tokens"], counts["filtered"])
                if (req.stream_options or {}).get("include_usage"):
                    usage = {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": counts["tokens"],
                        "total_tokens": prompt_tokens + counts["tokens"],
                    }
                    yield _sse({**chunk(rid, obj, created, served, []), "usage": usage})
                yield "data: [DONE]\n\n"
            finally:
                for t in tasks:
                    t.cancel()

        return StreamingResponse(sse(), media_type="text/event-stream")

    async def collect(served, ids, params):
        parts, lps, tops, toks, done = [], [], [], [], None
        async for ev in run_one(served, ids, params, incremental=False):
            if isinstance(ev, Delta):
                parts.append(ev.text)
                toks += ev.token_ids
                lps += ev.logprobs
                tops += ev.top_logprobs
            else:
                done = ev
        lp = (toks, lps, tops) if params.logprobs is not None else None
        return "".join(parts), done, lp

    def choice(chat, i, text, finish, lp, served):
        tok = served.engine.tokenizer
        if chat:
            c = {
                "index": i,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish,
                "logprobs": None,
            }
            if lp:
                c["logprobs"] = {
                    "content": [
                        {
                            "token": tok.decode([t]),
                            "logprob": v,
                            "top_logprobs": [
                                {"token": tok.decode([a]), "logprob": b} for a, b in alt
                            ],
                        }
                        for t, v, alt in zip(*lp, strict=True)
                    ]
                }
            return c
        c = {"index": i, "text": text, "finish_reason": finish, "logprobs": None}
        if lp:
            toks, vals, tops = lp
            c["logprobs"] = {
                "tokens": [tok.decode([t]) for t in toks],
                "token_logprobs": vals,
                "top_logprobs": [{tok.decode([a]): b for a, b in alt} for alt in tops],
            }
        return c

    return app


def chunk(rid, obj, created, served, choices) -> dict:
    return {
        "id": rid,
        "object": obj + ".chunk",
        "created": created,
        "model": served.name,
        "choices": choices,
    }


def _sse(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"
