"""Real video files for tests, written with PyAV: each frame carries its own index.

Frame i shows i in binary as eight black/white bars across the top half, so a test can
read back which frame the sampler returned, after a codec and a resize.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

BITS = 8


def index_frame(i: int, width: int, height: int) -> np.ndarray:
    img = np.zeros((height, width, 3), np.uint8)
    img[height // 2 :] = 128
    bar = width // BITS
    for b in range(BITS):
        if (i >> b) & 1:
            img[: height // 2, b * bar : (b + 1) * bar] = 255
    return img


def read_index(rgb: np.ndarray) -> int:
    h, w = rgb.shape[:2]
    bar = w / BITS
    value = 0
    for b in range(BITS):
        cell = rgb[: h // 2, int(b * bar + bar / 4) : int((b + 1) * bar - bar / 4)]
        if cell.mean() > 128:
            value |= 1 << b
    return value


def write_indexed(path: Path, codec: str = "libx264", fmt: str | None = None, n: int = 60,
                  width: int = 160, height: int = 96, fps: int = 25, pix_fmt: str = "yuv420p",
                  pts_list: list[int] | None = None, time_base: Fraction | None = None,
                  rotation: int = 0, gop: int = 12, audio: bool = False) -> Path:
    """Write n index-coded frames; `pts_list` (in `time_base`) makes the timing variable."""
    out = av.open(str(path), mode="w", format=fmt)
    stream = out.add_stream(codec, rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
    stream.codec_context.gop_size = gop
    if codec in ("libx264", "libx265"):
        stream.options = {"crf": "12", **({"x265-params": "log-level=error"} if codec == "libx265" else {})}
    elif codec in ("mpeg4", "mjpeg"):
        stream.codec_context.flags |= av.codec.context.Flags.qscale
        stream.codec_context.global_quality = 2 * 118
    if time_base is not None:
        # Both the stream and the encoder must count in it, or the encoder drops frames
        # whose rescaled timestamps collide.
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
    if rotation:
        stream.set_display_rotation(rotation)
    astream = out.add_stream("aac", rate=44100) if audio else None
    for i in range(n):
        frame = av.VideoFrame.from_ndarray(index_frame(i, width, height), format="rgb24")
        frame = frame.reformat(format=pix_fmt, threads=1)
        if pts_list is not None:
            frame.pts = pts_list[i]
            frame.time_base = time_base or stream.time_base
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
    if astream is not None:
        samples = int(44100 * n / fps)
        wave = np.zeros((1, samples), np.float32)
        for start in range(0, samples, 1024):
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[:, start : start + 1024]),
                                               format="fltp", layout="mono")
            chunk.sample_rate = 44100
            chunk.pts = start
            for packet in astream.encode(chunk):
                out.mux(packet)
        for packet in astream.encode(None):
            out.mux(packet)
    out.close()
    return path
