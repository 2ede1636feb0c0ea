"""Fixtures for the service tests: real uvicorn servers on loopback and real encoded videos."""

from __future__ import annotations

import dataclasses
import io
import os
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
import uvicorn

from models import synthetic

# Servers started as subprocesses (`python -m service`) inherit this environment: without these
# each would load Whisper and the OCR model in the background after it is ready, seconds of
# CPU on every start that the drain and hostile-input tests' timings do not budget for. The
# speech and OCR tests ask for their models explicitly.
os.environ.setdefault("WHISPER_MODEL", "none")
os.environ.setdefault("OCR_ENABLED", "false")

REPO = Path(__file__).resolve().parent.parent
REAL_MODEL = REPO / "models" / "motion"


def model_dir() -> Path:
    """The shipped default model (package data; built by `make model`)."""
    return REAL_MODEL


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThreadServer:
    """A real uvicorn server on 127.0.0.1 in a thread, serving `create_app(Settings(**env))`."""

    def __init__(self, tmp_dir: Path, wait_ready: bool = True, **settings: object) -> None:
        from service.app import create_app
        from service.settings import Settings

        self.port = free_port()
        # Speech and OCR load (seconds of CPU, ~0.5 GB) only in the servers of the tests about them.
        settings.setdefault("whisper_model", "none")
        settings.setdefault("ocr_enabled", False)
        self.settings = Settings(
            model_dir=settings.pop("model_dir", model_dir()), tmp_dir=tmp_dir, port=self.port, **settings
        )
        self.app = create_app(self.settings)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.port}"
        wait_for(self.url + "/healthz", timeout=60)
        if wait_ready:
            wait_for(self.url + "/readyz", timeout=60)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def wait_for(url: str, timeout: float, status: int = 200, headers: dict | None = None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if httpx.get(url, timeout=2, headers=headers).status_code == status:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer {status} within {timeout} s")


@pytest.fixture(scope="session")
def upload_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TMP_DIR of every server in the session: it must be empty whenever no request runs."""
    return tmp_path_factory.mktemp("uploads")


@pytest.fixture(autouse=True)
def _no_leftover_uploads(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "upload_dir" not in request.fixturenames:
        return
    directory: Path = request.getfixturevalue("upload_dir")
    end = time.monotonic() + 5
    while list(directory.iterdir()) and time.monotonic() < end:
        time.sleep(0.05)
    assert list(directory.iterdir()) == [], "uploads were left in TMP_DIR"


# Limits of the main server, small enough for tests to cross them cheaply.
MAX_UPLOAD_BYTES = 2_000_000
MAX_PIXELS = 1280 * 720
MAX_DURATION_S = 60.0


@pytest.fixture(scope="session")
def server(upload_dir: Path) -> Iterator[ThreadServer]:
    srv = ThreadServer(
        upload_dir,
        max_upload_bytes=MAX_UPLOAD_BYTES,
        max_pixels=MAX_PIXELS,
        max_duration_s=MAX_DURATION_S,
        max_queue_delay_ms=30,
        decode_workers=4,
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def aux_server(upload_dir: Path) -> Iterator[ThreadServer]:
    """Like `server`, with the speech and OCR models loaded (/transcribe, /summarize?text=true)."""
    srv = ThreadServer(upload_dir, whisper_model="", ocr_enabled=True, max_upload_bytes=MAX_UPLOAD_BYTES,
                       max_pixels=MAX_PIXELS, max_duration_s=MAX_DURATION_S, decode_workers=4)
    yield srv
    srv.stop()


@pytest.fixture
def speech_server(aux_server: ThreadServer) -> ThreadServer:
    """aux_server once its speech model is ready; skips where espeak-ng (the tests' voice) or the
    speech model is missing."""
    from bench import speechgen

    if not speechgen.have_espeak():
        pytest.skip("espeak-ng is not installed (make test installs it)")
    body = speechgen.wait_aux(aux_server.url)
    if not next(a for a in body["auxiliary"] if a["kind"] == "speech")["ready"]:
        pytest.skip("the speech model did not load on this machine")
    return aux_server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=120) as c:
        yield c


# ------------------------------------------------------------------ media


def write_clip(path: Path, label: str, seed: int, duration_s: float = 3.0, fps: float = 15.0,
               max_side: int = 128, codec: str = "libx264", container: str = "mp4") -> Path:
    """A synthetic motion clip of `label`, encoded for real."""
    spec = synthetic.draw_spec(seed, label)
    n = max(2, round(duration_s * fps))
    spec = dataclasses.replace(spec, duration_s=duration_s, fps=fps, vfr=False,
                               blink_cycles=max(2.0, min(spec.blink_cycles, n / 4.0)))
    synthetic.write_video(str(path), spec, codec=codec, container=container, max_side=max_side)
    return path


def write_plain(path: Path, width: int, height: int, frames: int, fps: int = 25, fmt: str = "mp4") -> Path:
    """A flat-colour H.264 video of any size or length, cheap to encode."""
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for i in range(frames):
            img = np.full((height, width, 3), (i * 7) % 255, np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p", threads=1)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def write_audio_only(path: Path, seconds: float = 1.0) -> Path:
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=44100)
        samples = int(seconds * 44100)
        wave = (0.2 * np.sin(np.arange(samples) * 2 * np.pi * 440 / 44100)).astype(np.float32)[None]
        for i in range(0, samples, 1024):
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[:, i : i + 1024]), format="fltp",
                                               layout="mono")
            chunk.sample_rate = 44100
            chunk.pts = i
            chunk.time_base = Fraction(1, 44100)
            for packet in stream.encode(chunk):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def png_bytes(width: int = 32, height: int = 24) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + bytes([(x * 8) % 256 for x in range(width)] * 3) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def jpeg_bytes(width: int = 32, height: int = 24) -> bytes:
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuvj420p"
    codec.time_base = Fraction(1, 25)
    img = np.full((height, width, 3), 90, np.uint8)
    frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuvj420p", threads=1)
    data = io.BytesIO()
    for packet in [*codec.encode(frame), *codec.encode(None)]:
        data.write(bytes(packet))
    return data.getvalue()


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every test video, written once per session."""
    d = tmp_path_factory.mktemp("media")
    files = {
        "short": write_clip(d / "short.mp4", "move_right", seed=11),
        "long": write_clip(d / "long.mp4", "move_left", seed=12, duration_s=25.0, fps=8.0, max_side=96),
        "webm": write_clip(d / "clip.webm", "grow", seed=13, codec="libvpx-vp9", container="webm"),
        "too_wide": write_plain(d / "wide.mp4", 1920, 1088, frames=3),
        "too_long": write_plain(d / "long_plain.mp4", 64, 64, frames=2 * 70, fps=2),
        "audio": write_audio_only(d / "audio.m4a"),
    }
    truncated = d / "truncated.mp4"
    data = files["short"].read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    files["truncated"] = truncated
    (d / "image.png").write_bytes(png_bytes())
    (d / "image.jpg").write_bytes(jpeg_bytes())
    (d / "garbage.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, np.uint8).tobytes())
    files.update(png=d / "image.png", jpeg=d / "image.jpg", garbage=d / "garbage.mp4")
    return files


def post_video(client: httpx.Client, url: str, path: Path, **params: object) -> httpx.Response:
    with open(path, "rb") as f:
        return client.post(url, params=params, files={"file": (path.name, f, "application/octet-stream")})
