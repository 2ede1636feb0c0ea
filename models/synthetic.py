"""The synthetic motion dataset of MOTION_CLASSES.md, deterministic from a seed.

A clip is a function of time: a static background and one object whose position, size
or opacity follows its class. Every property that the class does not pin down is drawn
at random over a range wider than the task's (backgrounds, colors, shapes, sizes,
speeds, easing, blink rates and duty cycles, frame rates, variable frame timing, aspect
ratios, sensor noise), so the model learns the motion and not this renderer.

Every clip reaches the model through `models.frames`, the code that serves it: most are
rendered only at the frames that the sampler picks and scaled by FFmpeg's scaler after a
round trip through 4:2:0 chroma; a share is rendered whole, encoded with a real codec at
a random quality and decoded and sampled from the encoded bytes, so training also sees
compression artifacts.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction

import av
import numpy as np

from models import frames as F

# SVT-AV1 prints a banner, its configuration and warnings on stderr for every encoder it
# opens (its `log-level` option comes too late for the banner); the library reads SVT_LOG
# when an encoder starts: 1 = errors only. Training and benchmarks open thousands.
os.environ.setdefault("SVT_LOG", "1")

LABELS: tuple[str, ...] = (
    "move_left",
    "move_right",
    "move_up",
    "move_down",
    "grow",
    "shrink",
    "blink",
    "fade_in",
    "fade_out",
    "static",
)

# (codec, container format, pixel format) for the encoded share. libvpx (VP8/VP9) is left
# out: its encoders stalled indefinitely in worker processes here, and its artifacts are of
# the same block-transform kind as these.
CODECS: tuple[tuple[str, str, str], ...] = (
    ("libx264", "mp4", "yuv420p"),
    ("libx264", "matroska", "yuv420p"),
    ("libx265", "mp4", "yuv420p"),
    ("libsvtav1", "mp4", "yuv420p"),
    ("mpeg4", "avi", "yuv420p"),
    ("mjpeg", "avi", "yuvj420p"),
)


@dataclass(frozen=True)
class ClipSpec:
    """Everything random about one clip, drawn from a seed; rendering is deterministic."""

    label: str
    width: int
    height: int
    fps: float
    duration_s: float
    vfr: bool
    background: dict
    shape: str
    color: tuple[float, float, float]
    # The object's state at clip start and end, plus the time profile between them.
    center0: tuple[float, float]  # fractions of width, height
    center1: tuple[float, float]
    size0: tuple[float, float]  # object width, height in pixels
    size1: tuple[float, float]
    alpha0: float
    alpha1: float
    ease: str
    blink_cycles: float
    blink_duty: float
    blink_phase: float
    noise_sigma: float
    seed: int


def _color(rng: np.random.Generator) -> np.ndarray:
    return rng.random(3).astype(np.float32)


def _draw_size(rng: np.random.Generator, short: float, frac: float) -> tuple[float, float]:
    aspect = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0)))) if rng.random() < 0.7 else 1.0
    r = np.sqrt(aspect)
    return frac * short * r, frac * short / r


def _frame_size(rng: np.random.Generator) -> tuple[int, int]:
    kind = rng.choice(["landscape", "square", "portrait"], p=[0.55, 0.2, 0.25])
    short = int(rng.uniform(96, 1080))
    ratio = {"landscape": rng.uniform(1.2, 2.4), "square": rng.uniform(1.0, 1.15)}.get(
        str(kind), rng.uniform(1.2, 2.2)
    )
    long = min(1920, int(short * ratio))
    w, h = (long, short) if kind != "portrait" else (short, long)
    return max(96, w - w % 2), max(96, h - h % 2)


def draw_spec(seed: int, label: str | None = None) -> ClipSpec:
    """Draw a clip of `label` (random when None) from `seed`."""
    rng = np.random.default_rng(seed)
    label = label or str(rng.choice(LABELS))
    width, height = _frame_size(rng)
    short = min(width, height)
    fps = float(rng.choice([8, 10, 12, 15, 24, 25, 30, 30, 50, 60]) if rng.random() < 0.6 else rng.uniform(8, 60))
    duration = float(rng.uniform(1.0, 10.0))

    kind = str(rng.choice(["uniform", "gradient", "noise"], p=[0.3, 0.3, 0.4]))
    background = {
        "kind": kind,
        "c0": _color(rng).tolist(),
        "c1": _color(rng).tolist(),
        "angle": float(rng.uniform(0, 2 * np.pi)),
        "cells": int(rng.choice([2, 4, 8, 16, 32, 64, 128])),
        "amp": float(rng.uniform(0.05, 0.5)),
        "gray": bool(rng.random() < 0.4),
        "seed": int(rng.integers(2**31)),
    }
    bg_mean = np.asarray(background["c0"]) if kind == "uniform" else (
        (np.asarray(background["c0"]) + np.asarray(background["c1"])) / 2
    )
    # An object that contrasts clearly with the background (and, for a gradient or a
    # texture, with both its ends), as the task promises.
    for _ in range(100):
        color = _color(rng)
        far = np.abs(color - bg_mean).max()
        if kind == "gradient":
            far = min(np.abs(color - np.asarray(background["c0"])).max(),
                      np.abs(color - np.asarray(background["c1"])).max())
        if far > 0.35:
            break

    shape = "ellipse" if rng.random() < 0.5 else "rect"
    frac = rng.uniform(0.08, 0.35)
    size0 = size1 = _draw_size(rng, short, frac)
    alpha0 = alpha1 = 1.0
    cx = cy = 0.5
    c0 = c1 = (cx, cy)
    ease = str(rng.choice(["linear", "linear", "smooth", "in", "out"]))

    def fixed_center(size: tuple[float, float]) -> tuple[float, float]:
        mx, my = min(0.5, size[0] / 2 / width), min(0.5, size[1] / 2 / height)
        return float(rng.uniform(mx, 1 - mx)), float(rng.uniform(my, 1 - my))

    if label.startswith("move_"):
        horizontal = label in ("move_left", "move_right")
        extent = width if horizontal else height
        obj = size0[0] if horizontal else size0[1]
        room = max(0.3 * extent, extent - obj * rng.uniform(0.6, 1.0))
        dist = rng.uniform(0.3 * extent, max(0.3 * extent + 1, min(room, 0.95 * extent)))
        lo = (extent - dist) / 2 - rng.uniform(-1, 1) * max(0.0, (room - dist) / 2)
        start, end = lo, lo + dist
        if label in ("move_left", "move_up"):
            start, end = end, start
        other = fixed_center(size0)
        if horizontal:
            c0, c1 = (start / width, other[1]), (end / width, other[1])
        else:
            c0, c1 = (other[0], start / height), (other[0], end / height)
    elif label in ("grow", "shrink"):
        f0 = rng.uniform(0.05, 0.6 / 1.8)
        factor = rng.uniform(1.8, max(1.81, min(6.0, 0.6 / f0)))
        small, big = _draw_size(rng, short, f0), None
        big = (small[0] * factor, small[1] * factor)
        size0, size1 = (small, big) if label == "grow" else (big, small)
        c0 = c1 = fixed_center(big)
    else:
        c0 = c1 = fixed_center(size0)
        if label == "fade_in":
            alpha0, alpha1 = rng.uniform(0, 0.08), rng.uniform(0.92, 1.0)
        elif label == "fade_out":
            alpha0, alpha1 = rng.uniform(0.92, 1.0), rng.uniform(0, 0.08)

    n_frames = max(2, round(duration * fps))
    # Blinks: at least two whole cycles, at most one on/off change per frame.
    max_cycles = max(2.0, min(n_frames / 4.0, 3.0 * duration))
    cycles = float(np.exp(rng.uniform(np.log(2.0), np.log(max_cycles)))) if max_cycles > 2 else 2.0
    noise = float(rng.choice([0.0, rng.uniform(0, 0.02), rng.uniform(0.01, 0.06)]))
    return ClipSpec(
        label=label, width=width, height=height, fps=fps, duration_s=duration,
        vfr=bool(rng.random() < 0.2), background=background, shape=shape,
        color=tuple(float(v) for v in color), center0=c0, center1=c1,
        size0=size0, size1=size1, alpha0=float(alpha0), alpha1=float(alpha1), ease=ease,
        blink_cycles=cycles, blink_duty=float(rng.uniform(0.35, 0.65)),
        blink_phase=float(rng.uniform(0, 1)), noise_sigma=noise, seed=int(rng.integers(2**31)),
    )


def _ease(u: float, kind: str) -> float:
    if kind == "smooth":
        return u * u * (3 - 2 * u)
    if kind == "in":
        return u**1.6
    if kind == "out":
        return 1 - (1 - u) ** 1.6
    return u


def _upsample(grid: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear upsampling of a [gh, gw, C] grid to [h, w, C]."""
    gh, gw = grid.shape[:2]
    ys = np.clip((np.arange(h) + 0.5) * gh / h - 0.5, 0, gh - 1)
    xs = np.clip((np.arange(w) + 0.5) * gw / w - 0.5, 0, gw - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, gh - 1), np.minimum(x0 + 1, gw - 1)
    wy, wx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    top = grid[y0][:, x0] * (1 - wx) + grid[y0][:, x1] * wx
    bot = grid[y1][:, x0] * (1 - wx) + grid[y1][:, x1] * wx
    return (top * (1 - wy) + bot * wy).astype(np.float32)


