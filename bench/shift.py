"""Renderer shift: the shipped model on clips drawn by a second, independent renderer.

    python -m bench.shift [--clips 90] [--seed 900000] [--model models/motion]

The task says the default model is judged on clips "rendered by a different program".
models.evaluate uses this project's own renderer (models.synthetic), so it cannot show
what a different one costs. This module is that different program, written from
MOTION_CLASSES.md alone and sharing no drawing code with models.synthetic: OpenCV draws
the object (anti-aliased, sub-pixel, sometimes turned by a fixed angle), backgrounds are
blurred noise fields, two-color gradients or flat colors chosen in HSV, motion is linear,
blinks are square waves, fades are linear alpha blends, sizes are common video sizes
(96x96 to 1920x1080, portrait too) and frame rates include NTSC ones (23.976, 29.97,
59.94). Each clip is encoded in one of nine codec/container pairs (a third with audio)
and classified through the service's own pipeline (probe, plan, decode with the service's
default settings, ONNX Runtime), and with exact decoding for comparison. Needs OpenCV
(the [bench] extra).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

# SVT-AV1 prints a banner and its configuration per encoder it opens; 1 = errors only.
os.environ.setdefault("SVT_LOG", "1")

LABELS = ("move_left", "move_right", "move_up", "move_down", "grow", "shrink", "blink", "fade_in", "fade_out",
          "static")
PAIRS = (  # (codec, container format, extension, pixel format)
    ("libx264", "mp4", "mp4", "yuv420p"), ("libx265", "mp4", "mp4", "yuv420p"),
    ("libvpx", "webm", "webm", "yuv420p"), ("libvpx-vp9", "webm", "webm", "yuv420p"),
    ("libsvtav1", "matroska", "mkv", "yuv420p"), ("mpeg4", "avi", "avi", "yuv420p"),
    ("mjpeg", "avi", "avi", "yuvj420p"), ("libx264", "mov", "mov", "yuv420p"),
    ("libvpx-vp9", "matroska", "mkv", "yuv420p"),
)
SIZES = ((96, 96), (160, 120), (320, 240), (426, 240), (480, 480), (640, 360), (640, 480), (854, 480),
         (720, 1280), (1280, 720), (1080, 1080), (1920, 1080), (1080, 1920), (360, 640), (240, 320))
RATES = (8, 10, 12, 15, 24000 / 1001, 24, 25, 30000 / 1001, 30, 48, 50, 60000 / 1001, 60)


@dataclass
class Clip:
    label: str
    width: int
    height: int
    fps: float
    times: np.ndarray  # seconds of each frame
    background: np.ndarray  # uint8 [H, W, 3] RGB
    color: tuple[int, int, int]
    shape: str
    angle: float
    center: tuple[np.ndarray, np.ndarray]  # x(t), y(t) in pixels, per frame
    axes: tuple[np.ndarray, np.ndarray]  # half width, half height per frame
    alpha: np.ndarray  # per frame, 0..1
    noise: float


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    px = np.array([[[h * 179, s * 255, v * 255]]], np.uint8)
    return cv2.cvtColor(px, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _background(rng: np.random.Generator, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 RGB image, its colors as float [K, 3]) for contrast checks."""
    kind = rng.choice(["flat", "gradient", "noise"])
    a = _hsv(rng.random(), rng.uniform(0, 1), rng.uniform(0.1, 1))
    if kind == "flat":
        return np.broadcast_to(a, (h, w, 3)).astype(np.uint8).copy(), a[None]
    b = _hsv(rng.random(), rng.uniform(0, 1), rng.uniform(0.1, 1))
    if kind == "gradient":
        theta = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = xx * np.cos(theta) + yy * np.sin(theta)
        t = (t - t.min()) / max(1e-6, float(t.max() - t.min()))
        return (a + (b - a) * t[..., None]).astype(np.uint8), np.stack([a, b])
    field = rng.random((h, w)).astype(np.float32)
    sigma = float(rng.choice([0.0, 1.0, 3.0, 8.0]))
    if sigma:
        field = cv2.GaussianBlur(field, (0, 0), sigma)
        field = (field - field.min()) / max(1e-6, float(field.max() - field.min()))
    amp = rng.uniform(0.1, 0.6)
    mix = 0.5 + (field - 0.5) * amp
    return (a + (b - a) * mix[..., None]).clip(0, 255).astype(np.uint8), np.stack([a, b])


def _contrasting(rng: np.random.Generator, colors: np.ndarray) -> tuple[int, int, int]:
    for _ in range(200):
        c = _hsv(rng.random(), rng.uniform(0.3, 1), rng.uniform(0.2, 1))
        if np.abs(colors - c).max(axis=1).min() > 0.35 * 255:
            return tuple(int(v) for v in c)
    return (255, 255, 255) if colors.mean() < 128 else (0, 0, 0)


