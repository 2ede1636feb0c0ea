"""Multi-scene test videos with known scene boundaries, for the summarization benchmark and tests.

Each video is 3-7 visually distinct scenes of 1-4 s joined by hard cuts, 0.5 s crossfades
or fades through black, rendered with numpy and written as H.264 MP4 with PyAV. Scenes
move (pans over textures, moving shapes, drifting gradients, grain) so that a detector
that fires on any pixel change is punished, and some neighbours share a palette so that
a detector that only compares colour histograms is too.

Ground truth is the *clean* part of each scene: a crossfade or fade belongs to no scene,
so a keyframe taken mid-transition scores as a miss.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import av
import numpy as np

Transition = Literal["hard", "crossfade", "fade-black"]
SceneRenderer = Callable[[float], np.ndarray]  # seconds since the scene began -> float RGB [H,W,3] 0..1
SCENE_KINDS = ("gradient", "pan", "shapes", "grain", "stripes", "checker", "blobs")


@dataclass(frozen=True)
class SceneSpan:
    kind: str
    start_s: float  # first instant of clean (not transitioning) content
    end_s: float


@dataclass(frozen=True)
class SceneVideo:
    path: Path
    transition: str  # "hard", "crossfade", "fade-black" or "mixed"
    scenes: list[SceneSpan]
    duration_s: float
    fps: float
    transitions: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(
            {
                "transition": self.transition,
                "duration_s": self.duration_s,
                "fps": self.fps,
                "transitions": self.transitions,
                "scenes": [dataclasses.asdict(s) for s in self.scenes],
            }
        )

    @classmethod
    def from_json(cls, path: str | Path, text: str) -> SceneVideo:
        d = json.loads(text)
        return cls(
            Path(path),
            d["transition"],
            [SceneSpan(**s) for s in d["scenes"]],
            d["duration_s"],
            d["fps"],
            d["transitions"],
        )


def _palette(rng: np.random.Generator, n: int = 3) -> np.ndarray:
    """`n` colours around a random hue: saturated enough that scenes look different."""
    hue = rng.uniform(0, 1)
    cols = []
    for _ in range(n):
        h = (hue + rng.normal(0, 0.08)) % 1.0
        s = rng.uniform(0.35, 1.0)
        v = rng.uniform(0.25, 1.0)
        cols.append(_hsv_to_rgb(h, s, v))
    return np.asarray(cols, np.float32)


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[float, float, float]:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Value noise in [0,1]: random values on a coarse grid, bilinearly upsampled."""
    gh, gw = cells + 2, max(2, int(cells * w / h)) + 2
    grid = rng.uniform(0, 1, (gh, gw)).astype(np.float32)
    ys = np.linspace(0, gh - 1.001, h)
    xs = np.linspace(0, gw - 1.001, w)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    a = grid[y0][:, x0]
    b = grid[y0][:, x0 + 1]
    c = grid[y0 + 1][:, x0]
    d = grid[y0 + 1][:, x0 + 1]
    return (a * (1 - fy) * (1 - fx) + b * (1 - fy) * fx + c * fy * (1 - fx) + d * fy * fx).astype(np.float32)


