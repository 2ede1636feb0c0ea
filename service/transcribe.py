"""POST /transcribe: upload -> probe (413/400 from the headers) -> bounded speech worker
(decode + VAD + Whisper, stopping when the request is answered) -> JSON, WebVTT or SubRip."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from prometheus_client import Counter
from pydantic import BaseModel, Field

from service import subtitles
from service.aux_models import AuxModels
from service.bounded import BusyError, DeadlineError, GoneError
from service.errors import ApiError
from service.schemas import Problem
from service.security import require_api_key
from service.speech import Cancelled, MediaError, SpeechModel, SpeechOptions, decode_audio, probe_media
from service.upload import check_request, receive_upload

router = APIRouter(tags=["speech"], dependencies=[Depends(require_api_key)])

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}}
    for code in (400, 401, 413, 415, 422, 429, 503, 504)
}
_ERRORS[200] = {"content": {subtitles.VTT_MEDIA_TYPE: {}, subtitles.SRT_MEDIA_TYPE: {}},
                "description": "JSON, or subtitles with format=vtt|srt"}
_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary"}},
        }}},
    }
}


class MediaMeta(BaseModel):
    duration_s: float
    has_audio: bool
    audio_codec: str | None


class Span(BaseModel):
    start_s: float
    end_s: float


class TranscriptSegment(BaseModel):
    start_s: float
    end_s: float
    text: str


class TranscribeResponse(BaseModel):
    model: dict[str, str]
    media: MediaMeta
    language: str | None = Field(description="ISO 639-1 code; null when there is no speech to detect it from")
    language_probability: float | None
    speech: list[Span]
    segments: list[TranscriptSegment]
    text: str
    timings_ms: dict[str, float]


def aux_models(request: Request) -> AuxModels:
    return request.app.state.aux


def _retry(aux: AuxModels) -> dict[str, str]:
    return {"Retry-After": str(aux.settings.retry_after_s)}


def _counter(request: Request) -> Counter:
    """Seconds of audio transcribed, one counter per app registry."""
    app = request.app
    if not hasattr(app.state, "transcribed_audio"):
        app.state.transcribed_audio = Counter(
            "transcribed_audio_seconds", "seconds of audio given to /transcribe",
            registry=app.state.service.metrics.registry,
        )
    return app.state.transcribed_audio


def _admit(request: Request, aux: AuxModels) -> SpeechModel:
    """Refuse before reading the upload when the answer would be a refusal anyway."""
    service = getattr(request.app.state, "service", None)
    if service is not None and getattr(service, "draining", False):
        raise ApiError(503, "not ready (draining after SIGTERM); retry on another instance", _retry(aux))
    why = aux.speech.unavailable()
    if why is not None:
        raise ApiError(503, why, _retry(aux) if aux.speech.loading else None)
    assert aux.speech.runner is not None
    if not aux.speech.runner.has_room():
        raise ApiError(429, "the transcription queue is full; retry after the Retry-After delay", _retry(aux))
    return aux.speech.model  # type: ignore[return-value]


def _clamp(t: float, duration: float) -> float:
    return round(min(max(0.0, t), duration), 3) if duration > 0 else round(max(0.0, t), 3)


@router.post("/transcribe", response_model=TranscribeResponse, responses=_ERRORS, openapi_extra=_UPLOAD_BODY)
async def transcribe(
    request: Request,
    aux: Annotated[AuxModels, Depends(aux_models)],
    language: Annotated[str | None, Query(
        pattern=r"^[a-z]{2,3}$", description="ISO 639-1 code (e.g. en); detected when left out")] = None,
    format: Annotated[Literal["json", "vtt", "srt"], Query(
        description="json, or subtitles: vtt (text/vtt) or srt (application/x-subrip)")] = "json",
) -> Any:
    start = time.perf_counter()
    s = aux.settings
    check_request(request, s.max_upload_bytes)
    model = _admit(request, aux)
    if language is not None and language not in model.languages:
        raise ApiError(422, f"language {language!r} is not one the speech model knows; leave it out to detect "
                            f"it, or use one of: {', '.join(model.languages[:20])}...")
    opts = SpeechOptions(language=language, beam_size=s.whisper_beam_size, vad_threshold=s.vad_threshold,
                         vad_min_silence_ms=s.vad_min_silence_ms, vad_speech_pad_ms=s.vad_speech_pad_ms)
    async with receive_upload(request, s.max_upload_bytes, s.tmp_dir) as path:
        deadline = time.perf_counter() + s.transcribe_timeout_s
        t_probe = time.perf_counter()
        try:
            info = await asyncio.wait_for(asyncio.to_thread(probe_media, path), timeout=s.transcribe_timeout_s)
        except MediaError as exc:
            raise ApiError(400, f"{exc}; upload an audio or video file (e.g. MP4, WebM, WAV, MP3)") from None
        except TimeoutError:
            raise ApiError(504, "reading the file's headers took longer than the deadline") from None
        probe_ms = (time.perf_counter() - t_probe) * 1000
        if info.duration_s > s.transcribe_max_duration_s:
            raise ApiError(413, f"the media lasts {info.duration_s:.1f} s, above the /transcribe limit of "
                                f"{s.transcribe_max_duration_s:g} s; cut it into shorter parts")
        result = None
        timings: dict[str, float] = {"decode": probe_ms, "queue": 0.0, "vad": 0.0, "inference": 0.0}
        duration = info.duration_s
        if info.has_audio:
            def job(stop: threading.Event) -> tuple[Any, float, float]:
                t = time.perf_counter()
                audio, offset = decode_audio(path, s.transcribe_max_duration_s, stop)
                decoded = (time.perf_counter() - t) * 1000
                if stop.is_set():
                    raise Cancelled
                return model.transcribe(audio, offset, opts, stop), decoded, offset + len(audio) / 16000

            runner = aux.speech.runner
            assert runner is not None
            try:
                (result, decode_ms, audio_end), waited = await runner.run(job, deadline, request.is_disconnected)
            except BusyError:
                raise ApiError(429, "the transcription queue is full; retry after the Retry-After delay",
                               _retry(aux)) from None
            except DeadlineError:
                raise ApiError(504, f"the transcription did not finish within {s.transcribe_timeout_s:g} s "
                                    "(TRANSCRIBE_TIMEOUT_S); send a shorter file") from None
            except (GoneError, Cancelled):
                raise ApiError(400, "the client went away before the transcript was ready") from None
            except MediaError as exc:
                raise ApiError(400, f"{exc}; upload an intact audio or video file") from None
            except RuntimeError:
                raise ApiError(503, "the service is shutting down; retry on another instance", _retry(aux)) from None
            if duration <= 0:
                duration = audio_end
            _counter(request).inc(max(0.0, audio_end))
            timings.update(decode=probe_ms + decode_ms, queue=waited, vad=result.timings_ms["vad"],
                           inference=result.timings_ms["inference"])

    segments = [(_clamp(a, duration), _clamp(b, duration), t) for a, b, t in (result.segments if result else [])]
    if format == "vtt":
        return Response(subtitles.to_vtt(segments), media_type=subtitles.VTT_MEDIA_TYPE)
    if format == "srt":
        return Response(subtitles.to_srt(segments), media_type=subtitles.SRT_MEDIA_TYPE)
    timings["total"] = (time.perf_counter() - start) * 1000
    return {
        "model": {"name": model.name, "version": model.version},
        "media": {"duration_s": round(duration, 3), "has_audio": info.has_audio, "audio_codec": info.audio_codec},
        "language": result.language if result else None,
        "language_probability": (round(result.language_probability, 4)
                                 if result and result.language_probability is not None else None),
        "speech": [{"start_s": _clamp(a, duration), "end_s": _clamp(b, duration)}
                   for a, b in (result.speech if result else [])],
        "segments": [{"start_s": a, "end_s": b, "text": t} for a, b, t in segments],
        "text": " ".join(t for _, _, t in segments),
        "timings_ms": timings,
    }
