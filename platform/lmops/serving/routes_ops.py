"""Operations routes: ``/healthz`` (with any alias move the holder refused) and
``/metrics`` (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from lmops.serving.deps import serving_state
from lmops.serving.state import ServingState

router = APIRouter(tags=["ops"])


@router.get("/healthz")
async def healthz(state: ServingState = Depends(serving_state)):
    h = state.holder
    cur = h.current
    out = {"status": "ok", "model": cur.name, "version": cur.version}
    if getattr(h, "refused", None):
        out["refused"] = h.refused
    return out


@router.get("/metrics", response_class=PlainTextResponse)
async def prom(state: ServingState = Depends(serving_state)):
    body, ctype = state.metrics.exposition()
    return PlainTextResponse(body, media_type=ctype)
