"""Speech: audio from any container (PyAV, 16 kHz mono), voice activity (Silero VAD on ONNX
Runtime), then Whisper (faster-whisper on CTranslate2) on the speech spans only.

faster-whisper 1.2.1 is vendored unchanged but for relative imports (service/_vendor): its
wheel requires the `onnxruntime` distribution, which pip would install beside this project's
`onnxruntime-gpu` and which overwrites the GPU build's files (measured: CUDA EP gone). Its own
copy of Silero VAD v6 is the one VAD model used; the silero-vad wheel requires torch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from service import model_files

log = logging.getLogger("service")
SAMPLE_RATE = 16000
# Demuxers that read a single picture: an image has neither audio nor video for /transcribe.
_IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "gif", "bmp_pipe", "tiff_pipe")


def _reason(exc: Exception) -> str:
    """FFmpeg's words without the file name (the spooled upload's path means nothing to a client)."""
    return getattr(exc, "strerror", None) or type(exc).__name__


class MediaError(ValueError):
    """The upload is not audio or video that can be read (a client fault: 400)."""


@dataclass(frozen=True)
class MediaInfo:
    duration_s: float
    has_audio: bool
    audio_codec: str | None


def probe_media(path: str | Path) -> MediaInfo:
    """Container headers only: whether there is audio, its codec and the duration."""
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"the file is neither audio nor video that FFmpeg can read ({_reason(exc)})") from None
    with container:
        audio = container.streams.audio
        video = [s for s in container.streams.video if container.format.name not in _IMAGE_FORMATS]
        if not audio and not video:
            raise MediaError("the file has neither an audio nor a video stream")
        duration = 0.0
        if container.duration is not None:
            duration = container.duration / av.time_base
        elif audio and audio[0].duration is not None and audio[0].time_base is not None:
            duration = float(audio[0].duration * audio[0].time_base)
        # canonical: "mp3", not the decoder's name "mp3float"
        codec = audio[0].codec_context.codec.canonical_name if audio else None
        return MediaInfo(max(0.0, float(duration)), bool(audio), codec)


def decode_audio(path: str | Path, max_seconds: float, stop: threading.Event | None = None) -> tuple[np.ndarray, float]:
    """The first audio stream as float32 mono at 16 kHz, at most `max_seconds` of it, and the
    time (s) of its first sample on the media's clock, so transcript times line up with the video.

    A stream that breaks part way is kept up to the break (what a player would play).
    """
    limit = int(max_seconds * SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    total = 0
    offset = 0.0
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"the audio cannot be read ({_reason(exc)})") from None
    with container:
        if not container.streams.audio:
            return np.zeros(0, np.float32), 0.0
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        start = container.start_time / av.time_base if container.start_time is not None else 0.0
        first = True

        def take(frames: list[av.AudioFrame]) -> None:
            nonlocal total
            for f in frames:
                a = f.to_ndarray().reshape(-1)
                chunks.append(a)
                total += len(a)

        try:
            for frame in container.decode(stream):
                if first and frame.time is not None:
                    offset = max(0.0, float(frame.time) - start)
                first = False
                take(resampler.resample(frame))
                if total >= limit or (stop is not None and stop.is_set()):
                    break
            take(resampler.resample(None))
        except (av.error.FFmpegError, ValueError, EOFError) as exc:
            if total == 0:
                raise MediaError(f"the audio cannot be decoded ({_reason(exc)})") from None
            log.info("audio decode stopped early at %.1f s: %r", total / SAMPLE_RATE, exc)
    audio = np.concatenate(chunks)[:limit] if chunks else np.zeros(0, np.float32)
    return np.ascontiguousarray(audio, np.float32), offset


@dataclass
class SpeechOptions:
    language: str | None = None
    beam_size: int = 5
    vad_threshold: float = 0.5
    vad_min_silence_ms: int = 500
    vad_speech_pad_ms: int = 200
    vad_min_speech_ms: int = 250


@dataclass
class SpeechResult:
    speech: list[tuple[float, float]]
    segments: list[tuple[float, float, str]]
    language: str | None
    language_probability: float | None
    timings_ms: dict[str, float] = field(default_factory=dict)
    stopped: bool = False


class Cancelled(Exception):
    """The request was answered or its client left: the work stopped."""


class SpeechModel:
    """A loaded Whisper model and the VAD; `transcribe` is safe from several threads
    (CTranslate2 runs up to `num_workers` of them in parallel)."""

    def __init__(self, model_dir: Path | str, name: str, version: str, device: str = "auto",
                 compute_type: str = "auto", cpu_threads: int = 0, num_workers: int = 1) -> None:
        import ctranslate2

        from service._vendor.faster_whisper import WhisperModel
        from service._vendor.faster_whisper.vad import get_vad_model

        model_files.silero_vad_path()  # refuses a changed VAD file before anything loads it
        auto = device == "auto"
        if auto:
            device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
        t = time.perf_counter()

        def load(dev: str) -> WhisperModel:
            # int8 weights on the CPU, float16 on a GPU, unless WHISPER_COMPUTE_TYPE says otherwise.
            ct = compute_type if compute_type != "auto" else ("float16" if dev == "cuda" else "int8")
            self.compute_type = ct
            return WhisperModel(str(model_dir), device=dev, compute_type=ct, cpu_threads=cpu_threads,
                                num_workers=num_workers)

        try:
            self.model = load(device)
        except (RuntimeError, ValueError) as exc:
            if not (auto and device == "cuda"):
                raise
            # A GPU is visible but CTranslate2's CUDA libraries (cuBLAS/cuDNN of its build) are not.
            log.warning("Whisper on CUDA failed (%s); running it on the CPU", exc)
            device = "cpu"
            self.model = load(device)
        get_vad_model()
        self.load_s = time.perf_counter() - t
        self.name, self.version, self.device = name, version, device
        self.languages: list[str] = list(self.model.supported_languages)

    def transcribe(self, audio: np.ndarray, offset_s: float, opts: SpeechOptions,
                   stop: threading.Event | None = None,
                   on_segment: Callable[[], None] | None = None) -> SpeechResult:
        """VAD, then Whisper over the speech only; stops between segments once `stop` is set."""
        from service._vendor.faster_whisper.transcribe import restore_speech_timestamps
        from service._vendor.faster_whisper.vad import VadOptions, collect_chunks, get_speech_timestamps

        t0 = time.perf_counter()
        vad = VadOptions(threshold=opts.vad_threshold, min_silence_duration_ms=opts.vad_min_silence_ms,
                         speech_pad_ms=opts.vad_speech_pad_ms, min_speech_duration_ms=opts.vad_min_speech_ms)
        chunks = get_speech_timestamps(audio, vad) if len(audio) else []
        t1 = time.perf_counter()
        speech = [(c["start"] / SAMPLE_RATE + offset_s, c["end"] / SAMPLE_RATE + offset_s) for c in chunks]
        result = SpeechResult(speech, [], opts.language, 1.0 if opts.language else None,
                              {"vad": (t1 - t0) * 1000, "inference": 0.0})
        if not chunks:
            return result  # no voice: Whisper is not asked (it invents words on music and silence)
        if stop is not None and stop.is_set():
            raise Cancelled
        speech_audio = np.concatenate(collect_chunks(audio, chunks)[0])
        segments, info = self.model.transcribe(
            speech_audio, language=opts.language, beam_size=opts.beam_size, vad_filter=False,
            # Each span is decoded without the previous text as a prompt: one misheard span
            # does not drag the next into a loop of repeats (a known Whisper failure).
            condition_on_previous_text=False,
        )
        result.language = info.language
        result.language_probability = float(info.language_probability)
        for seg in restore_speech_timestamps(segments, chunks, SAMPLE_RATE):
            text = seg.text.strip()
            if text:
                result.segments.append((seg.start + offset_s, seg.end + offset_s, text))
            if on_segment is not None:
                on_segment()
            if stop is not None and stop.is_set():
                result.stopped = True
                break
        result.timings_ms["inference"] = (time.perf_counter() - t1) * 1000
        return result


def load_speech_model(whisper_model: str, cache_dir: Path | None, device: str, compute_type: str,
                      cpu_threads: int, num_workers: int) -> SpeechModel:
    """WHISPER_MODEL: empty = the bundled, sha256-pinned Whisper base; a directory = that
    faster-whisper model; anything else = a hub id (only where the hub can be reached)."""
    if not whisper_model:
        prepared = model_files.prepare_whisper_base(cache_dir)
        path, name, version = str(prepared.path), prepared.name, prepared.version
    elif Path(whisper_model).is_dir():
        path, name, version = whisper_model, Path(whisper_model).name, "local"
    else:
        path, name, version = whisper_model, whisper_model, "hub"
    return SpeechModel(path, name, version, device=device, compute_type=compute_type,
                       cpu_threads=cpu_threads, num_workers=num_workers)
