"""POST /classify and POST /summarize: thin handlers (upload, admission, the model's pipeline).

The work itself (preprocess -> forward through the batcher -> postprocess) is in
service.pipelines, shared with the benchmarks, the tests and models.evaluate.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from service import onscreen
from service.errors import ApiError
from service.guard import RequestGuard
from service.ops import StateDep
from service.repository import ServedModel
from service.schemas import ClassifyResponse, Problem, SummarizeResponse
from service.security import require_api_key
from service.state import ServiceState
from service.upload import check_request, receive_upload

router = APIRouter(tags=["inference"], dependencies=[Depends(require_api_key)])

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}}
    for code in (400, 404, 408, 413, 415, 422, 429, 503, 504)
}
_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


def _retry(state: ServiceState) -> dict[str, str]:
    return {"Retry-After": str(state.settings.retry_after_s)}


def _admit(state: ServiceState, served: ServedModel) -> None:
    """Refuse early, before reading the upload, when the answer would be a refusal anyway."""
    if not state.ready:
        why = "draining after SIGTERM" if state.draining else "the models are still warming up"
        raise ApiError(503, f"not ready ({why}); retry later", _retry(state))
    if not served.worker.has_room():
        served.worker.metrics.rejected.inc()
        raise ApiError(429, "the inference queue is full; retry after the Retry-After delay", _retry(state))


def _upload(request: Request, state: ServiceState) -> contextlib.AbstractAsyncContextManager[Path]:
    s = state.settings
    return receive_upload(request, s.max_upload_bytes, s.tmp_dir, s.body_timeout_s)


def _guard(request: Request, state: ServiceState) -> RequestGuard:
    """The request's CancelToken once its body is in: deadline, decode budget, client presence."""
    s = state.settings
    return RequestGuard(request, s.request_timeout_s, int(s.decode_budget_mpx * 1e6))


ModelQuery = Annotated[
    str | None, Query(description="which served model answers (GET /v1/models lists them); default: the default model")
]


def _pick(request: Request, state: ServiceState, model: str | None) -> ServedModel:
    served = state.served(model)
    request.state.model = served.name  # the model label of this request's metrics
    return served


@router.post(
    "/classify",
    response_model=ClassifyResponse,
    response_model_exclude_none=True,
    responses=_ERRORS,
    openapi_extra=_UPLOAD_BODY,
)
async def classify(
    request: Request,
    state: StateDep,
    top_k: Annotated[int, Query(ge=1, description="how many labels to return (1..number of labels)")] = 5,
    segments: Annotated[bool, Query(description="also return a timeline of segments")] = False,
    model: ModelQuery = None,
) -> ClassifyResponse:
    start = time.perf_counter()
    served = _pick(request, state, model)
    pipeline = served.pipelines.classify
    pipeline.validate(top_k)
    check_request(request, state.settings.max_upload_bytes)
    _admit(state, served)
    async with _upload(request, state) as path, _guard(request, state) as cancel:
        return await pipeline(path, top_k=top_k, segments=segments, started=start, cancel=cancel)


@router.post(
    "/summarize",
    response_model=SummarizeResponse,
    response_model_exclude_none=True,
    responses=_ERRORS,
    openapi_extra=_UPLOAD_BODY,
)
async def summarize(
    request: Request,
    state: StateDep,
    max_keyframes: Annotated[int, Query(ge=1, le=64, description="upper bound on keyframes")] = 8,
    thumbnails: Annotated[bool, Query(description="embed a JPEG of each keyframe")] = False,
    text: Annotated[bool, Query(description="read the on-screen text of each keyframe (OCR)")] = False,
    labels: Annotated[bool, Query(description="classify each segment with the model; add its top labels")] = False,
    model: ModelQuery = None,
) -> SummarizeResponse:
    start = time.perf_counter()
    served = _pick(request, state, model)
    check_request(request, state.settings.max_upload_bytes)
    _admit(state, served)
    if text:
        onscreen.admit(request)
    async with _upload(request, state) as path, _guard(request, state) as cancel:
        body = await served.pipelines.summarize(path, max_keyframes=max_keyframes, thumbnails=thumbnails,
                                                labels=labels, started=start, cancel=cancel)
        if text:
            await onscreen.add_text(request, path, body)
        return body
