"""Every limit and knob of the service, read from environment variables (no prefix)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

import models
from service import summarize as summary_defaults


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask, not the host's count), at most 8:
    a container on a large host must not start a decoder per host core."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    return max(1, min(8, n))


def default_model_repository() -> Path:
    # The installed `models` package is the shipped repository: its subfolders holding a
    # model.json (motion, ...) are the models. Resolved through the package, so
    # `python -m service` works from any directory.
    return Path(models.__file__).resolve().parent


def default_model_dir() -> Path:
    return default_model_repository() / "motion"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", protected_namespaces=())

    model_repository: Path = Field(
        default_factory=default_model_repository,
        description="folder with one model directory (model.json + ONNX) per subfolder; every one is served "
        "(default: the installed models package, which holds motion)",
    )
    default_model: str | None = Field(
        None, description="the model answering requests that name none (unset: motion, else the first by name)"
    )
    model_dir: Path | None = Field(
        None, description="serve only this one model directory (instead of MODEL_REPOSITORY)"
    )
    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8000, ge=0, le=65535, description="port to listen on")
    log_level: str = Field("info", description="log level of the service and uvicorn")

    # Limits: client input beyond these is refused with 413 before any frame is decoded.
    max_upload_bytes: int = Field(256 * 1024 * 1024, gt=0, description="largest upload in bytes")
    max_pixels: int = Field(3840 * 2160, gt=0, description="largest width x height of a video")
    # Duration is not what a request costs (sampling takes T frames and at most SUMMARIZE_MAX_FRAMES,
    # whatever the length), so there is no duration limit unless one is asked for.
    max_duration_s: float = Field(0.0, ge=0, description="longest video in seconds (0: no limit)")
    max_tensor_bytes: int = Field(
        256 * 1024 * 1024, gt=0, description="largest POST /v2/models/{name}/infer body in bytes (JSON or binary)"
    )
    tmp_dir: Path | None = Field(None, description="where uploads are spooled (system temp dir if unset)")
    max_streams: int = Field(
        16, ge=1, description="most streams in an upload (any kind); beyond that 413, from the headers"
    )
    decode_budget_mpx: float = Field(
        40000.0, gt=0,
        description="most megapixels of frames one request may decode (planned from the keyframe index "
        "before decoding, and counted while decoding); beyond that 413",
    )
    max_metadata_entries: int = Field(
        1000, ge=0, description="most metadata tags in an upload (container and streams); beyond that 413"
    )
    probe_workers: int = Field(
        2, ge=0, description="processes that open and index uploads (killed when their request ends); "
        "0: in the decode threads, where a container's headers cannot be interrupted",
    )
    probe_timeout_s: float = Field(
        10.0, gt=0, description="longest time to open and index an upload; beyond it 413"
    )
    body_timeout_s: float = Field(
        15.0, gt=0, description="longest pause while an upload arrives; beyond it 408 and the temp file is deleted"
    )
    header_timeout_s: float = Field(
        10.0, gt=0, description="longest time to receive a request's headers; beyond it 408"
    )
    max_header_bytes: int = Field(
        65536, ge=1024, description="largest request line plus headers in bytes; beyond that 431"
    )
    max_header_count: int = Field(100, ge=8, description="most request headers; beyond that 431")

    # Batching worker.
    max_batch_size: int = Field(16, ge=1, description="most clips in one inference batch")
    max_queue_delay_ms: float = Field(5.0, ge=0, description="longest wait to fill a batch")
    max_queue_size: int = Field(256, ge=1, description="most clips waiting; beyond that 429")
    request_timeout_s: float = Field(30.0, gt=0, description="deadline of one request; beyond it 504")
    retry_after_s: int = Field(1, ge=0, description="Retry-After sent with 429 and 503")

    # Decoding and runtime.
    decode_workers: int = Field(
        default_factory=usable_cores,
        ge=1,
        description="threads decoding videos (bounded pool)",
    )
    decode_threads: int = Field(
        -1,
        ge=-1,
        description="FFmpeg threads per decode: 0 auto; -1 automatic: when no other decode runs, "
        "GOPs split over one decoder per core (or frame threads), else 1 thread",
    )
    # fast and no loop filter by default: 0.58x instead of 0.84x of FFmpeg's full decode of a
    # 60 s 1080p clip, and the same top-1 on 360 real encoded clips (BENCHMARKS.md).
    decode_mode: Literal["exact", "fast"] = Field(
        "fast",
        description="/classify: exact frames, or fast (a nearby frame when it is cheaper to reach)",
    )
    decode_loop_filter: bool = Field(
        False, description="/classify: false skips H.264/HEVC deblocking (faster, pictures drift slightly)"
    )
    hwaccel: Literal["none", "cuda"] = Field(
        "none", description="hardware video decoder (cuda = NVDEC); software when it is not there"
    )
    intra_op_threads: int = Field(0, ge=0, description="ONNX Runtime intra-op threads (0 = all cores)")
    execution_provider: Literal["auto", "cuda", "cpu"] = Field(
        "auto", description="auto: CUDA when it works, else CPU"
    )
    cudnn_conv_algo_search: Literal["EXHAUSTIVE", "HEURISTIC", "DEFAULT"] = Field(
        "HEURISTIC", description="CUDA EP convolution algorithm search"
    )
    io_binding: Literal["auto", "on", "off"] = Field(
        "auto", description="ONNX Runtime IO binding (auto: on with CUDA, off on the CPU)"
    )

    # Answers.
    clip_window_s: float = Field(
        10.0, gt=0, description="a video longer than this is classified as several clips, averaged"
    )
    max_clips: int = Field(4, ge=1, description="most clips for one long video")
    keyframes_max: int = Field(3, ge=1, description="most keyframes in a /classify answer")
    timeline_window_s: float = Field(2.0, gt=0, description="shortest timeline segment or window (segments=true)")
    timeline_method: Literal["auto", "search", "windows"] = Field(
        "auto", description="timeline: search (the model decides the boundaries, service/timeline.py), windows "
        "(fixed half-overlapping windows), or auto: search for a model whose answer depends on frame order, "
        "windows for one that pools its frames (an image classifier)",
    )
    timeline_cell_s: float = Field(0.5, gt=0, description="search: finest step between candidate boundaries")
    timeline_max_clips: int = Field(64, ge=1, description="search: most candidate segments classified per video")
    timeline_max_mpx: float = Field(
        6.5, gt=0, description="search: most model-input megapixels (clips x T x H x W) classified per video",
    )
    timeline_penalty: float = Field(0.2, ge=0.0, description="search: score cost of each extra segment")
    timeline_max_windows: int = Field(16, ge=1, description="windows: most timeline windows per video")
    timeline_labels: int = Field(3, ge=1, description="labels per timeline segment")
    summarize_fps: float = Field(
        summary_defaults.DEFAULT_SUMMARY_FPS, gt=0, description="frames per second looked at by /summarize"
    )
    summarize_max_frames: int = Field(
        summary_defaults.DEFAULT_SUMMARY_MAX_FRAMES, ge=1, description="most frames looked at by /summarize"
    )
    summarize_dense_max_frames: int = Field(
        summary_defaults.DEFAULT_SUMMARY_DENSE_MAX_FRAMES, ge=0,
        description="/summarize: videos of at most this many frames get every frame looked at (cuts to the "
        "frame, short shots); longer ones only the sampled frames (0: never)",
    )
    thumbnail_max_side: int = Field(320, ge=16, description="longest side of a summary thumbnail")

    # Speech (/transcribe) and on-screen text (/summarize?text=true). A missing or changed model
    # file turns only that endpoint off (503); the rest of the service is unaffected.
    whisper_model: str = Field(
        "", description="faster-whisper model: empty = the bundled Whisper base (sha256-pinned); a model "
        "directory; a hub id (where the hub is reachable); `none` turns /transcribe off",
    )
    whisper_device: Literal["auto", "cpu", "cuda"] = Field("auto", description="CTranslate2 device for Whisper")
    whisper_compute_type: str = Field(
        "auto", description="CTranslate2 compute type (auto: int8 on the CPU, float16 on CUDA)"
    )
    whisper_beam_size: int = Field(5, ge=1, le=10, description="Whisper beam width (1 = greedy, faster)")
    speech_threads: int = Field(0, ge=0, description="CPU threads per transcription (0 = usable cores)")
    speech_concurrency: int = Field(1, ge=1, description="transcriptions running at once")
    speech_max_queue: int = Field(4, ge=0, description="transcriptions waiting; beyond that 429")
    transcribe_max_duration_s: float = Field(
        600.0, gt=0, description="longest media /transcribe accepts (413 beyond, from the headers)"
    )
    transcribe_timeout_s: float = Field(
        300.0, gt=0, description="deadline of one /transcribe request (504 beyond; the work stops)"
    )
    vad_threshold: float = Field(0.5, gt=0, lt=1, description="Silero VAD speech probability threshold")
    vad_min_silence_ms: int = Field(500, ge=0, description="a pause this long ends a speech span")
    vad_speech_pad_ms: int = Field(200, ge=0, description="padding added to each side of a speech span")
    model_cache_dir: Path | None = Field(
        None, description="where the joined Whisper base file is kept (default ~/.cache/motion-serve)"
    )
    ocr_enabled: bool = Field(True, description="load the OCR model (false: text=true answers 503)")
    ocr_shot_frames: int = Field(0, ge=0, le=8, description="extra frames of each keyframe's shot read by OCR")
    ocr_max_side: int = Field(1280, ge=64, description="longest side of a frame given to OCR (boxes are "
                              "scaled back to the displayed frame)")
    ocr_min_score: float = Field(0.5, ge=0, le=1, description="lowest OCR confidence reported")
    ocr_concurrency: int = Field(1, ge=1, description="OCR jobs running at once")
    ocr_max_queue: int = Field(4, ge=0, description="OCR jobs waiting; beyond that 429")
    ocr_timeout_s: float = Field(60.0, gt=0, description="extra time a text=true summary may take for OCR")

    # Security and operations.
    api_key: SecretStr | None = Field(None, description="when set, `Authorization: Bearer <key>` is required")
    drain_grace_s: float = Field(20.0, ge=0, description="in-flight requests get this long after SIGTERM")
    drain_delay_s: float = Field(
        0.0, ge=0, description="after SIGTERM, keep serving with /readyz 503 this long before closing"
    )

    # Test hooks: make slow paths reachable in tests without mocks.
    warmup_delay_s: float = Field(0.0, ge=0, description="test hook: extra wait before ready")
    inference_delay_ms: float = Field(0.0, ge=0, description="test hook: extra time per batch")
    speech_delay_ms: float = Field(
        0.0, ge=0, description="test hook: extra time after each transcribed segment (ends early when stopped)"
    )
