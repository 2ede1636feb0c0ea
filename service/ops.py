"""Health, model metadata (also as KServe's Open Inference Protocol) and metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.errors import ApiError
from service.repository import ServedModel
from service.schemas import Health, ModelInfo, ModelList, OipModelMetadata, OipReady, Problem, TensorMeta
from service.security import require_api_key
from service.state import ServiceState

health = APIRouter(tags=["health"])
protected = APIRouter(tags=["models"], dependencies=[Depends(require_api_key)])


def get_state(request: Request) -> ServiceState:
    return request.app.state.service


StateDep = Annotated[ServiceState, Depends(get_state)]


def _require_ready(state: ServiceState) -> None:
    if not state.ready:
        why = "draining after SIGTERM" if state.draining else "loading or warming up the models"
        retry = {"Retry-After": str(state.settings.retry_after_s)}
        raise ApiError(503, f"not ready: {why}; retry later", retry)


@health.get("/healthz", response_model=Health)
async def healthz() -> dict:
    return {"status": "ok"}


@health.get("/readyz", response_model=Health, responses={503: {"description": "not ready"}})
async def readyz(state: StateDep) -> dict:
    _require_ready(state)
    return {"status": "ready"}


@health.get("/v2/health/live")
async def oip_live() -> dict:
    return {"live": True, "status": "ok"}


@health.get("/v2/health/ready", responses={503: {"description": "not ready"}})
async def oip_ready(state: StateDep) -> dict:
    _require_ready(state)
    return {"ready": True, "status": "ready"}


def _model_info(state: ServiceState, served: ServedModel) -> ModelInfo:
    m = served.manifest
    return ModelInfo(
        name=served.name, version=m.version, labels=m.labels, num_frames=m.num_frames, input_size=m.size,
        resize=m.resize, precision=m.precision, providers=served.runtime.providers,
        hwaccel=state.settings.hwaccel if state.hwaccel is not None else None,
        ready=served.ready and not state.draining, default=served.name == state.default_model,
    )


@protected.get("/v1/models", response_model=ModelList)
async def list_models(request: Request, state: StateDep) -> ModelList:
    aux = getattr(request.app.state, "aux", None)
    return ModelList(models=[_model_info(state, m) for m in state.models.values()],
                     auxiliary=aux.describe() if aux is not None else [])


def _tensor(name: str, datatype: str, shape: list) -> TensorMeta:
    # Symbolic dimensions (the batch) are -1 in the Open Inference Protocol.
    return TensorMeta(name=name, datatype=datatype, shape=[d if isinstance(d, int) else -1 for d in shape])


def served_version(state: ServiceState, name: str, version: str | None) -> ServedModel:
    """The model `name`; with a version (OIP's /versions/{version} paths), only that one: 404 otherwise."""
    served = state.served(name)
    if version is not None and version != served.manifest.version:
        raise ApiError(404, f"model {name} has no version {version}; it serves version {served.manifest.version}")
    return served


@protected.get("/v2/models/{name}", response_model=OipModelMetadata, responses={404: {"model": Problem}})
@protected.get("/v2/models/{name}/versions/{version}", response_model=OipModelMetadata,
               responses={404: {"model": Problem}})
async def oip_model(name: str, state: StateDep, version: str | None = None) -> OipModelMetadata:
    served = served_version(state, name, version)
    session = served.runtime.session
    return OipModelMetadata(
        name=name,
        versions=[served.manifest.version],
        platform="onnxruntime_onnx",
        inputs=[_tensor(i.name, "FP32", i.shape) for i in session.get_inputs()],
        outputs=[_tensor(o.name, "FP32", o.shape) for o in session.get_outputs()],
    )


@protected.get(
    "/v2/models/{name}/ready", response_model=OipReady,
    responses={404: {"model": Problem}, 503: {"description": "not ready"}},
)
@protected.get(
    "/v2/models/{name}/versions/{version}/ready", response_model=OipReady,
    responses={404: {"model": Problem}, 503: {"description": "not ready"}},
)
async def oip_model_ready(name: str, state: StateDep, version: str | None = None) -> OipReady:
    served = served_version(state, name, version)
    if not served.ready or state.draining:
        retry = {"Retry-After": str(state.settings.retry_after_s)}
        raise ApiError(503, f"model {name} is not ready (loading, warming up or draining); retry later", retry)
    return OipReady(name=name, ready=True)


@protected.get("/metrics", response_class=Response)
async def metrics(state: StateDep) -> Response:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
