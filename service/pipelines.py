"""One pipeline per request kind: preprocess -> forward (through the batcher) -> postprocess.

As `transformers` pipelines keep the three stages apart and every caller reuses them, the
HTTP handlers, the benchmarks, the tests and `models.evaluate` all run these same objects:
the service with the model's BatchingWorker as `forward` and the DecodePool as `decoder`,
in-process callers with `local_model` (a direct ONNX Runtime call) and an InlineDecoder.

Errors: only a probe or decode failure of the upload is the client's fault (400, raised
here as ApiError); limits are 413, the batcher's refusals 429/503/504. Anything else that
raises (postprocess, summary) is a bug and reaches the app's 500 handler, which logs it.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import av
import numpy as np

from models import sampling
from models.cancel import CancelToken, DecodeBudgetExceeded, DecodeCancelled
from models.domain import Scorer
from models.frames import (
    DecodeOptions,
    HeaderLimits,
    VideoDecodeError,
    VideoInfo,
    VideoTooLarge,
    planned_cost,
    probe_video,
)
from models.manifest import ModelManifest
from models.preprocess import Preprocessing
from service import pipeline as post
from service import shots
from service import summarize as summary
from service import timeline as search
from service.batcher import DeadlineExceededError, InferResult, QueueFullError, WorkerStoppedError
from service.decoding import DecodeTimeoutError
from service.errors import ApiError
from service.metrics import Metrics
from service.probe_pool import ProbeTimeout
from service.schemas import (
    ClassifyResponse,
    DomainAnswer,
    FrameAttention,
    LabelScore,
    ModelRef,
    SummarizeResponse,
    SummaryKeyframe,
    SummarySegment,
    TimelineSegment,
    Timings,
    VideoMeta,
)
from service.settings import Settings

if TYPE_CHECKING:
    from service.oip import TensorPipeline

T = TypeVar("T")
Forward = Callable[[np.ndarray, float], Awaitable[InferResult]]


class Decoder(Protocol):
    """Where blocking decode work runs, and how: service.decoding.DecodePool or InlineDecoder."""

    def options(self, exact: bool = False) -> DecodeOptions: ...

    async def run(self, deadline: float, fn: Callable[..., T], *args: Any) -> T: ...


@dataclass(frozen=True)
class PipelineModel:
    """What a pipeline needs of a model: its name, manifest, preprocessing and a forward."""

    name: str
    manifest: ModelManifest
    preprocessing: Preprocessing
    forward: Forward
    domain: Scorer | None = None  # training-data statistics, for the `domain` answer

    @property
    def ref(self) -> ModelRef:
        return ModelRef(name=self.name, version=self.manifest.version)


def direct_forward(run: Callable[[np.ndarray], dict[str, np.ndarray]]) -> Forward:
    """A forward without a batcher: one ONNX Runtime call on the caller's thread."""

    async def forward(clips: np.ndarray, deadline: float) -> InferResult:
        started = time.perf_counter()
        outputs = run(clips)
        return InferResult(outputs, 0.0, (time.perf_counter() - started) * 1000)

    return forward


def local_model(model_dir: str | Path, name: str | None = None, intra_op_threads: int = 0) -> PipelineModel:
    """A model directory run in-process on the CPU (benchmarks, evaluation, tests)."""
    from service.runtime import OnnxModel

    runtime = OnnxModel(Path(model_dir), provider="cpu", intra_op_threads=intra_op_threads)
    m = runtime.manifest
    return PipelineModel(name or m.name, m, Preprocessing.from_manifest(m), direct_forward(runtime.run),
                         runtime.domain)


# ---------------------------------------------------------------- shared stages


_TOO_SLOW = "decoding the video took longer than the request deadline; send a shorter video"
_BUDGET_ADVICE = "re-encode it with keyframes closer together, or send a shorter or smaller video"


