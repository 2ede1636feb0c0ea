"""The app factory: `create_app(settings)` builds one self-contained service (tests build several)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from service import errors, openapi, web
from service.aux_models import AuxModels
from service.guard import InflightMiddleware
from service.inference import router as inference_router
from service.middleware import MetricsMiddleware
from service.oip import router as oip_router
from service.ops import health, protected
from service.repository import ModelLoadError
from service.settings import Settings
from service.state import ServiceState
from service.transcribe import router as transcribe_router


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    state = ServiceState(settings)
    aux = AuxModels(settings, state.metrics.registry)  # speech and OCR (/transcribe, text=true)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # A model that cannot load stops startup (the process exits); warm-up runs after
        # startup so that /healthz answers and /readyz says 503 until it is done.
        try:
            await state.start()
        except ModelLoadError as exc:
            logging.getLogger("service").error("startup stopped: %s", exc)
            await state.stop()
            raise
        aux.start()
        warm_up = asyncio.create_task(state.warm_up())
        try:
            yield
        finally:
            warm_up.cancel()
            await state.stop()
            await aux.stop()

    app = FastAPI(
        title="motion-serve",
        summary="Video classification and summaries over ONNX Runtime with dynamic batching",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # /docs from packaged assets, not a CDN (service/web.py)
        redoc_url=None,
    )
    app.state.service = state
    app.state.aux = aux
    errors.install(app)
    app.add_middleware(InflightMiddleware, state=state)  # inside the metrics: its 503s are counted
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    app.include_router(health)
    app.include_router(protected)
    app.include_router(inference_router)
    app.include_router(transcribe_router)
    app.include_router(oip_router)
    web.install(app)
    openapi.install(app, settings)
    return app
