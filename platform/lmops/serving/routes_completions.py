"""``POST /v1/completions`` and ``POST /v1/chat/completions``: the checks on the request,
then the whole answer or, with ``stream: true``, server-sent events."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.background import BackgroundTask

from lmops.serving.api_errors import ERROR_RESPONSES, ApiError
from lmops.serving.completion_reply import VERSION_HEADER, Reply, full_reply
from lmops.serving.completion_stream import sse_events
from lmops.serving.deps import (
    api_key,
    check_context,
    check_logit_bias,
    served_for,
    serving_state,
    token_budget,
)
from lmops.serving.schemas import ChatCompletionRequest, CompletionRequest
from lmops.serving.state import ServingState

router = APIRouter(tags=["openai"], responses=ERROR_RESPONSES)


@router.post("/v1/completions")
async def completions(
    req: CompletionRequest,
    key: str = Depends(api_key),
    state: ServingState = Depends(serving_state),
):
    served = served_for(state, req.model)
    max_tokens = token_budget(state.settings, req.max_tokens)
    encoded = [served.engine.encode(p) for p in req.prompts]
    for ids in encoded:
        check_context(served, ids, max_tokens)
    params = req.sampling(max_tokens, req.logprobs)
    check_logit_bias(served, params)
    jobs = [(ids, params) for ids in encoded for _ in range(req.n)]
    return await _respond(Reply(state, req, served, jobs, key, "completions", chat=False))


@router.post("/v1/chat/completions")
async def chat(
    req: ChatCompletionRequest,
    key: str = Depends(api_key),
    state: ServingState = Depends(serving_state),
):
    served = served_for(state, req.model)
    if not served.has_chat_template:
        raise ApiError(
            400,
            f"{served.name} v{served.version} has no chat template in its tokenizer; "
            "use /v1/completions",
            param="messages",
            code="no_chat_template",
        )
    max_tokens = token_budget(state.settings, req.token_budget)
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
    params = req.sampling(max_tokens, top)
    check_logit_bias(served, params)
    jobs = [(ids, params)] * req.n
    return await _respond(Reply(state, req, served, jobs, key, "chat.completions", chat=True))


async def _respond(r: Reply):
    # Admission before any decoding: the request budget (400), then the server's queue
    # (503) and the key's limits (429), each refusal with Retry-After where waiting helps.
    adm = r.state.admission
    ticket = adm.enter(r.key, r.prompt_tokens + adm.budget(r.jobs))
    # The version that answers, in a header too: a client can tell v1's answer from v2's
    # across an alias move without reading the body (or before a stream's first chunk).
    headers = {VERSION_HEADER: r.fingerprint}

    def leave() -> None:
        adm.leave(ticket, r.prompt_tokens + r.completion_tokens)

    if not r.req.stream:
        try:
            return JSONResponse(await full_reply(r), headers=headers)
        finally:
            leave()
    # Released when the stream ends or its client goes (the generator is closed), and
    # by the background task should the body never start; leaving twice is a no-op.
    return StreamingResponse(
        _released(sse_events(r), leave),
        media_type="text/event-stream",
        headers=headers,
        background=BackgroundTask(leave),
    )


async def _released(events, leave):
    try:
        async for event in events:
            yield event
    finally:
        leave()