async def read_upload(decoder: Decoder, deadline: float, fn: Callable[..., T], *args: Any,
                      settings: Settings | None = None) -> T:
    """Probe or decode the upload: the one place where a failure is the client's (400), or
    beyond a limit (413), or stopped by its request's CancelToken (504 / 503 / client gone)."""
    with upload_errors(settings):
        return await decoder.run(deadline, fn, *args)


@contextlib.contextmanager
def upload_errors(settings: Settings | None = None) -> Iterator[None]:
    try:
        yield
    except DecodeTimeoutError:
        raise ApiError(504, _TOO_SLOW) from None
    except DecodeBudgetExceeded as exc:
        raise ApiError(413, f"{exc}, above DECODE_BUDGET_MPX; {_BUDGET_ADVICE}") from None
    except DecodeCancelled as exc:
        if exc.reason == "deadline":
            raise ApiError(504, _TOO_SLOW) from None
        if exc.reason == "drain":
            retry = {"Retry-After": str(settings.retry_after_s if settings else 1)}
            raise ApiError(503, "the service is shutting down; retry on another instance", retry) from None
        raise ApiError(400, "the client went away before the answer was ready") from None
    except VideoTooLarge as exc:
        raise ApiError(413, str(exc)) from None
    except VideoDecodeError as exc:
        raise ApiError(400, f"{exc}; upload a video file such as MP4 (H.264) or WebM") from None
    except (av.error.FFmpegError, EOFError) as exc:
        raise ApiError(400, f"the video cannot be decoded ({exc}); upload an intact video file") from None


def header_limits(settings: Settings) -> HeaderLimits:
    s = settings
    # MAX_DURATION_S is opt-in (0: no limit): duration costs nothing, the decode budget bounds the work.
    return HeaderLimits(max_pixels=s.max_pixels, max_streams=s.max_streams, max_duration_s=s.max_duration_s or None,
                        max_metadata=s.max_metadata_entries)


async def probe_upload(decoder: Decoder, deadline: float, path: str | Path, settings: Settings,
                       cancel: CancelToken | None = None) -> VideoInfo:
    """The upload's VideoInfo, refused (413) from its headers before any frame is decoded.

    With a probe pool (service.probe_pool) the first open runs in a worker process that is
    killed when the request ends: opening a container cannot be interrupted otherwise.
    """
    limits = header_limits(settings)
    pool = getattr(decoder, "probe_pool", None)
    if pool is None:
        probe = functools.partial(probe_video, limits=limits, cancel=cancel)
        return await read_upload(decoder, deadline, probe, path, settings=settings)
    remaining = max(0.0, deadline - time.perf_counter())
    timeout = min(settings.probe_timeout_s, remaining)

    with upload_errors(settings):
        try:
            return await pool.probe(Path(path), limits, timeout)
        except ProbeTimeout as exc:
            if timeout < settings.probe_timeout_s:
                raise DecodeTimeoutError(str(exc)) from None  # the request's deadline came first
            raise ApiError(413, f"{exc} (PROBE_TIMEOUT_S): the container is too complex; remux it") from None


def check_budget(settings: Settings, info: VideoInfo, indices: list[int], mode: str) -> None:
    """413 before decoding when the keyframe index says the frames asked for cost too much
    (e.g. 4K at 120 fps with a keyframe every 5 s: each sampled frame needs hundreds decoded)."""
    frames = planned_cost(info, indices, "fast" if mode == "fast" else "exact")
    mpx = frames * info.width * info.height / 1e6
    if mpx > settings.decode_budget_mpx:
        raise ApiError(
            413,
            f"the frames this request samples need {frames} frames of {info.width}x{info.height} decoded "
            f"({mpx:.0f} megapixels), above the limit of {settings.decode_budget_mpx:g}; {_BUDGET_ADVICE}",
        )


