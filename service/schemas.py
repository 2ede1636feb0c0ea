"""Response bodies exactly as API.md shows them."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ModelRef(BaseModel):
    name: str
    version: str


class VideoMeta(BaseModel):
    duration_s: float
    fps: float
    width: int
    height: int
    frame_count: int
    codec: str


class LabelScore(BaseModel):
    label: str
    score: float


class FrameAttention(BaseModel):
    index: int
    timestamp_s: float
    attention: float


class TimelineSegment(BaseModel):
    start_s: float
    end_s: float
    labels: list[LabelScore]


class Timings(BaseModel):
    decode: float
    queue: float
    inference: float
    total: float


class ClassifyResponse(BaseModel):
    model: ModelRef
    video: VideoMeta
    labels: list[LabelScore]
    frames: list[FrameAttention]
    keyframes: list[int]
    segments: list[TimelineSegment] | None = Field(None, description="only with segments=true")
    timings_ms: Timings


class SummarySegment(BaseModel):
    start_s: float
    end_s: float
    start_index: int
    end_index: int


class SummaryKeyframe(BaseModel):
    index: int
    timestamp_s: float
    score: float
    segment: int
    thumbnail: str | None = Field(None, description="only with thumbnails=true")


class SummarizeResponse(BaseModel):
    model: ModelRef
    video: VideoMeta
    segments: list[SummarySegment]
    keyframes: list[SummaryKeyframe]
    timings_ms: Timings


class Problem(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str


class Health(BaseModel):
    status: str


class ModelInfo(BaseModel):
    name: str
    version: str
    labels: list[str]
    num_frames: int
    input_size: tuple[int, int] = Field(description="(height, width)")
    resize: str
    precision: str
    providers: list[str] = Field(description="ONNX Runtime execution providers in use")
    hwaccel: str | None = Field(None, description="hardware video decoder in use (null: software)")
    ready: bool
    default: bool = Field(False, description="whether this model answers requests that name none")


class ModelList(BaseModel):
    models: list[ModelInfo]


class TensorMeta(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class OipModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMeta]
    outputs: list[TensorMeta]


class OipReady(BaseModel):
    name: str
    ready: bool
