"""POST /v2/models/{name}/infer: KServe Open Inference Protocol (REST) inference on tensors.

The tensor pipeline: preprocess (the request's tensors -> the model's input, names,
datatypes and shapes checked: 400 with what to send instead) -> forward through the
model's BatchingWorker, as /classify's clips -> postprocess (the model's outputs as OIP
tensors). JSON tensors and Triton's binary tensor extension (`Inference-Header-Content-Length`,
`binary_data_size`, `binary_data`, `binary_data_output`) are both read and written, so
KServe's and Triton's clients (tritonclient.http) work unchanged.
"""

from __future__ import annotations

import gzip
import json
import math
import time
import zlib
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError
from starlette.requests import ClientDisconnect

from service.errors import ApiError
from service.ops import served_version
from service.pipelines import PipelineModel, run_forward
from service.schemas import Problem
from service.security import require_api_key
from service.settings import Settings

router = APIRouter(tags=["models"], dependencies=[Depends(require_api_key)])

HEADER_LENGTH = "Inference-Header-Content-Length"
# The model contract's outputs, by the batcher's keys (service.runtime.OnnxModel.run).
_OUTPUT_KEYS = ("logits", "attention", "embeddings")


class TensorIn(BaseModel):
    name: str
    shape: list[Annotated[int, Field(ge=0)]]
    datatype: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    data: Any = None


class RequestedOutput(BaseModel):
    name: str
    parameters: dict[str, Any] = Field(default_factory=dict)


class InferRequest(BaseModel):
    id: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    inputs: list[TensorIn] = Field(min_length=1)
    outputs: list[RequestedOutput] | None = None


@dataclass(frozen=True)
class TensorInputs:
    request: InferRequest
    x: np.ndarray  # float32 [B, T, 3, H, W]
    outputs: list[tuple[str, bool]]  # (output name, as binary)


def _bad(detail: str) -> ApiError:
    return ApiError(400, detail)


class TensorPipeline:
    """preprocess -> forward -> postprocess for OIP tensors of one model."""

    def __init__(self, model: PipelineModel, settings: Settings) -> None:
        self.model = model
        self.settings = settings
        m = model.manifest
        self.output_names = {getattr(m.outputs, k): k for k in _OUTPUT_KEYS}
        if m.outputs.features:  # optional (models/features_output.py)
            self.output_names[m.outputs.features] = "features"

    @property
    def input_shape(self) -> list[int]:
        """[-1, T, 3, H, W]: -1 is the batch."""
        m = self.model.manifest
        return [-1, m.num_frames, 3, m.height, m.width]

    async def __call__(self, header: bytes, binary: bytes, deadline: float | None = None) -> Response:
        inputs = self.preprocess(header, binary)
        deadline = deadline if deadline is not None else time.perf_counter() + self.settings.request_timeout_s
        result = await run_forward(self.model, inputs.x, deadline, self.settings)
        return self.postprocess(inputs, result.outputs)

    def preprocess(self, header: bytes, binary: bytes) -> TensorInputs:
        try:
            request = InferRequest.model_validate_json(header)
        except ValidationError as exc:
            where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
            raise _bad(f"not an Open Inference Protocol request ({where}); see GET /v2/models/"
                       f"{self.model.name} for the inputs") from None
        m = self.model.manifest
        if len(request.inputs) != 1 or request.inputs[0].name != m.input_name:
            names = ", ".join(t.name for t in request.inputs)
            raise _bad(f"model {self.model.name} takes one input named '{m.input_name}', not: {names}")
        tensor = request.inputs[0]
        if tensor.datatype != "FP32":
            raise _bad(f"input '{tensor.name}' must have datatype FP32, not {tensor.datatype}")
        want = self.input_shape
        if len(tensor.shape) != 5 or tensor.shape[0] < 1 or tensor.shape[1:] != want[1:]:
            raise _bad(f"input '{tensor.name}' has shape {tensor.shape}; model {self.model.name} takes "
                       f"[B, {', '.join(map(str, want[1:]))}] with B >= 1 (FP32, already normalized)")
        x = self._values(tensor, binary)
        return TensorInputs(request, x, self._requested(request))

    def _values(self, tensor: TensorIn, binary: bytes) -> np.ndarray:
        count = math.prod(tensor.shape)
        size = tensor.parameters.get("binary_data_size")
        if size is not None:
            if size != count * 4 or len(binary) != size:
                raise _bad(f"input '{tensor.name}' carries {len(binary)} bytes of binary data (binary_data_size "
                           f"{size}); shape {tensor.shape} of FP32 needs {count * 4}")
            values = np.frombuffer(binary, dtype="<f4")
        else:
            if tensor.data is None:
                raise _bad(f"input '{tensor.name}' has neither `data` nor binary data")
            try:
                values = np.asarray(tensor.data, dtype=np.float32).reshape(-1)
            except (ValueError, TypeError):
                raise _bad(f"input '{tensor.name}': `data` must be numbers (flat or nested lists)") from None
            if values.size != count:
                raise _bad(f"input '{tensor.name}' has {values.size} values; shape {tensor.shape} needs {count}")
        return values.reshape(tensor.shape).astype(np.float32, copy=False)

    def _requested(self, request: InferRequest) -> list[tuple[str, bool]]:
        every_binary = bool(request.parameters.get("binary_data_output", False))
        if request.outputs is None:
            return [(name, every_binary) for name in self.output_names]
        unknown = [o.name for o in request.outputs if o.name not in self.output_names]
        if unknown:
            raise _bad(f"model {self.model.name} has no output {', '.join(unknown)}; its outputs: "
                       f"{', '.join(self.output_names)}")
        return [(o.name, bool(o.parameters.get("binary_data", every_binary))) for o in request.outputs]

    def postprocess(self, inputs: TensorInputs, outputs: dict[str, np.ndarray]) -> Response:
        body: dict[str, Any] = {"model_name": self.model.name, "model_version": self.model.manifest.version}
        if inputs.request.id is not None:
            body["id"] = inputs.request.id
        tensors, chunks = [], []
        for name, binary in inputs.outputs:
            value = np.ascontiguousarray(outputs[self.output_names[name]], dtype="<f4")
            tensor: dict[str, Any] = {"name": name, "datatype": "FP32", "shape": list(value.shape)}
            if binary:
                raw = value.tobytes()
                tensor["parameters"] = {"binary_data_size": len(raw)}
                chunks.append(raw)
            else:
                # JSON has no NaN or Infinity.
                tensor["data"] = np.nan_to_num(value, nan=0.0, posinf=0.0, neginf=0.0).reshape(-1).tolist()
            tensors.append(tensor)
        body["outputs"] = tensors
        if not chunks:
            return JSONResponse(body)
        header = json.dumps(body).encode()
        return Response(header + b"".join(chunks), media_type="application/octet-stream",
                        headers={HEADER_LENGTH: str(len(header))})