class Renderer:
    """Renders a ClipSpec's frames at a working resolution no larger than `max_side`.

    Rendering a 1920x1080 clip at full size only to scale it to 64x64 wastes time: the
    working resolution keeps the aspect ratio and is still several times the model's.
    """

    def __init__(self, spec: ClipSpec, max_side: int = 256) -> None:
        self.spec = spec
        scale = min(1.0, max_side / max(spec.width, spec.height))
        self.scale = scale
        self.w = max(16, int(round(spec.width * scale)) // 2 * 2)
        self.h = max(16, int(round(spec.height * scale)) // 2 * 2)
        self.rng = np.random.default_rng(spec.seed)
        self.background = self._background()
        yy, xx = np.mgrid[0 : self.h, 0 : self.w].astype(np.float32)
        self.yy, self.xx = yy + 0.5, xx + 0.5

    def _background(self) -> np.ndarray:
        b = self.spec.background
        h, w = self.h, self.w
        c0, c1 = np.asarray(b["c0"], np.float32), np.asarray(b["c1"], np.float32)
        if b["kind"] == "uniform":
            return np.broadcast_to(c0, (h, w, 3)).copy()
        if b["kind"] == "gradient":
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            proj = xx / w * np.cos(b["angle"]) + yy / h * np.sin(b["angle"])
            proj = (proj - proj.min()) / max(1e-6, float(proj.max() - proj.min()))
            return c0 + (c1 - c0) * proj[..., None]
        rng = np.random.default_rng(b["seed"])
        cells = b["cells"]
        gh = max(2, int(cells * h / max(h, w)))
        gw = max(2, int(cells * w / max(h, w)))
        grid = rng.random((gh, gw, 1 if b["gray"] else 3)).astype(np.float32)
        tex = _upsample(grid, h, w)
        tex = np.broadcast_to(tex, (h, w, 3))
        if rng.random() < 0.5:  # fine grain on top of the coarse pattern
            tex = 0.7 * tex + 0.3 * rng.random((h, w, 1)).astype(np.float32)
        base = (c0 + c1) / 2
        return np.clip(base + b["amp"] * 2 * (tex - 0.5), 0, 1)

    def state(self, u: float) -> tuple[float, float, float, float, float]:
        """(cx, cy, w, h, alpha) in working pixels at clip time fraction u in [0, 1]."""
        s = self.spec
        e = _ease(u, s.ease)
        cx = (s.center0[0] + (s.center1[0] - s.center0[0]) * e) * self.w
        cy = (s.center0[1] + (s.center1[1] - s.center0[1]) * e) * self.h
        ow = (s.size0[0] + (s.size1[0] - s.size0[0]) * e) * self.scale
        oh = (s.size0[1] + (s.size1[1] - s.size0[1]) * e) * self.scale
        alpha = s.alpha0 + (s.alpha1 - s.alpha0) * e
        if s.label == "blink":
            phase = (u * s.blink_cycles + s.blink_phase) % 1.0
            alpha = 1.0 if phase < s.blink_duty else 0.0
        return cx, cy, ow, oh, alpha

    def frame(self, u: float) -> np.ndarray:
        """The uint8 RGB frame at time fraction u."""
        cx, cy, ow, oh, alpha = self.state(u)
        img = self.background.copy()
        if alpha > 0:
            x0, x1 = max(0, int(cx - ow / 2) - 1), min(self.w, int(cx + ow / 2) + 2)
            y0, y1 = max(0, int(cy - oh / 2) - 1), min(self.h, int(cy + oh / 2) + 2)
            if x1 > x0 and y1 > y0:
                xx, yy = self.xx[y0:y1, x0:x1], self.yy[y0:y1, x0:x1]
                a, b = max(ow / 2, 0.5), max(oh / 2, 0.5)
                if self.spec.shape == "rect":
                    cov = np.clip(a - np.abs(xx - cx) + 0.5, 0, 1) * np.clip(b - np.abs(yy - cy) + 0.5, 0, 1)
                else:
                    d = np.sqrt(((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2)
                    cov = np.clip((1 - d) * min(a, b) + 0.5, 0, 1)
                cov = (cov * alpha)[..., None]
                color = np.asarray(self.spec.color, np.float32)
                img[y0:y1, x0:x1] = img[y0:y1, x0:x1] * (1 - cov) + color * cov
        if self.spec.noise_sigma > 0:
            img += self.rng.standard_normal(img.shape, dtype=np.float32) * self.spec.noise_sigma
        return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def frame_times(spec: ClipSpec) -> list[float]:
    """Presentation times of every frame; jittered (variable frame rate) for some clips."""
    n = max(2, round(spec.duration_s * spec.fps))
    times = np.arange(n) / spec.fps
    if spec.vfr:
        rng = np.random.default_rng(spec.seed + 1)
        steps = rng.uniform(0.5, 1.5, n) / spec.fps
        times = np.concatenate([[0.0], np.cumsum(steps[:-1])])
    return times.tolist()


def _info_for(spec: ClipSpec, times: list[float]) -> F.VideoInfo:
    tb = Fraction(1, 90000)
    pts = tuple(int(round(t * 90000)) for t in times)
    return F.VideoInfo(
        duration_s=times[-1] + 1 / spec.fps, fps=spec.fps, width=spec.width, height=spec.height,
        frame_count=len(times), codec="rawvideo", container="synthetic", rotation=0,
        time_base=tb, pts=pts, keyframes=tuple(range(len(times))),
    )


def render_sampled(spec: ClipSpec, num_frames: int, size: tuple[int, int],
                   renderer: Renderer | Sequence | None = None) -> np.ndarray:
    """The clip as the model sees it, rendered only at the frames the sampler picks (`spec` gives
    the frame timing; `renderer` the pictures, by default spec's own)."""
    times = frame_times(spec)
    info = _info_for(spec, times)
    renderer = renderer or Renderer(spec)
    out = np.empty((num_frames, size[0], size[1], 3), np.uint8)
    end = info.duration_s
    for i, index in enumerate(F.uniform_indices(info, num_frames)):
        rgb = renderer.frame(times[index] / end)
        # Through 4:2:0 as a decoded video would be, then FFmpeg's scaler.
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p", threads=1)
        out[i] = F.to_rgb(frame, size)
    return out


def make_clip(seed: int, num_frames: int, size: tuple[int, int], encoded_share: float = 0.15,
              label: str | None = None) -> tuple[np.ndarray, int]:
    """One training example: uint8 [T, H, W, 3] frames and the label's index."""
    rng = np.random.default_rng(seed ^ 0x5EED)
    if label is None:
        label = LABELS[seed % len(LABELS)]
    spec = draw_spec(seed, label)
    if rng.random() < encoded_share:
        # Keep the whole-clip render affordable: fewer, smaller frames.
        spec = _affordable(spec, rng)
        codec, container, pix_fmt = CODECS[int(rng.integers(len(CODECS)))]
        data = io.BytesIO()
        write_video(data, spec, codec, container, pix_fmt, quality=float(rng.uniform(0, 1)),
                    max_side=320)
        clip = F.sample_frames(data, num_frames, size).frames
    else:
        clip = render_sampled(spec, num_frames, size)
    return clip, LABELS.index(label)


class Sequence:
    """Behaviours one after the other in one clip: `renderers[k]` plays its behaviour over its
    share `fractions[k]` of the clip's time, from `spans[k][0]` to `spans[k][1]` of the behaviour's
    own time (default: all of it). A Renderer's interface: w, h, frame(u)."""

    def __init__(self, renderers: list[Renderer], fractions: list[float],
                 spans: list[tuple[float, float]] | None = None) -> None:
        self.renderers = renderers
        self.ends = np.cumsum(fractions) / float(np.sum(fractions))
        self.spans = spans or [(0.0, 1.0)] * len(renderers)
        self.w, self.h = renderers[0].w, renderers[0].h

    def frame(self, u: float) -> np.ndarray:
        k = min(int(np.searchsorted(self.ends, u, side="right")), len(self.renderers) - 1)
        start = float(self.ends[k - 1]) if k else 0.0
        local = min(1.0, (u - start) / max(1e-9, float(self.ends[k]) - start))
        u0, u1 = self.spans[k]
        # A Python float: a NumPy scalar would render the float32 frame in float64 arithmetic.
        return self.renderers[k].frame(float(u0 + (u1 - u0) * local))


def _crop(rng: np.random.Generator, shortest: float = 0.5) -> tuple[float, float]:
    """A part of a behaviour's time, at least `shortest` of it, anywhere in it."""
    length = float(rng.uniform(shortest, 1.0))
    start = float(rng.uniform(0.0, 1.0 - length))
    return start, start + length


def make_cropped_clip(seed: int, num_frames: int, size: tuple[int, int], encoded_share: float = 0.15,
                      ) -> tuple[np.ndarray, int]:
    """make_clip's clip, showing only a part (50-100%) of its behaviour's time: a timeline's
    candidate segments see behaviours that started before them or go on after them."""
    rng = np.random.default_rng(seed ^ 0xC809)
    label = LABELS[seed % len(LABELS)]
    spec = draw_spec(seed, label)
    encoded = rng.random() < encoded_share
    if encoded:
        spec = _affordable(spec, rng)
    span = _crop(rng)
    sequence = Sequence([Renderer(spec, max_side=320 if encoded else 256)], [1.0], [span])
    return _render(spec, sequence, num_frames, size, encoded, rng), LABELS.index(label)


def _render(spec: ClipSpec, sequence: Sequence, num_frames: int, size: tuple[int, int], encoded: bool,
            rng: np.random.Generator) -> np.ndarray:
    if not encoded:
        return render_sampled(spec, num_frames, size, sequence)
    codec, container, pix_fmt = CODECS[int(rng.integers(len(CODECS)))]
    data = io.BytesIO()
    write_video(data, spec, codec, container, pix_fmt, quality=float(rng.uniform(0, 1)), renderer=sequence)
    return F.sample_frames(data, num_frames, size).frames


def second_spec(first: ClipSpec, seed: int, label: str) -> ClipSpec:
    """A spec of `label` that continues `first`'s clip: its frame size, background, object shape,
    colour and noise; its object sizes rescaled from its own frame to the shared one (the object
    takes up the new behaviour where that behaviour starts it)."""
    b = draw_spec(seed, label)
    k = min(first.width, first.height) / min(b.width, b.height)
    return replace(b, width=first.width, height=first.height, background=first.background,
                   shape=first.shape, color=first.color, noise_sigma=first.noise_sigma,
                   size0=(b.size0[0] * k, b.size0[1] * k), size1=(b.size1[0] * k, b.size1[1] * k))


def make_change_clip(seed: int, num_frames: int, size: tuple[int, int], encoded_share: float = 0.15,
                     crop_share: float = 0.0) -> tuple[np.ndarray, int, int, float]:
    """A clip whose behaviour changes part-way: uint8 [T, H, W, 3] frames, the first and second
    labels' indices, and the first behaviour's share of the clip's time (0.1-0.9).

    Trained on with that share as the first label's weight, a model learns to hedge on a clip
    that straddles two behaviours instead of naming one of them confidently, which is what a
    timeline's search for the boundary (service.timeline) needs from its answers."""
    rng = np.random.default_rng(seed ^ 0xC4A6E)
    first, second = (str(x) for x in rng.choice(LABELS, 2, replace=False))
    share = float(rng.uniform(0.1, 0.9))
    a = draw_spec(seed, first)
    encoded = rng.random() < encoded_share
    if encoded:
        a = _affordable(a, rng)
    b = second_spec(a, seed + 1, second)
    n = max(2, round(a.duration_s * a.fps))
    parts = []
    for spec, frac in ((a, share), (b, 1 - share)):
        # At most one blink change per frame of the part, as for a whole clip.
        parts.append(replace(spec, blink_cycles=max(2.0, min(spec.blink_cycles, n * frac / 4.0))))
    max_side = 320 if encoded else 256
    # Half the parts show only some of their behaviour (it began before the clip or goes on after it).
    spans = [_crop(rng) if rng.random() < crop_share else (0.0, 1.0) for _ in parts]
    sequence = Sequence([Renderer(p, max_side=max_side) for p in parts], [share, 1 - share], spans)
    clip = _render(a, sequence, num_frames, size, encoded, rng)
    return clip, LABELS.index(first), LABELS.index(second), share


def clip_kind(seed: int, change_share: float, crop_share: float) -> str:
    """"change", "crop" or "whole" for clip `seed` of a set (decided by the seed alone): a share
    `change_share` of the clips changes behaviour; a share `crop_share` of the others, and of
    the parts of a change clip, shows only part of its behaviour's time."""
    draw = np.random.default_rng(seed ^ 0xC4A6F).random()
    if draw < change_share:
        return "change"
    return "crop" if draw < change_share + crop_share * (1 - change_share) else "whole"


def _affordable(spec: ClipSpec, rng: np.random.Generator) -> ClipSpec:
    duration = min(spec.duration_s, float(rng.uniform(1.0, 4.0)))
    fps = min(spec.fps, 30.0)
    cycles = spec.blink_cycles
    n = max(2, round(duration * fps))
    cycles = max(2.0, min(cycles, n / 4.0))
    return replace(spec, duration_s=duration, fps=fps, blink_cycles=cycles)


def iter_dataset(seed: int, count: int, num_frames: int, size: tuple[int, int],
                 encoded_share: float = 0.15) -> Iterator[tuple[np.ndarray, int]]:
    for i in range(count):
        yield make_clip(seed * 1_000_003 + i, num_frames, size, encoded_share)


def _codec_options(stream: av.video.stream.VideoStream, codec: str, quality: float) -> None:
    """Set `stream` to encode at `quality` in [0, 1] (1 = best) with fast settings."""
    if codec in ("libx264", "libx265"):
        options = {"crf": str(int(18 + (1 - quality) * 24)), "preset": "veryfast"}
        if codec == "libx265":
            options["x265-params"] = "log-level=error"
    elif codec == "libvpx-vp9":
        options = {"crf": str(int(10 + (1 - quality) * 40)), "b:v": "0", "deadline": "realtime",
                   "cpu-used": "8"}
    elif codec == "libvpx":
        # VP8 has no constant-quality mode without a bitrate cap (crf with b:v 0 stalled
        # the encoder here): aim at a bitrate instead.
        options = {"b:v": f"{int(100 + quality * 1900)}k", "deadline": "realtime", "cpu-used": "8"}
    elif codec == "libsvtav1":
        options = {"crf": str(int(20 + (1 - quality) * 35)), "preset": "12",
                   "svtav1-params": "log-level=0"}
    else:  # mpeg4, mjpeg: a fixed quantizer
        options = {}
        stream.codec_context.flags |= av.codec.context.Flags.qscale
        stream.codec_context.global_quality = int((2 + (1 - quality) * 20) * 118)
    stream.options = options


def write_video(target: str | io.BytesIO, spec: ClipSpec, codec: str = "libx264",
                container: str | None = None, pix_fmt: str = "yuv420p", quality: float = 0.8,
                max_side: int = 4096, audio: bool = False, gop: int | None = None,
                renderer: Renderer | Sequence | None = None) -> None:
    """Encode `spec` as a real video (to a path or a buffer); tests, benchmarks, training.
    `renderer` draws the pictures instead of spec's own (spec still sets size and timing)."""
    renderer = renderer or Renderer(spec, max_side=max_side)
    out = av.open(target, mode="w", format=container)
    rate = Fraction(spec.fps).limit_denominator(1001)
    stream = out.add_stream(codec, rate=rate)
    stream.width, stream.height, stream.pix_fmt = renderer.w, renderer.h, pix_fmt
    if gop:
        stream.codec_context.gop_size = gop
    _codec_options(stream, codec, quality)
    # AVI stores no timestamps, only a frame rate: variable timing cannot be kept there.
    vfr = spec.vfr and out.format.name not in ("avi",)
    if vfr:
        stream.time_base = stream.codec_context.time_base = Fraction(1, 90000)
    times = frame_times(spec) if vfr else [i / spec.fps for i in range(max(2, round(spec.duration_s * spec.fps)))]
    end = times[-1] + 1 / spec.fps
    # WebM takes only Opus or Vorbis audio; the other containers here take AAC.
    audio_codec, audio_rate = ("libopus", 48000) if out.format.name == "webm" else ("aac", 44100)
    astream = out.add_stream(audio_codec, rate=audio_rate) if audio else None
    for t in times:
        frame = av.VideoFrame.from_ndarray(renderer.frame(t / end), format="rgb24")
        # Convert here with one thread rather than let the encoder's implicit conversion
        # use swscale slice threads (they can deadlock when freed).
        frame = frame.reformat(format=pix_fmt, threads=1)
        if vfr:
            frame.pts = int(round(t * 90000))
            frame.time_base = Fraction(1, 90000)
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
    if astream is not None:
        _write_tone(out, astream, spec.duration_s)
    out.close()


def _write_tone(out: av.container.OutputContainer, stream: av.audio.stream.AudioStream,
                seconds: float) -> None:
    rate = stream.codec_context.sample_rate
    samples = int(seconds * rate)
    t = np.arange(samples) / rate
    wave = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
    step = 960  # 20 ms at 48 kHz: a frame size every encoder here accepts (the encoder re-chunks)
    for i in range(0, samples, step):
        chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[:, i : i + step]), format="fltp",
                                           layout="mono")
        chunk.sample_rate = rate
        chunk.pts = i
        for packet in stream.encode(chunk):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