def make_clip(seed: int, label: str) -> Clip:
    rng = np.random.default_rng(seed)
    w, h = SIZES[rng.integers(len(SIZES))]
    fps = float(RATES[rng.integers(len(RATES))])
    duration = rng.uniform(1, 10)
    n = max(2, int(round(duration * fps)))
    times = np.arange(n) / fps
    if rng.random() < 0.2:  # variable frame rate: jittered frame times
        times = np.cumsum(np.concatenate([[0], rng.uniform(0.4, 1.6, n - 1) / fps]))
    u = times / (times[-1] + 1 / fps)  # 0..1 over the clip
    background, bg_colors = _background(rng, w, h)
    short = min(w, h)
    shape = str(rng.choice(["rect", "ellipse"]))
    angle = float(rng.choice([0.0, 0.0, rng.uniform(-30, 30)]))
    aspect = rng.uniform(0.6, 1.6)
    frac = rng.uniform(0.08, 0.35)
    half = np.full(n, frac * short / 2)
    ax, ay = half * aspect ** 0.5, half / aspect ** 0.5
    cos, sin = abs(np.cos(np.radians(angle))), abs(np.sin(np.radians(angle)))

    def bounds(ax: np.ndarray, ay: np.ndarray) -> tuple[float, float]:
        """Half width and half height of the (possibly turned) object's bounding box."""
        return float((ax * cos + ay * sin).max()), float((ax * sin + ay * cos).max())

    def place(bx: float, by: float) -> tuple[np.ndarray, np.ndarray]:
        """A fixed center keeping a bx x by half-size box inside the frame where it fits."""
        cx = rng.uniform(min(bx, w / 2), max(min(bx, w / 2), w - bx))
        cy = rng.uniform(min(by, h / 2), max(min(by, h / 2), h - by))
        return np.full(n, cx), np.full(n, cy)

    alpha = np.ones(n)
    x, y = place(*bounds(ax, ay))
    if label.startswith("move_"):
        horizontal = label in ("move_left", "move_right")
        extent, r = (w, bounds(ax, ay)[0]) if horizontal else (h, bounds(ax, ay)[1])
        # The object stays inside the frame when the frame has room for the travel.
        dist = max(0.3 * extent, rng.uniform(0.3, 0.9) * min(extent, extent - 2 * r))
        lo = rng.uniform(min(r, extent - dist), max(min(r, extent - dist), extent - r - dist))
        path = lo + dist * u if label in ("move_right", "move_down") else lo + dist * (1 - u)
        if horizontal:
            x = path
        else:
            y = path
    elif label in ("grow", "shrink"):
        small = rng.uniform(0.05, 0.6 / 1.8) * short / 2
        factor = rng.uniform(1.8, min(5.0, 0.3 * short / small))
        s = small * factor ** (u if label == "grow" else 1 - u)
        ax, ay = s * aspect ** 0.5, s / aspect ** 0.5
        x, y = place(*bounds(ax, ay))
    elif label == "blink":
        cycles = rng.uniform(2, max(2.01, min(6.0, duration * 2)))
        alpha = (np.floor(u * cycles * 2) % 2 == 0).astype(float)
        if rng.random() < 0.5:
            alpha = 1 - alpha
    elif label == "fade_in":
        alpha = u
    elif label == "fade_out":
        alpha = 1 - u
    return Clip(label, w, h, fps, times, background, _contrasting(rng, bg_colors), shape, angle, (x, y), (ax, ay),
                alpha, float(rng.choice([0.0, 0.0, rng.uniform(1, 6)])))


def render(clip: Clip, i: int, rng: np.random.Generator) -> np.ndarray:
    frame = clip.background.copy()
    if clip.alpha[i] > 0:
        layer = frame.copy()
        shift = 4  # sub-pixel coordinates: 1/16 pixel
        c = (int(round(clip.center[0][i] * 16)), int(round(clip.center[1][i] * 16)))
        a = (max(16, int(round(clip.axes[0][i] * 16))), max(16, int(round(clip.axes[1][i] * 16))))
        if clip.shape == "ellipse":
            cv2.ellipse(layer, c, a, clip.angle, 0, 360, clip.color, -1, cv2.LINE_AA, shift)
        else:
            box = cv2.boxPoints(((c[0] / 16, c[1] / 16), (2 * a[0] / 16, 2 * a[1] / 16), clip.angle))
            cv2.fillPoly(layer, [np.round(box * 16).astype(np.int32)], clip.color, cv2.LINE_AA, shift)
        frame = cv2.addWeighted(layer, float(clip.alpha[i]), frame, 1 - float(clip.alpha[i]), 0)
    if clip.noise:
        frame = np.clip(frame + rng.normal(0, clip.noise, frame.shape), 0, 255).astype(np.uint8)
    return frame


