"""What the routes depend on: the shared state and the API key (FastAPI ``Depends``),
and the per-request limits that need the parsed body (plain checks the routes call).

Every dependency is ``async``: FastAPI runs a plain ``def`` one in the thread pool.
"""

from __future__ import annotations

from fastapi import Depends, Request

from lmops.serving.api_errors import ApiError
from lmops.serving.model_source import Served
from lmops.serving.settings import ServeSettings
from lmops.serving.state import ServingState


async def serving_state(request: Request) -> ServingState:
    """The state ``build_app`` put on the app."""
    return request.app.state.serving


async def api_key(request: Request, state: ServingState = Depends(serving_state)) -> str:
    """The name of the caller's key (metered under it); ``"anonymous"`` without auth."""
    if not state.settings.require_api_key:
        return "anonymous"
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>'", code="no_key")
    name = state.keys.verify(token.strip())
    if name is None:
        raise ApiError(401, "incorrect API key", code="invalid_api_key")
    return name


def served_for(state: ServingState, model: str) -> Served:
    """The served model if ``model`` names it (name, pinned URI, the configured model,
    or ``name@alias``); else a 404."""
    cur = state.holder.current
    accepted = {cur.name, cur.uri, state.settings.model}
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


def token_budget(settings: ServeSettings, requested: int | None) -> int:
    """``max_tokens`` for a request: its own or the default, never over the limit."""
    n = requested or settings.default_max_tokens
    if n > settings.max_tokens_limit:
        raise ApiError(
            400,
            f"max_tokens {n} is over this server's limit of {settings.max_tokens_limit}",
            param="max_tokens",
            code="max_tokens_over_limit",
        )
    return n


def check_logit_bias(served: Served, params) -> None:
    """A 400 when ``logit_bias`` names a token id this model does not have."""
    vocab = getattr(served.engine, "vocab", None) or len(served.engine.tokenizer)
    bad = [t for t, _ in params.logit_bias if t >= vocab]
    if bad:
        raise ApiError(
            400,
            f"logit_bias names token id {bad[0]}, outside this model's vocabulary (0-{vocab - 1})",
            param="logit_bias",
            code="invalid_logit_bias",
        )


def check_context(served: Served, ids: list[int], max_tokens: int) -> None:
    """A 400 when the prompt and ``max_tokens`` do not fit the model's context."""
    ctx = served.engine.context_length
    if ctx and len(ids) + max_tokens > ctx:
        raise ApiError(
            400,
            f"this model's maximum context length is {ctx} tokens; the prompt has "
            f"{len(ids)} and max_tokens asks {max_tokens} more",
            param="prompt",
            code="context_length_exceeded",
        )
