"""POST /classify and POST /summarize: upload -> decode (pool) -> batching worker -> answer."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import av
import numpy as np
from fastapi import APIRouter, Depends, Query, Request

from models.frames import VideoDecodeError, VideoInfo, probe_video, uniform_indices
from service import pipeline
from service import summarize as summary
from service.batcher import DeadlineExceededError, InferResult, QueueFullError, WorkerStoppedError
from service.errors import ApiError
from service.ops import StateDep
from service.schemas import ClassifyResponse, Problem, SummarizeResponse
from service.security import require_api_key
from service.state import ServiceState
from service.upload import check_request, receive_upload

log = logging.getLogger("service")
router = APIRouter(tags=["inference"], dependencies=[Depends(require_api_key)])
T = TypeVar("T")

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}}
    for code in (400, 401, 413, 415, 422, 429, 503, 504)
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


def _admit(state: ServiceState) -> None:
    """Refuse early, before reading the upload, when the answer would be a refusal anyway."""
    if not state.ready:
        why = "draining after SIGTERM" if state.draining else "the model is still warming up"
        raise ApiError(503, f"not ready ({why}); retry later", _retry(state))
    assert state.worker is not None
    if not state.worker.has_room():
        state.metrics.rejected.inc()
        raise ApiError(429, "the inference queue is full; retry after the Retry-After delay", _retry(state))


async def _blocking(state: ServiceState, deadline: float, fn: Callable[..., T], *args: Any) -> T:
    """Run decode work in the bounded pool; a bad video is the client's fault (400), never a 5xx."""
    loop = asyncio.get_running_loop()
    state.active_decodes += 1
    try:
        return await asyncio.wait_for(
            loop.run_in_executor(state.decode_pool, functools.partial(fn, *args)),
            timeout=max(0.0, deadline - time.perf_counter()),
        )
    except TimeoutError:
        raise ApiError(
            504, "decoding the video took longer than the request deadline; send a shorter video"
        ) from None
    except VideoDecodeError as exc:
        raise ApiError(400, f"{exc}; upload a video file such as MP4 (H.264) or WebM") from None
    except (av.error.FFmpegError, ValueError, IndexError, EOFError, OSError) as exc:
        log.warning("undecodable upload: %r", exc)
        raise ApiError(400, f"the video cannot be decoded ({exc}); upload an intact video file") from None
    finally:
        state.active_decodes -= 1
        if state.active_decodes == 0 and state.worker is not None:
            state.worker.notify()  # no clip is on its way: a waiting batch can go now


async def _infer(state: ServiceState, clips: np.ndarray, deadline: float) -> InferResult:
    assert state.worker is not None
    try:
        return await state.worker.infer(clips, deadline)
    except QueueFullError:
        raise ApiError(
            429, "the inference queue is full; retry after the Retry-After delay", _retry(state)
        ) from None
    except DeadlineExceededError:
        raise ApiError(
            504, f"the request did not finish within {state.settings.request_timeout_s} s; retry later"
        ) from None
    except WorkerStoppedError:
        raise ApiError(
            503, "the service is shutting down; retry on another instance", _retry(state)
        ) from None


def _check_limits(state: ServiceState, info: VideoInfo) -> None:
    s = state.settings
    pixels = info.width * info.height
    if pixels > s.max_pixels:
        raise ApiError(
            413,
            f"the video is {info.width}x{info.height} = {pixels} pixels, above the limit of {s.max_pixels}; "
            "downscale it",
        )
    if info.duration_s > s.max_duration_s:
        raise ApiError(
            413,
            f"the video lasts {info.duration_s:.1f} s, above the limit of {s.max_duration_s:g} s; "
            "cut it into shorter parts",
        )


def _video(info: VideoInfo) -> dict:
    return {
        "duration_s": pipeline.finite(info.duration_s), "fps": pipeline.finite(info.fps),
        "width": info.width, "height": info.height, "frame_count": info.frame_count, "codec": info.codec,
    }