def encode(clip: Clip, path: Path, codec: str, fmt: str, pix_fmt: str, audio: bool, rng: np.random.Generator) -> None:
    out = av.open(str(path), mode="w", format=fmt)
    stream = out.add_stream(codec, rate=Fraction(clip.fps).limit_denominator(1001))
    stream.width, stream.height, stream.pix_fmt = clip.width, clip.height, pix_fmt
    options = {
        "libx264": {"crf": "23", "preset": "veryfast"},
        "libx265": {"crf": "28", "preset": "ultrafast", "x265-params": "log-level=error"},
        "libvpx": {"b:v": "1M", "deadline": "realtime", "cpu-used": "8"},
        "libvpx-vp9": {"crf": "34", "b:v": "0", "deadline": "realtime", "cpu-used": "8"},
        "libsvtav1": {"crf": "38", "preset": "12", "svtav1-params": "log-level=0"},
    }.get(codec)
    if options is None:  # mpeg4, mjpeg: a fixed quantizer
        stream.codec_context.flags |= av.codec.context.Flags.qscale
        stream.codec_context.global_quality = 5 * 118
    else:
        stream.options = options
    # Every stream must exist before the first packet is written.
    astream = out.add_stream("libopus" if fmt == "webm" else "aac", rate=48000) if audio else None
    vfr = fmt != "avi" and not np.allclose(np.diff(clip.times), 1 / clip.fps)
    if vfr:
        stream.time_base = stream.codec_context.time_base = Fraction(1, 90000)
    for i, t in enumerate(clip.times):
        frame = av.VideoFrame.from_ndarray(render(clip, i, rng), format="rgb24").reformat(format=pix_fmt, threads=1)
        if vfr:
            frame.pts, frame.time_base = int(round(t * 90000)), Fraction(1, 90000)
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
    if astream is not None:
        _tone(out, astream, float(clip.times[-1] + 1 / clip.fps))
    out.close()


def _tone(out: av.container.OutputContainer, stream: av.audio.stream.AudioStream, seconds: float) -> None:
    rate = 48000
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.1 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)[None]
    for i in range(0, wave.shape[1], 960):
        chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[:, i : i + 960]), format="fltp", layout="mono")
        chunk.sample_rate, chunk.pts = rate, i
        for packet in stream.encode(chunk):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)


def main(argv: list[str] | None = None) -> None:
    from service.pipelines import Pipelines
    from service.settings import Settings

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, nargs="+", default=[Path(__file__).resolve().parents[1] / "models" / "motion"],
                   help="model directories; several are scored on the same clips (service defaults only)")
    p.add_argument("--clips", type=int, default=90)
    p.add_argument("--seed", type=int, default=900_000)
    args = p.parse_args(argv)
    av.logging.set_level(av.logging.ERROR)
    # The service's /classify pipeline in-process, with its default decode and with exact decoding.
    if len(args.model) == 1:
        model = args.model[0]
        variants = {
            "service defaults": Pipelines.local(model, Settings(model_dir=model)),
            "exact": Pipelines.local(model, Settings(model_dir=model, decode_mode="exact", decode_loop_filter=True)),
        }
    else:  # each clip is drawn and encoded once, and every model classifies the same file
        variants = {m.name: Pipelines.local(m, Settings(model_dir=m)) for m in args.model}
    right = Counter()
    per_label: dict[str, Counter] = {v: Counter() for v in variants}
    per_pair: dict[str, Counter] = {v: Counter() for v in variants}
    confusions: dict[str, Counter] = {v: Counter() for v in variants}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.clips):
            label = LABELS[i % len(LABELS)]
            codec, fmt, ext, pix_fmt = PAIRS[(i // len(LABELS)) % len(PAIRS)]
            rng = np.random.default_rng(args.seed + i)
            clip = make_clip(args.seed + i, label)
            path = Path(tmp) / f"{i}.{ext}"
            encode(clip, path, codec, fmt, pix_fmt, audio=i % 3 == 0 and fmt != "avi", rng=rng)
            guesses = []
            for name, pipelines in variants.items():
                guess = asyncio.run(pipelines.classify(path, top_k=1)).labels[0].label
                ok = guess == label
                right[name] += ok
                per_label[name][label] += ok
                per_pair[name][f"{codec}/{fmt}"] += ok
                if not ok:
                    confusions[name][f"{label}->{guess}"] += 1
                guesses.append(guess)
            print(f"{i + 1}/{args.clips} {codec}/{fmt} {clip.width}x{clip.height} {clip.fps:.3f}fps "
                  f"{clip.times[-1]:.1f}s {clip.shape} {label} -> {','.join(guesses)}  running top-1 "
                  + " ".join(f"{right[v] / (i + 1):.3f}" for v in variants), file=sys.stderr, flush=True)
            path.unlink()
    n_label = args.clips / len(LABELS)
    print(json.dumps({
        "clips": args.clips, "seed": args.seed, "seconds": round(time.perf_counter() - started, 1),
        "variants": {v: {"top1": right[v] / args.clips,
                         "per_label": {k: round(c / n_label, 3) for k, c in sorted(per_label[v].items())},
                         "per_pair_right": dict(per_pair[v]), "confusions": dict(confusions[v].most_common())}
                     for v in variants},
    }, indent=2))


if __name__ == "__main__":
    main()
