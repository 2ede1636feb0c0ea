"""Hostile video files, written for real with PyAV at any scale (tests use small ones,
bench.probe the full-size ones from issue 13).

- solid_bomb: a long, high-rate, large solid-colour H.264 video with far-apart keyframes:
  tiny on disk, costly to decode (one GOP is encoded once and muxed again and again).
- header_bomb: one blank frame whose coded size is huge (a few KB of HEVC or H.264).
- stream_bomb: one tiny frame copied into hundreds of video streams.
- tag_bomb: a Matroska file whose Tags element holds a huge number of distinct tags
  (FFmpeg's dictionary makes each insertion linear, so reading them is quadratic).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def _blank(width: int, height: int, value: int = 96) -> av.VideoFrame:
    frame = av.VideoFrame(width, height, "yuv420p")
    for plane in frame.planes:
        plane.update(bytes([value]) * plane.buffer_size)
    return frame


def solid_bomb(path: Path, width: int, height: int, fps: int, seconds: float, gop: int) -> Path:
    """Solid colour, `fps` frames/s for `seconds`, a keyframe every `gop` frames."""
    total = round(fps * seconds)
    gop = min(gop, total)
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.time_base = Fraction(1, fps)
    codec.framerate = Fraction(fps, 1)
    codec.gop_size = gop
    codec.options = {"preset": "ultrafast", "tune": "zerolatency",
                     "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0"}
    frame = _blank(width, height)
    packets = []
    for i in range(gop):
        frame.pts = i
        packets += [(bytes(p), p.pts, p.dts, p.is_keyframe) for p in codec.encode(frame)]
    packets += [(bytes(p), p.pts, p.dts, p.is_keyframe) for p in codec.encode(None)]
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, fps)
        stream.codec_context.extradata = codec.extradata
        for start in range(0, total, gop):
            for data, pts, dts, key in packets:
                if start + pts >= total:
                    continue
                p = av.Packet(data)
                p.pts, p.dts, p.time_base, p.stream = start + pts, start + dts, Fraction(1, fps), stream
                p.is_keyframe = key
                out.mux(p)
    return path


def header_bomb(path: Path, width: int, height: int, codec: str = "libx265") -> Path:
    """One blank frame of width x height: a few KB whose decoded frame is huge."""
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream(codec, rate=1)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx265":
            stream.options = {"preset": "ultrafast", "x265-params": "log-level=error:frame-threads=1:pools=1"}
        else:
            stream.options = {"preset": "ultrafast", "threads": "1"}
        frame = _blank(width, height)
        frame.pts = 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return path


def stream_bomb(path: Path, streams: int, fmt: str = "matroska") -> Path:
    """`streams` video streams, each a copy of the same one-frame 16x16 H.264 stream."""
    one = path.with_name(path.name + ".one.mkv")
    small_mkv(one, frames=1, size=16)
    try:
        with av.open(str(one)) as src, av.open(str(path), "w", format=fmt) as out:
            template = src.streams.video[0]
            targets = [out.add_stream_from_template(template) for _ in range(streams)]
            packet = next(p for p in src.demux(template) if p.size)
            data, pts, dts, tb = bytes(packet), packet.pts, packet.dts, packet.time_base
            for s in targets:
                p = av.Packet(data)
                p.pts, p.dts, p.time_base, p.stream, p.is_keyframe = pts, dts, tb, s, True
                out.mux(p)
    finally:
        one.unlink(missing_ok=True)
    return path


# ---------------------------------------------------------------- Matroska tags

def _vint(n: int) -> bytes:
    """EBML size: 8 bytes, always (0x01 marker + 56-bit value)."""
    return bytes([0x01]) + n.to_bytes(7, "big")


def _element(ident: int, payload: bytes) -> bytes:
    raw = ident.to_bytes((ident.bit_length() + 7) // 8, "big")
    return raw + _vint(len(payload)) + payload


def _simple_tag(i: int) -> bytes:
    return _element(0x67C8, _element(0x45A3, b"K%07d" % i) + _element(0x4487, b"v"))


def tag_bomb(path: Path, tags: int, base: Path) -> Path:
    """`base` (a small Matroska file) with a Tags element of `tags` distinct tags put before
    its first Cluster, where the demuxer reads it while opening the file.

    The SeekHead and Cues would point to shifted offsets, so they become Void elements.
    """
    data = base.read_bytes()
    seg_id = bytes.fromhex("18538067")
    at = data.index(seg_id)
    size_len = 8
    assert data[at + 4] == 0x01, "expected an 8-byte Segment size"
    body_start = at + 4 + size_len
    # Walk the Segment's top-level elements.
    out = bytearray(data[:body_start])
    pos = body_start
    tags_blob = _element(0x1254C367, _element(0x7373, _element(0x63C0, b"") + b"".join(
        _simple_tag(i) for i in range(tags))))
    inserted = False
    while pos < len(data):
        ident_len = 1 + (8 - data[pos].bit_length()) if data[pos] else 1
        ident = int.from_bytes(data[pos : pos + ident_len], "big")
        first = data[pos + ident_len]
        n = 9 - first.bit_length()
        size = int.from_bytes(data[pos + ident_len : pos + ident_len + n], "big") & ((1 << (7 * n)) - 1)
        end = pos + ident_len + n + size
        chunk = bytearray(data[pos:end])
        if ident in (0x114D9B74, 0x1C53BB6B):  # SeekHead, Cues -> Void of the same length
            chunk = bytearray(_void(len(chunk)))
        if ident == 0x1F43B675 and not inserted:  # first Cluster
            out += tags_blob
            inserted = True
        out += chunk
        pos = end
    out[at + 4 : body_start] = _vint(len(out) - body_start)
    path.write_bytes(bytes(out))
    return path


def _void(length: int) -> bytes:
    payload = length - 1 - 8
    assert payload >= 0
    return b"\xec" + _vint(payload) + b"\x00" * payload


def small_mkv(path: Path, frames: int = 10, size: int = 32) -> Path:
    with av.open(str(path), "w", format="matroska") as out:
        s = out.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = size, size, "yuv420p"
        s.options = {"preset": "ultrafast"}
        for i in range(frames):
            img = np.full((size, size, 3), (i * 20) % 255, np.uint8)
            f = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
            f.pts = i
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    return path