async def run_forward(model: PipelineModel, clips: np.ndarray, deadline: float, settings: Settings) -> InferResult:
    retry = {"Retry-After": str(settings.retry_after_s)}
    try:
        return await model.forward(clips, deadline)
    except QueueFullError:
        raise ApiError(429, "the inference queue is full; retry after the Retry-After delay", retry) from None
    except DeadlineExceededError:
        raise ApiError(504, f"the request did not finish within {settings.request_timeout_s} s; retry later") from None
    except WorkerStoppedError:
        raise ApiError(503, "the service is shutting down; retry on another instance", retry) from None


def check_limits(settings: Settings, info: VideoInfo) -> None:
    pixels = info.width * info.height
    if pixels > settings.max_pixels:
        raise ApiError(
            413,
            f"the video is {info.width}x{info.height} = {pixels} pixels, above the limit of {settings.max_pixels}; "
            "downscale it",
        )
    if settings.max_duration_s and info.duration_s > settings.max_duration_s:
        raise ApiError(
            413,
            f"the video lasts {info.duration_s:.1f} s, above the limit of {settings.max_duration_s:g} s; "
            "cut it into shorter parts",
        )


def video_meta(info: VideoInfo) -> VideoMeta:
    return VideoMeta(
        duration_s=post.finite(info.duration_s), fps=post.finite(info.fps), width=info.width, height=info.height,
        frame_count=info.frame_count, codec=info.codec,
    )


def _labels(scores: list[dict]) -> list[LabelScore]:
    return [LabelScore(**s) for s in scores]