def _colorize(values: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Map values in [0,1] through the palette's colours (piecewise linear)."""
    n = len(palette)
    pos = np.clip(values, 0, 1) * (n - 1)
    i0 = np.minimum(pos.astype(int), n - 2)
    f = (pos - i0)[..., None]
    return palette[i0] * (1 - f) + palette[i0 + 1] * f


def make_scene(kind: str, rng: np.random.Generator, h: int, w: int, palette: np.ndarray) -> SceneRenderer:
    """A renderer for one scene: a function of time inside the scene."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "gradient":
        angle0, spin = rng.uniform(0, 2 * math.pi), rng.uniform(-0.4, 0.4)
        drift = rng.uniform(0.03, 0.15)

        def render(t: float) -> np.ndarray:
            a = angle0 + spin * t
            proj = (xx * math.cos(a) + yy * math.sin(a)) / math.hypot(h, w) + 0.5 + drift * t
            return _colorize(np.abs((proj % 2.0) - 1.0), palette)

        return render
    if kind in ("pan", "blobs"):
        big_h, big_w = h * 2, w * 3
        tex = _smooth_noise(rng, big_h, big_w, int(rng.integers(3, 12)))
        if kind == "pan":
            tex = 0.7 * tex + 0.3 * _smooth_noise(rng, big_h, big_w, int(rng.integers(20, 40)))
        img = _colorize(tex, palette)
        speed = rng.uniform(30, 120) * np.array([rng.choice([-1, 1]) * rng.uniform(0.2, 1), 1.0])
        other = _colorize(_smooth_noise(rng, big_h, big_w, int(rng.integers(3, 8))), palette)

        def render(t: float) -> np.ndarray:
            oy = int(abs((h / 2 + speed[0] * t * 0.3) % (2 * (big_h - h)) - (big_h - h)))
            ox = int(abs((w / 2 + speed[1] * t) % (2 * (big_w - w)) - (big_w - w)))
            frame = img[oy : oy + h, ox : ox + w]
            if kind == "blobs":  # the texture itself evolves too
                mix = 0.5 - 0.5 * math.cos(t * 1.3)
                frame = frame * (1 - mix) + other[oy : oy + h, ox : ox + w] * mix
            return frame

        return render
    if kind == "shapes":
        bg = _colorize(_smooth_noise(rng, h, w, 2) * 0.5, palette)
        n = int(rng.integers(2, 7))
        pos = rng.uniform([0, 0], [h, w], (n, 2))
        vel = rng.uniform(-150, 150, (n, 2))
        size = rng.uniform(0.06, 0.2, n) * min(h, w)
        cols = np.asarray([_hsv_to_rgb(*rng.uniform([0, 0.3, 0.4], [1, 1, 1])) for _ in range(n)], np.float32)
        rect = rng.uniform(0, 1, n) < 0.5

        def render(t: float) -> np.ndarray:
            frame = bg.copy()
            for k in range(n):
                cy = abs((pos[k, 0] + vel[k, 0] * t) % (2 * h) - h)
                cx = abs((pos[k, 1] + vel[k, 1] * t) % (2 * w) - w)
                if rect[k]:
                    mask = (np.abs(yy - cy) < size[k]) & (np.abs(xx - cx) < size[k] * 1.4)
                else:
                    mask = (yy - cy) ** 2 + (xx - cx) ** 2 < size[k] ** 2
                frame[mask] = cols[k]
            return frame

        return render
    if kind == "grain":
        base = _colorize(_smooth_noise(rng, h, w, int(rng.integers(2, 5))), palette)
        sigma = rng.uniform(0.05, 0.15)

        def render(t: float) -> np.ndarray:
            flicker = 1.0 + 0.06 * math.sin(t * 7.0)
            return base * flicker + rng.normal(0, sigma, (h, w, 1)).astype(np.float32)

        return render
    if kind == "stripes":
        freq = rng.uniform(0.03, 0.15)
        angle = rng.uniform(0, math.pi)
        speed = rng.uniform(1, 5)

        def render(t: float) -> np.ndarray:
            proj = xx * math.cos(angle) + yy * math.sin(angle)
            return _colorize(0.5 + 0.5 * np.sin(proj * freq + speed * t), palette)

        return render
    if kind == "checker":
        cell = rng.uniform(8, 30)
        spin = rng.uniform(-0.5, 0.5)

        def render(t: float) -> np.ndarray:
            a = spin * t
            zoom = 1.0 + 0.2 * math.sin(t)
            u = ((xx - w / 2) * math.cos(a) - (yy - h / 2) * math.sin(a)) / (cell * zoom)
            v = ((xx - w / 2) * math.sin(a) + (yy - h / 2) * math.cos(a)) / (cell * zoom)
            check = (np.floor(u) + np.floor(v)) % 2
            return _colorize(0.15 + 0.7 * check, palette)

        return render
    raise ValueError(f"unknown scene kind {kind!r}")


def generate_video(
    path: str | Path,
    seed: int,
    transition: str = "mixed",
    *,
    num_scenes: int | None = None,
    size: tuple[int, int] = (180, 320),
    fps: float = 25.0,
    scene_s: tuple[float, float] = (1.0, 4.0),
    kinds: list[str] | None = None,
) -> SceneVideo:
    """Render and encode one multi-scene video; return where its scenes are.

    `transition` is "hard", "crossfade", "fade-black" (every join of that type) or "mixed".
    """
    rng = np.random.default_rng(seed)
    h, w = size
    n = num_scenes if num_scenes is not None else int(rng.integers(3, 8))
    if kinds is None:
        kinds = []
        for _ in range(n):
            choices = [k for k in SCENE_KINDS if not kinds or k != kinds[-1]]
            kinds.append(str(rng.choice(choices)))
    palettes = [_palette(rng)]
    for _ in range(1, n):
        if rng.uniform() < 0.4:  # a neighbour with nearly the same colours: harder to tell apart
            palettes.append(np.clip(palettes[-1] + rng.normal(0, 0.04, palettes[-1].shape), 0, 1))
        else:
            palettes.append(_palette(rng))
    scenes = [make_scene(kinds[i], rng, h, w, palettes[i]) for i in range(n)]
    lengths = [float(x) for x in rng.uniform(*scene_s, n)]
    joins: list[str] = []
    for _ in range(n - 1):
        mixed = str(rng.choice(["hard", "crossfade", "fade-black"]))
        joins.append(mixed if transition == "mixed" else transition)
    # Durations of each join: crossfades overlap the scenes; a fade goes out, (holds), comes in.
    join_s = []
    for j in joins:
        if j == "hard":
            join_s.append(0.0)
        elif j == "crossfade":
            join_s.append(0.5)
        else:
            join_s.append(0.5 + float(rng.choice([0.0, 0.0, 0.12, 0.24])))
    # Timeline: clean scene, join, clean scene, ...
    spans: list[SceneSpan] = []
    t = 0.0
    for i in range(n):
        spans.append(SceneSpan(kinds[i], t, t + lengths[i]))
        t += lengths[i] + (join_s[i] if i < n - 1 else 0.0)
    duration = t
    total = round(duration * fps)

    def frame_at(t: float) -> np.ndarray:
        for i, span in enumerate(spans):
            if t < span.end_s or i == n - 1:
                if t >= span.start_s or i == 0:
                    return scenes[i](t - span.start_s)
                # Inside the join before scene i.
                prev = spans[i - 1]
                a = (t - prev.end_s) / max(1e-6, span.start_s - prev.end_s)
                if joins[i - 1] == "crossfade":
                    return scenes[i - 1](t - prev.start_s) * (1 - a) + scenes[i](t - span.start_s) * a
                # Fade through black: 0.25 s out, an optional hold, 0.25 s in.
                out_end, in_start = prev.end_s + 0.25, span.start_s - 0.25
                if t < out_end:
                    return scenes[i - 1](t - prev.start_s) * (1 - (t - prev.end_s) / 0.25)
                if t < in_start:
                    return np.zeros((h, w, 3), np.float32)
                return scenes[i](t - span.start_s) * ((t - in_start) / 0.25)
        raise AssertionError("unreachable")

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=round(fps))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": "20", "preset": "veryfast"}
        for k in range(total):
            rgb = (np.clip(frame_at((k + 0.5) / fps), 0, 1) * 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return SceneVideo(path, transition, spans, total / fps, fps, joins)