async def read_body(request: Request, limit: int) -> tuple[bytes, bytes]:
    """The request's JSON header and its binary tensor data (empty without the extension)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise ApiError(413, f"the request is larger than the limit of {limit} bytes; send fewer clips per request")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"the request is larger than the limit of {limit} bytes; "
                               "send fewer clips per request")
            chunks.append(chunk)
    except ClientDisconnect:
        raise ApiError(400, "the client closed the connection before the request body arrived") from None
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "").lower()
    try:
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
    except (OSError, zlib.error, EOFError):
        raise _bad(f"the body is not valid {encoding} data") from None
    header_length = request.headers.get(HEADER_LENGTH.lower())
    if header_length is None:
        return body, b""
    if not header_length.isdigit() or int(header_length) > len(body):
        raise _bad(f"{HEADER_LENGTH} {header_length} does not fit the {len(body)}-byte body")
    n = int(header_length)
    return body[:n], body[n:]


_INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": InferRequest.model_json_schema()},
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary",
                           "description": f"JSON header ({HEADER_LENGTH} bytes) followed by binary tensor data"}
            },
        },
    }
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}}
    for code in (400, 401, 404, 413, 429, 503, 504)
}


@router.post("/v2/models/{name}/infer", responses=_ERRORS, openapi_extra=_INFER_BODY)
@router.post("/v2/models/{name}/versions/{version}/infer", responses=_ERRORS, openapi_extra=_INFER_BODY)
async def infer(name: str, request: Request, version: str | None = None) -> Response:
    """Open Inference Protocol inference: the model's own input tensor (e.g. `frames` FP32
    [B, T, 3, H, W], already normalized) in, its output tensors out, through its batcher."""
    state = request.app.state.service
    served = served_version(state, name, version)
    request.state.model = served.name
    retry = {"Retry-After": str(state.settings.retry_after_s)}
    if not state.ready:
        raise ApiError(503, "not ready (the models are loading, warming up or draining); retry later", retry)
    header, binary = await read_body(request, state.settings.max_tensor_bytes)
    return await served.pipelines.infer(header, binary)
