"""``GET /v1/models``: the one model this server serves, as OpenAI lists models."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from lmops.serving.api_errors import ERROR_RESPONSES
from lmops.serving.deps import api_key, serving_state
from lmops.serving.state import ServingState

router = APIRouter(tags=["openai"], responses=ERROR_RESPONSES)


@router.get("/v1/models")
async def models(key: str = Depends(api_key), state: ServingState = Depends(serving_state)):
    cur = state.holder.current
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
