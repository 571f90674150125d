"""The OpenAI-compatible HTTP API (FastAPI): the app factory ``build_app``.

The routes live in ``routes_completions`` (completions and chat), ``routes_models``
(``/v1/models``) and ``routes_ops`` (``/healthz``, ``/metrics``); what they share is a
``ServingState`` on ``app.state.serving``, read through ``deps``. Every error a client
can cause is an OpenAI-style JSON body with a 4xx status (``api_errors``). The OpenAPI
spec is served at ``/openapi.json``.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from lmops.serving import routes_completions, routes_models, routes_ops
from lmops.serving.admission import Admission
from lmops.serving.api_errors import install_error_handlers
from lmops.serving.metrics import ServingMetrics
from lmops.serving.output_filter import BatchedFilter, OutputFilter
from lmops.serving.request_guard import RequestGuard
from lmops.serving.settings import ServeSettings
from lmops.serving.state import ServingState


def build_app(
    settings: ServeSettings, holder=None, keys=None, meter=None, verifier=None
) -> FastAPI:
    """The app; ``holder``, ``keys`` and ``meter`` default to the real ones from settings.

    ``verifier`` checks what the holder loads (see ``model_source.Verifier``).
    """
    metrics = holder.metrics if holder is not None else ServingMetrics()
    flt = OutputFilter(settings.safety_action, settings.toxicity_threshold)
    app = FastAPI(
        title="lmops OpenAI-compatible API",
        version="1",
        lifespan=_lifespan,
        description="Completions and chat completions for the model lmops serves.",
    )
    state = app.state.serving = ServingState(
        settings, metrics, flt, BatchedFilter(flt), holder, keys, meter, verifier
    )
    state.admission = Admission.from_settings(settings, metrics, state.key_limits)
    app.openapi = lambda: _openapi(app)
    install_error_handlers(app)
    app.add_middleware(RequestGuard, max_bytes=settings.max_request_bytes, metrics=metrics)
    for module in (routes_ops, routes_models, routes_completions):
        app.include_router(module.router)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI):
    state: ServingState = app.state.serving
    await state.open()
    yield
    state.close()


def _openapi(app: FastAPI) -> dict:
    # Validation failures answer 400 (OpenAI's status), not FastAPI's 422: say so.
    if app.openapi_schema is None:
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