def _model_ref(state: ServiceState) -> dict:
    assert state.model is not None
    return {"name": state.model.manifest.name, "version": state.model.manifest.version}


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
) -> dict:
    start = time.perf_counter()
    s = state.settings
    assert state.model is not None
    manifest = state.model.manifest
    if top_k > len(manifest.labels):
        raise ApiError(422, f"top_k must be between 1 and {len(manifest.labels)} (the number of labels)")
    check_request(request, s.max_upload_bytes)
    _admit(state)
    async with receive_upload(request, s.max_upload_bytes, s.tmp_dir) as path:
        deadline = time.perf_counter() + s.request_timeout_s
        t_decode = time.perf_counter()
        info = await _blocking(state, deadline, probe_video, path)
        _check_limits(state, info)
        clips = pipeline.plan_clips(info, manifest.num_frames, s.clip_window_s, s.max_clips)
        windows = []
        if segments:
            windows = pipeline.plan_windows(info.duration_s, s.timeline_window_s, s.timeline_max_windows)
        window_clips = [uniform_indices(info, manifest.num_frames, a, b) for a, b in windows]
        _, x = await _blocking(
            state, deadline, pipeline.decode_clips,
            path, info, clips + window_clips, manifest, state.decode_options(),
        )
        decode_s = time.perf_counter() - t_decode
        state.metrics.decode.labels(endpoint="/classify").observe(decode_s)
    result = await _infer(state, x, deadline)

    n = len(clips)
    probs = pipeline.softmax(result.outputs["logits"])
    frames = pipeline.frame_attention(info, clips, result.outputs["attention"][:n])
    body: dict[str, Any] = {
        "model": _model_ref(state),
        "video": _video(info),
        "labels": pipeline.top_labels(probs[:n].mean(axis=0), manifest.labels, top_k),
        "frames": [
            {"index": f.index, "timestamp_s": pipeline.finite(f.timestamp_s), "attention": f.attention}
            for f in frames
        ],
        "keyframes": pipeline.keyframes(frames, s.keyframes_max),
    }
    if segments:
        body["segments"] = pipeline.timeline(
            windows, probs[n:], info.duration_s, manifest.labels, s.timeline_labels
        )
    if state.model.domain is not None:
        body["domain"] = state.model.domain.answer(result.outputs["embeddings"][:n])
    body["timings_ms"] = {
        "decode": decode_s * 1000, "queue": result.queue_ms, "inference": result.inference_ms,
        "total": (time.perf_counter() - start) * 1000,
    }
    return body


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
) -> dict:
    start = time.perf_counter()
    s = state.settings
    assert state.model is not None
    manifest = state.model.manifest
    check_request(request, s.max_upload_bytes)
    _admit(state)
    async with receive_upload(request, s.max_upload_bytes, s.tmp_dir) as path:
        deadline = time.perf_counter() + s.request_timeout_s
        t_decode = time.perf_counter()
        info = await _blocking(state, deadline, probe_video, path)
        _check_limits(state, info)
        indices = list(summary.plan_summary_indices(info, s.summarize_fps, s.summarize_max_frames))
        chunks = pipeline.chunk_indices(indices, manifest.num_frames)
        frames_u8, x = await _blocking(
            # Exact frames: cut positions and keyframe indices are reported to the frame (and the
            # loop filter stays on: without it F1 fell from 0.980 to 0.974 in bench.scenes).
            state, deadline, pipeline.decode_clips, path, info, chunks, manifest,
            state.decode_options(exact=True),
        )
        decode_s = time.perf_counter() - t_decode
        result = await _infer(state, x, deadline)
        n = len(indices)
        embeddings = result.outputs["embeddings"].reshape(-1, result.outputs["embeddings"].shape[-1])[:n]
        attention = result.outputs["attention"].reshape(-1)[:n]
        frames = frames_u8.reshape(-1, *frames_u8.shape[2:])[:n]
        timestamps = [info.timestamp(i) for i in indices]
        segs, keys = await _blocking(
            state, deadline, summary.summarize, frames, indices, timestamps,
            np.ascontiguousarray(embeddings, np.float32), np.ascontiguousarray(attention, np.float32),
            info.duration_s, info.frame_count, max_keyframes,
        )
        thumbs: list[str | None] = [None] * len(keys)
        if thumbnails:
            t_thumbs = time.perf_counter()
            for i, k in enumerate(keys):
                thumbs[i] = await _blocking(state, deadline, summary.jpeg_data_uri, path, info, k.index,
                                            s.thumbnail_max_side)
            decode_s += time.perf_counter() - t_thumbs
        state.metrics.decode.labels(endpoint="/summarize").observe(decode_s)

    return {
        "model": _model_ref(state),
        "video": _video(info),
        "segments": [
            {"start_s": pipeline.finite(g.start_s), "end_s": pipeline.finite(g.end_s),
             "start_index": int(g.start_index), "end_index": int(g.end_index)}
            for g in segs
        ],
        "keyframes": [
            {"index": int(k.index), "timestamp_s": pipeline.finite(k.timestamp_s),
             "score": pipeline.finite(k.score), "segment": int(k.segment), "thumbnail": thumbs[i]}
            for i, k in enumerate(keys)
        ],
        "timings_ms": {
            "decode": decode_s * 1000, "queue": result.queue_ms, "inference": result.inference_ms,
            "total": (time.perf_counter() - start) * 1000,
        },
    }
