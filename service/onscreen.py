"""/summarize?text=true: the on-screen text of each keyframe, read from the keyframe and, when
OCR_SHOT_FRAMES > 0, a few more frames of its shot (text that is half-faded or hidden behind
something in the keyframe is often clear a moment later); repeats are merged."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from fastapi import Request

from models.frames import VideoInfo, probe_video, read_frames
from service.bounded import BusyError, DeadlineError, GoneError
from service.errors import ApiError
from service.ocr import OcrModel, TextBox, clip_box, merge_repeats
from service.schemas import OnScreenText, SummarizeResponse


def shot_frames(key_index: int, start_index: int, end_index: int, extra: int) -> list[int]:
    """The keyframe first, then `extra` frames spread evenly over the shot (not the keyframe)."""
    picks = [key_index]
    if extra > 0 and end_index > start_index:
        for x in np.linspace(start_index, end_index, extra + 2)[1:-1]:
            i = round(float(x))
            if i not in picks:
                picks.append(i)
    return picks


def keyframe_text(ocr: OcrModel, path: Path | str, info: VideoInfo,
                  keys: Sequence[tuple[int, int, int]], extra: int, max_side: int,
                  stop: threading.Event | None = None) -> list[list[dict]]:
    """keys: (keyframe index, shot start index, shot end index). One list of
    {"text", "score", "box"} per keyframe; boxes in displayed-frame pixels."""
    scale = min(1.0, max_side / max(info.width, info.height))
    w = max(2, round(info.width * scale))
    h = max(2, round(info.height * scale))
    plans = [shot_frames(k, a, b, extra) for k, a, b in keys]
    wanted = sorted({i for p in plans for i in p})
    frames = dict(zip(wanted, read_frames(path, info, wanted, size=(h, w)))) if wanted else {}
    back = (info.width / w + info.height / h) / 2  # OCR pixels -> displayed pixels
    answers: list[list[dict]] = []
    for plan in plans:
        per_frame: list[list[TextBox]] = []
        for i in plan:
            if stop is not None and stop.is_set():
                return answers
            per_frame.append(ocr.read(frames[i], scale=back))
        answers.append([
            {"text": t.text, "score": t.score, "box": clip_box(t.box, info.width, info.height)}
            for t in merge_repeats(per_frame)
        ])
    return answers


# ------------------------------------------------------------------------------ the request's side


def admit(request: Request) -> None:
    """text=true when OCR cannot serve: 503 with the reason, before the upload is read."""
    aux = request.app.state.aux
    why = aux.ocr.unavailable()
    if why is not None:
        retry = {"Retry-After": str(aux.settings.retry_after_s)} if aux.ocr.loading else None
        raise ApiError(503, f"{why} (text=true needs it; leave text out to summarize without it)", retry)
    if not aux.ocr.runner.has_room():
        raise ApiError(429, "the OCR queue is full; retry after the Retry-After delay",
                       {"Retry-After": str(aux.settings.retry_after_s)})


async def add_text(request: Request, path: Path | str, body: SummarizeResponse) -> None:
    """Fill `text` of every keyframe of a summary (on the OCR worker; the upload still exists)."""
    aux = request.app.state.aux
    s = aux.settings
    started = time.perf_counter()
    info = await asyncio.to_thread(probe_video, path)  # headers only; the summary already read them
    plan = [(k.index, body.segments[k.segment].start_index, body.segments[k.segment].end_index)
            for k in body.keyframes]

    def job(stop: threading.Event) -> list[list[dict]]:
        return keyframe_text(aux.ocr.model, path, info, plan, s.ocr_shot_frames, s.ocr_max_side, stop)

    try:
        texts, _ = await aux.ocr.runner.run(job, time.perf_counter() + s.ocr_timeout_s, request.is_disconnected)
    except BusyError:
        raise ApiError(429, "the OCR queue is full; retry after the Retry-After delay",
                       {"Retry-After": str(s.retry_after_s)}) from None
    except DeadlineError:
        raise ApiError(504, f"reading the keyframes' text took longer than {s.ocr_timeout_s:g} s "
                            "(OCR_TIMEOUT_S); ask for fewer keyframes") from None
    except GoneError:
        raise ApiError(400, "the client went away before the summary was ready") from None
    for key, found in zip(body.keyframes, texts):
        key.text = [OnScreenText(**t) for t in found]
    body.timings_ms.total += (time.perf_counter() - started) * 1000