class _Pipeline:
    def __init__(self, model: PipelineModel, settings: Settings, decoder: Decoder,
                 metrics: Metrics | None = None) -> None:
        self.model = model
        self.settings = settings
        self.decoder = decoder
        self.metrics = metrics

    def _observe_decode(self, endpoint: str, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.decode.labels(endpoint=endpoint).observe(seconds)

    def _deadline(self, deadline: float | None) -> float:
        return deadline if deadline is not None else time.perf_counter() + self.settings.request_timeout_s


async def order_matters(model: PipelineModel, deadline: float, settings: Settings) -> bool:
    """Whether the model answers a clip and the same clip played backwards differently: one clip of
    seeded noise frames, both ways (two clips, once per model)."""
    prep = model.preprocessing
    frames = np.random.default_rng(0).integers(0, 256, (prep.num_frames, *prep.size, 3), dtype=np.uint8)
    x = prep.normalize(np.stack([frames, frames[::-1]]))
    logits = (await run_forward(model, x, deadline, settings)).outputs["logits"].astype(np.float64)
    return not np.allclose(logits[0], logits[1], rtol=1e-3, atol=1e-3 * (1.0 + float(np.abs(logits).max())))


# ---------------------------------------------------------------- /classify


@dataclass(frozen=True)
class ClassifyInputs:
    info: VideoInfo
    clips: list[list[int]]  # the clips classifying the whole video
    windows: list[tuple[float, float]]  # timeline windows, one more clip each
    x: np.ndarray  # float32 [clips + windows, T, 3, H, W]
    decode_s: float
    plan: search.SearchPlan | None = None  # TIMELINE_METHOD=search: the windows are its candidates


class ClassifyPipeline(_Pipeline):
    """Labels, per-frame attention, keyframes and an optional timeline of one video."""

    _temporal: bool | None = None  # whether the model's answer depends on frame order (TIMELINE_METHOD=auto)

    async def timeline_method(self, deadline: float) -> str:
        """TIMELINE_METHOD, with `auto` decided once per model: a model whose answer depends on the
        order of its frames (a motion model) gets the search, which shows it whole behaviours; one that
        pools its frames (an image classifier) names what each window shows, and there fixed windows
        are right: its clip of a segment is named after the segment's most salient frames, so the
        search would merge a part showing nothing into a neighbour showing something."""
        if self.settings.timeline_method != "auto":
            return self.settings.timeline_method
        if self._temporal is None:
            self._temporal = await order_matters(self.model, deadline, self.settings)
        return "search" if self._temporal else "windows"

    def validate(self, top_k: int) -> None:
        n = len(self.model.manifest.labels)
        if not 1 <= top_k <= n:
            raise ApiError(422, f"top_k must be between 1 and {n} (the number of labels)")

    async def __call__(self, path: str | Path, top_k: int = 5, segments: bool = False,
                       deadline: float | None = None, started: float | None = None,
                       cancel: CancelToken | None = None) -> ClassifyResponse:
        started = started if started is not None else time.perf_counter()
        self.validate(top_k)
        deadline = self._deadline(deadline)
        inputs = await self.preprocess(path, segments, deadline, cancel)
        result = await run_forward(self.model, inputs.x, deadline, self.settings)
        return self.postprocess(inputs, result, top_k, segments, started)

    async def preprocess(self, path: str | Path, segments: bool, deadline: float,
                         cancel: CancelToken | None = None) -> ClassifyInputs:
        s, prep = self.settings, self.model.preprocessing
        t0 = time.perf_counter()
        info = await probe_upload(self.decoder, deadline, path, s, cancel)
        check_limits(s, info)
        clips = sampling.plan_clips(info, prep.num_frames, s.clip_window_s, s.max_clips, prep.sampling)
        windows, plan = [], None
        method = await self.timeline_method(deadline) if segments else None
        if method == "search":
            plan = search.plan_search(info.duration_s, s.timeline_window_s, s.timeline_cell_s,
                                      self._search_budget(len(clips)))
            windows = plan.windows
        elif segments:
            windows = sampling.plan_windows(info.duration_s, s.timeline_window_s, s.timeline_max_windows)
        window_clips = sampling.window_clips(info, windows, prep.num_frames, prep.sampling)
        options = self.decoder.options()
        check_budget(s, info, [i for c in clips + window_clips for i in c], options.mode)
        decode = functools.partial(prep.decode_clips, cancel=cancel)
        _, x = await read_upload(self.decoder, deadline, decode, path, info, clips + window_clips, options,
                                 settings=s)
        decode_s = time.perf_counter() - t0
        self._observe_decode("/classify", decode_s)
        return ClassifyInputs(info, clips, windows, x, decode_s, plan)

    def _search_budget(self, clips: int) -> int:
        """Candidate clips a timeline search may classify: TIMELINE_MAX_CLIPS, fewer for a model whose
        clips are large (TIMELINE_MAX_MPX), and never so many that the request alone fills the queue."""
        s, prep = self.settings, self.model.preprocessing
        per_clip = prep.num_frames * prep.size[0] * prep.size[1] / 1e6
        return max(1, min(s.timeline_max_clips, int(s.timeline_max_mpx / per_clip), s.max_queue_size - clips))

    def postprocess(self, inputs: ClassifyInputs, result: InferResult, top_k: int, segments: bool,
                    started: float) -> ClassifyResponse:
        s, labels = self.settings, self.model.manifest.labels
        n = len(inputs.clips)
        probs = post.softmax(result.outputs["logits"])
        frames = post.frame_attention(inputs.info, inputs.clips, result.outputs["attention"][:n])
        timeline = None
        if segments:
            if inputs.plan is not None:
                spans = search.segment(inputs.plan, probs[n:], labels, s.timeline_labels, s.timeline_penalty)
            else:
                spans = post.timeline(inputs.windows, probs[n:], inputs.info.duration_s, labels, s.timeline_labels)
            timeline = [TimelineSegment(start_s=t["start_s"], end_s=t["end_s"], labels=_labels(t["labels"]))
                        for t in spans]
        return ClassifyResponse(
            model=self.model.ref,
            video=video_meta(inputs.info),
            labels=_labels(post.top_labels(probs[:n].mean(axis=0), labels, top_k)),
            frames=[FrameAttention(index=f.index, timestamp_s=post.finite(f.timestamp_s), attention=f.attention)
                    for f in frames],
            keyframes=post.keyframes(frames, s.keyframes_max),
            segments=timeline,
            domain=DomainAnswer(**self.model.domain.video_answer({k: v[:n] for k, v in result.outputs.items()},
                                                                 inputs.x[:n]))
            if self.model.domain is not None else None,
            timings_ms=Timings(decode=inputs.decode_s * 1000, queue=result.queue_ms, inference=result.inference_ms,
                               total=(time.perf_counter() - started) * 1000),
        )


# ---------------------------------------------------------------- /summarize


@dataclass(frozen=True)
class SummarizeInputs:
    info: VideoInfo
    indices: list[int]  # the frames looked at, in time order
    frames: np.ndarray  # uint8 [N, H, W, 3] of those frames
    x: np.ndarray  # float32 [chunks, T, 3, H, W]
    decode_s: float
    dense: shots.Dense | None = None  # every frame's signature (service.shots), when decoded


class SummarizePipeline(_Pipeline):
    """Segments (shots/scenes) and keyframes of one video (service.summarize's detection)."""

    async def __call__(self, path: str | Path, max_keyframes: int = 8, thumbnails: bool = False,
                       deadline: float | None = None, started: float | None = None,
                       labels: bool = False, cancel: CancelToken | None = None) -> SummarizeResponse:
        started = started if started is not None else time.perf_counter()
        deadline = self._deadline(deadline)
        inputs = await self.preprocess(path, deadline, cancel)
        result = await run_forward(self.model, inputs.x, deadline, self.settings)
        return await self.postprocess(path, inputs, result, max_keyframes, thumbnails, deadline, started, labels,
                                      cancel)

    async def preprocess(self, path: str | Path, deadline: float, cancel: CancelToken | None = None) -> SummarizeInputs:
        s, prep = self.settings, self.model.preprocessing
        t0 = time.perf_counter()
        info = await probe_upload(self.decoder, deadline, path, s, cancel)
        check_limits(s, info)
        indices = sampling.plan_summary_indices(info, s.summarize_fps, s.summarize_max_frames)
        # Exact frames: cut positions and keyframe indices are reported to the frame (and the
        # loop filter stays on: without it F1 fell from 0.980 to 0.974 in bench.scenes). Videos of
        # at most SUMMARIZE_DENSE_MAX_FRAMES frames also get a signature of every frame (service.shots),
        # unless decoding every frame would exceed the decode budget: then only the samples are decoded.
        check_budget(s, info, indices, "exact")
        dense_max = s.summarize_dense_max_frames
        if info.frame_count * info.width * info.height / 1e6 > s.decode_budget_mpx:
            dense_max = 0
        read = functools.partial(shots.read_summary_frames, cancel=cancel)
        frames, dense = await read_upload(self.decoder, deadline, read, path, info, indices,
                                          prep, dense_max, self.decoder.options(exact=True), settings=s)
        x = shots.model_clips(frames, prep)
        return SummarizeInputs(info, indices, frames, x, time.perf_counter() - t0, dense)

    async def postprocess(self, path: str | Path, inputs: SummarizeInputs, result: InferResult, max_keyframes: int,
                          thumbnails: bool, deadline: float, started: float,
                          labels: bool = False, cancel: CancelToken | None = None) -> SummarizeResponse:
        info, indices, n = inputs.info, inputs.indices, len(inputs.indices)
        embeddings = result.outputs["embeddings"]
        embeddings = embeddings.reshape(-1, embeddings.shape[-1])[:n]
        attention = result.outputs["attention"].reshape(-1)[:n]
        # On the decode pool (CPU work), but not read_upload: a failure here is a bug, not the upload's.
        segs, keys = await self.decoder.run(
            deadline, functools.partial(summary.summarize, dense=inputs.dense, frame_times=shots.frame_times(info)),
            inputs.frames, indices, [info.timestamp(i) for i in indices],
            np.ascontiguousarray(embeddings, np.float32), np.ascontiguousarray(attention, np.float32),
            info.duration_s, info.frame_count, max_keyframes,
        )
        segment_labels = await self._segment_labels(inputs, segs, deadline) if labels else [None] * len(segs)
        decode_s = inputs.decode_s
        thumbs: list[str | None] = [None] * len(keys)
        if thumbnails:
            t0 = time.perf_counter()
            for i, k in enumerate(keys):
                thumb = functools.partial(summary.jpeg_data_uri, cancel=cancel)
                thumbs[i] = await read_upload(self.decoder, deadline, thumb, path, info, k.index,
                                              self.settings.thumbnail_max_side, settings=self.settings)
            decode_s += time.perf_counter() - t0
        self._observe_decode("/summarize", decode_s)
        return SummarizeResponse(
            model=self.model.ref,
            video=video_meta(info),
            segments=[SummarySegment(start_s=post.finite(g.start_s), end_s=post.finite(g.end_s),
                                     start_index=int(g.start_index), end_index=int(g.end_index),
                                     labels=segment_labels[i])
                      for i, g in enumerate(segs)],
            keyframes=[SummaryKeyframe(index=int(k.index), timestamp_s=post.finite(k.timestamp_s),
                                       score=post.finite(k.score), segment=int(k.segment), thumbnail=thumbs[i])
                       for i, k in enumerate(keys)],
            timings_ms=Timings(decode=decode_s * 1000, queue=result.queue_ms, inference=result.inference_ms,
                               total=(time.perf_counter() - started) * 1000),
        )


    async def _segment_labels(self, inputs: SummarizeInputs, segs: list, deadline: float) -> list[list[LabelScore]]:
        """Each segment classified as one clip of T of the frames already decoded in it (no second
        decode): spread evenly over the segment, repeated when it holds fewer than T."""
        t = self.model.preprocessing.num_frames
        positions = np.asarray(inputs.indices)
        clips = []
        for g in segs:
            inside = np.flatnonzero((positions >= g.start_index) & (positions <= g.end_index))
            if len(inside) == 0:  # a segment between two looked-at frames: its nearest one
                inside = np.array([int(np.argmin(np.abs(positions - (g.start_index + g.end_index) / 2)))])
            clips.append(inputs.frames[inside[np.linspace(0, len(inside) - 1, t).round().astype(int)]])
        x = self.model.preprocessing.normalize(np.stack(clips))
        result = await run_forward(self.model, x, deadline, self.settings)
        probs = post.softmax(result.outputs["logits"])
        names, k = self.model.manifest.labels, self.settings.timeline_labels
        return [_labels(post.top_labels(p, names, k)) for p in probs]


# ---------------------------------------------------------------- in-process use


@dataclass(frozen=True)
class Pipelines:
    """Every request kind of one model."""

    classify: ClassifyPipeline
    summarize: SummarizePipeline
    infer: TensorPipeline  # Open Inference Protocol tensors (service.oip)

    @classmethod
    def build(cls, model: PipelineModel, settings: Settings, decoder: Decoder,
              metrics: Metrics | None = None) -> Pipelines:
        from service.oip import TensorPipeline  # it builds on this module's stages

        return cls(ClassifyPipeline(model, settings, decoder, metrics),
                   SummarizePipeline(model, settings, decoder, metrics), TensorPipeline(model, settings))

    @classmethod
    def local(cls, model_dir: str | Path, settings: Settings | None = None, intra_op_threads: int = 0) -> Pipelines:
        """The service's pipelines for one model directory, in-process: no HTTP, no batcher, no threads.

        Decodes as an idle service does (service.decoding.InlineDecoder).
        """
        from service.decoding import InlineDecoder

        settings = settings or Settings(model_dir=Path(model_dir))
        return cls.build(local_model(model_dir, intra_op_threads=intra_op_threads), settings, InlineDecoder(settings))
