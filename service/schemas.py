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


class DomainAnswer(BaseModel):
    in_domain: bool = Field(description="false: the video is unlike the training data; do not trust the labels")
    distance: float = Field(description="how far the video lies from the training data (larger is further)")
    threshold: float = Field(description="the calibrated distance up to which a video counts as in the domain")


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
    domain: DomainAnswer | None = Field(None, description="only when the model carries training-data statistics")
    timings_ms: Timings


class SummarySegment(BaseModel):
    start_s: float
    end_s: float
    start_index: int
    end_index: int
    labels: list[LabelScore] | None = Field(None, description="only with labels=true")


class OnScreenText(BaseModel):
    text: str
    score: float
    box: list[int] = Field(description="[x0, y0, x1, y1] in displayed-frame pixels")


class SummaryKeyframe(BaseModel):
    index: int
    timestamp_s: float
    score: float
    segment: int
    thumbnail: str | None = Field(None, description="only with thumbnails=true")
    text: list[OnScreenText] | None = Field(None, description="only with text=true")


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


class AuxModelInfo(BaseModel):
    kind: str = Field(description="speech (/transcribe) or ocr (/summarize?text=true)")
    name: str | None = None
    version: str | None = None
    provider: str | None = Field(None, description="runtime and device in use")
    compute_type: str | None = None
    languages: list[str] | None = Field(None, description="ISO 639-1 codes the speech model knows")
    vad: str | None = None
    ready: bool
    error: str | None = Field(None, description="why it cannot serve (its endpoint answers 503)")


class ModelList(BaseModel):
    models: list[ModelInfo]
    auxiliary: list[AuxModelInfo] = Field(default_factory=list, description="speech and OCR models")


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
