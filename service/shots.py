"""Hard cuts at the full frame rate, from a tiny signature of every frame.

Why: /summarize looks at ~4 frames a second to find gradual transitions (service.summarize), but a
0.3 s shot gets one or two of those samples and a cut is placed only to a quarter second. The
decoder has to decode almost every frame anyway to reach 4 samples a second in a stream of
long GOPs (every P-frame between keyframe and target), so keeping a 32x32 signature of every
frame it decodes costs one small scale per frame and gives cuts to the frame. Videos with more
frames than a budget skip this (service.summarize then falls back to its 4 fps cut test).

How a cut is told from what happens inside a shot (PySceneDetect's ContentDetector thresholds
the colour change between neighbouring frames; its AdaptiveDetector divides it by the change of
the frames around; both miss cuts between two shots of the same colours and fire on fast pans):
- The frame difference is *motion-tolerant*: the luma layout of two frames is compared at the
  best of a few small shifts, so a pan or a moving object costs little while a new picture does
  not line up at any shift. Structure counts as much as colour: gradient-orientation maps and a
  coarse colour histogram are compared too. Two grey cars in two shots share colours, not edges.
- The threshold adapts: a cut must stand far above the typical difference of the frames around
  it (a busy shot's own change sets the bar), and above an absolute floor.
- A cut is persistent: the frames after it stay different from the frames before it for several
  frames. A flash (a frame or three of light, then the same shot again) is not.

The same signatures also tell a blend (dissolve, wipe) from motion (ghost_ratio): service.summarize
asks it about weak gradual-transition candidates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from models.cancel import CancelToken
from models.frames import (
    DecodeOptions,
    VideoDecodeError,
    VideoInfo,
    _Framer,
    _open,
    _reason,
    _video_stream,
    to_rgb,
)
from models.preprocess import Preprocessing

SIG = 32  # signature side: 32x32 RGB of every frame (3 KiB)
_SHIFT = 2  # the layout is compared at shifts of up to this many signature pixels (~6% of the frame)
_FLOOR = 0.10  # the least difference a cut makes (0..1 scale of frame_distance)
_RATIO = 2.5  # ... and how many times the typical local difference it must be
_PERSIST = 3  # frames after a cut that must still differ from the frames before it


@dataclass(frozen=True)
class Dense:
    """Signatures of consecutive frames: uint8 [M, SIG, SIG, 3] of the frames `indices`."""

    signatures: np.ndarray
    indices: np.ndarray


def decode_dense(path: str | Path, info: VideoInfo, targets: list[int], size: tuple[int, int],
                 policy: str = "stretch", threads: int = 0, shorter: int | None = None, *,
                 cancel: CancelToken | None = None) -> tuple[np.ndarray, Dense]:
    """One pass over every frame: the `targets` at `size` (uint8 [len(targets), H, W, 3], resized
    as models.frames.to_rgb does) and a signature of each frame. Frames that do not decode are
    missing from the signatures; a target that does not decode takes the nearest decoded frame."""
    want = set(targets)
    got: dict[int, np.ndarray] = {}
    sigs: list[np.ndarray] = []
    idx: list[int] = []
    pos_of = {p: i for i, p in enumerate(info.pts)}
    framer = _Framer()
    scaler = VideoReformatter()
    with _open(path) as container:
        stream = _video_stream(container)
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        position = -1
        try:
            for packet in container.demux(stream):
                # A 504, a client that left or a drain stops the pass here (models/cancel.py).
                if cancel is not None:
                    cancel.charge(info.width * info.height)
                try:
                    frames = stream.decode(packet)
                except av.error.FFmpegError:
                    continue  # a damaged packet: its frame is lost
                for frame in frames:
                    index = pos_of.get(frame.pts) if frame.pts is not None else None
                    if index is None:
                        index = position + 1
                    position = index
                    # One reformatter for the whole video: its scaler is set up once, not per frame.
                    sigs.append(scaler.reformat(frame, width=SIG, height=SIG, format="rgb24", interpolation="AREA",
                                                threads=1).to_ndarray())
                    idx.append(index)
                    if index in want:
                        got[index] = to_rgb(frame, size, info.rotation, policy, shorter, framer)
        except av.error.FFmpegError as exc:
            if not got:
                raise VideoDecodeError(f"the video cannot be decoded ({_reason(exc)})") from exc
    if not got:
        raise VideoDecodeError("no frame of the video could be decoded")
    decoded = np.asarray(sorted(got))
    out = np.empty((len(targets), size[0], size[1], 3), np.uint8)
    for i, t in enumerate(targets):
        j = t if t in got else int(decoded[np.argmin(np.abs(decoded - t))])
        out[i] = got[j]
    order = np.argsort(idx, kind="stable")
    return out, Dense(np.stack(sigs)[order], np.asarray(idx)[order])


# ---------------------------------------------------------------------------------------- features


@dataclass(frozen=True)
class Features:
    luma: np.ndarray  # [M, SIG, SIG] float32, each frame's mean taken out (a fade is not a new layout)
    colour: np.ndarray  # [M, 96] cumulative histogram of each channel (32 bins)
    edges: np.ndarray  # [M, 4, 4, 4] gradient energy per 8x8 cell and orientation, rows sum to 1
    mean: np.ndarray  # [M] mean luma


def features(sig: np.ndarray, chunk: int = 512) -> Features:
    """Features of every signature, a chunk of frames at a time (a long video has thousands of
    frames; whole-video float arrays of every intermediate cost more in memory traffic than in
    arithmetic)."""
    parts = [_features(sig[k : k + chunk]) for k in range(0, len(sig), chunk)] or [_features(sig)]
    return Features(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("luma", "colour", "edges", "mean")))


def _features(sig: np.ndarray) -> Features:
    m = len(sig)
    luma = (sig[..., 0] * np.float32(0.299 / 255) + sig[..., 1] * np.float32(0.587 / 255)
            + sig[..., 2] * np.float32(0.114 / 255))
    # Cumulative histograms of each channel (32 bins): their mean absolute difference is the
    # earth mover's distance, which grows with how far colours moved, not with how many pixels
    # crossed a bin edge (a flat-coloured shot that darkens a little is not a new shot).
    # One bincount over (frame, channel, bin) codes: np.add.at is ten times slower.
    offsets = (np.arange(m, dtype=np.int64)[:, None, None] * 96 + np.arange(3)[None, None, :] * 32)
    codes = ((sig >> 3).reshape(m, -1, 3) + offsets).ravel()
    hist = np.bincount(codes, minlength=m * 96).astype(np.float32).reshape(m, 3, 32)
    colour = np.cumsum(hist, axis=2).reshape(m, -1) * np.float32(1.0 / (SIG * SIG))
    gx = luma[:, :28, 1:29] - luma[:, :28, :28]
    gy = luma[:, 1:29, :28] - luma[:, :28, :28]
    # Four orientation bins (|gx|, |gy|, two diagonals), energy pooled over a 4x4 grid of cells:
    # all four maps in one array, pooled rows then columns (one contiguous reduction each).
    grad = np.empty((4, m, 28, 28), np.float32)
    np.abs(gx, out=grad[0])
    np.abs(gy, out=grad[1])
    np.abs(np.add(gx, gy, out=grad[2]), out=grad[2])
    np.abs(np.subtract(gx, gy, out=grad[3]), out=grad[3])
    grad[2:] *= np.float32(1 / 1.414)
    pooled = grad.reshape(4, m, 4, 7, 28).sum(axis=3).reshape(4, m, 4, 4, 7).sum(axis=4)
    cells = np.ascontiguousarray(np.moveaxis(pooled, 0, -1))
    # A weak prior (a little energy everywhere) keeps a black or flat frame's map from being noise.
    cells += 0.02
    edges = cells / cells.sum(axis=(1, 2, 3), keepdims=True)
    mean = luma.mean(axis=(1, 2))
    return Features(luma - mean[:, None, None], colour, edges, mean)


def _layout(a: np.ndarray, b: np.ndarray, chunk: int = 512) -> np.ndarray:
    """Mean absolute difference of the (mean-free) luma of frame pairs (a[k], b[k]) at the best
    small shift (a chunk of pairs at a time: the shifted differences stay in cache)."""
    s = _SHIFT
    n = (SIG - 2 * s) ** 2
    best = np.full(len(a), np.inf, np.float32)
    # One scratch buffer, written in place: a third of the time of fresh temporaries per shift.
    scratch = np.empty((min(chunk, len(a)), SIG - 2 * s, SIG - 2 * s), np.float32)
    for k in range(0, len(a), chunk):
        core = a[k : k + chunk, s:-s, s:-s]
        b_k = b[k : k + chunk]
        out = best[k : k + chunk]
        diff = scratch[: len(core)]
        for dy in range(-s, s + 1):
            for dx in range(-s, s + 1):
                np.subtract(core, b_k[:, s + dy : SIG - s + dy, s + dx : SIG - s + dx], out=diff)
                np.abs(diff, out=diff)
                np.minimum(out, diff.sum(axis=(1, 2)), out=out)
    return best / n


def frame_distance(f: Features, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Distance 0..1 between frames i[k] and j[k]: layout (motion-tolerant), structure, colour."""
    layout = np.minimum(1.0, 6.0 * _layout(f.luma[i], f.luma[j]))
    structure = 0.5 * np.abs(f.edges[i] - f.edges[j]).sum(axis=(1, 2, 3))
    colour = np.minimum(1.0, 4.0 * np.abs(f.colour[i] - f.colour[j]).mean(axis=1))
    return (1.0 * layout + 0.75 * structure + 0.75 * colour) / 2.5


# ---------------------------------------------------------------------------------------- cuts


def hard_cuts(dense: Dense, f: Features | None = None) -> list[int]:
    """Frame indices where a new shot starts after a hard cut (a one-frame change that stays).
    `f`: the signatures' features when already computed."""
    m = len(dense.indices)
    if m < 3:
        return []
    f = features(dense.signatures) if f is None else f
    k = np.arange(1, m)
    step = np.zeros(m, np.float32)  # step[t]: distance between frames t-1 and t
    step[1:] = frame_distance(f, k - 1, k)
    # Cheap tests on every frame first: above the floor, a local maximum, and far above the
    # typical step of the frames around it (their median, the step itself and its neighbours left
    # out). Only the few survivors get the costlier persistence tests.
    padded = np.pad(step, 12, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 25)  # frame t's window is row t
    around = np.concatenate([windows[:, :11], windows[:, 14:]], axis=1)
    local = np.median(around, axis=1)
    neighbours = np.maximum(np.r_[0.0, step[:-1]], np.r_[step[1:], 0.0])
    candidates = np.nonzero((step >= _FLOOR) & (step >= _RATIO * local + 0.5 * _FLOOR) & (step >= neighbours))[0]
    # The pairs each candidate's tests compare, all measured in one call (per-call overhead is
    # what a busy video with many candidates would otherwise pay).
    pairs_i: list[np.ndarray] = []
    pairs_j: list[np.ndarray] = []
    slices: dict[int, tuple[int, int, int]] = {}  # candidate -> (cross start, cross end, wide end)
    at = 0
    for t in candidates.tolist():
        before = np.arange(max(0, t - _PERSIST), t)
        after = np.arange(t, min(m, t + _PERSIST))
        ii, jj = np.meshgrid(before, after, indexing="ij")
        wide_i = np.asarray([max(0, t - 1 - w) for w in (3, 6)])
        wide_j = np.asarray([min(m - 1, t + w) for w in (3, 6)])
        pairs_i += [ii.ravel(), wide_i]
        pairs_j += [jj.ravel(), wide_j]
        slices[t] = (at, at + ii.size, at + ii.size + 2)
        at += ii.size + 2
    dist = frame_distance(f, np.concatenate(pairs_i), np.concatenate(pairs_j)) if pairs_i else np.zeros(0)
    cuts: list[int] = []
    for t in sorted(candidates.tolist(), key=lambda t: -step[t]):
        s = float(step[t])
        lo, mid, hi = slices[t]
        # Persistence: frames after the cut stay far from frames before it (a flash does not).
        cross = dist[lo:mid]
        if float(np.median(cross)) < 0.6 * s or float(cross.min()) < 0.35 * s:
            continue
        # Abrupt: this one step is most of the change across a wider span (each step of a
        # dissolve or a fade is only a part of it, however noisy the frames).
        if s < 0.6 * float(dist[mid:hi].max()):
            continue
        if any(abs(t - c) < 3 for c in cuts):
            continue
        cuts.append(t)
    return sorted(int(dense.indices[t]) for t in cuts)


# ---------------------------------------------------------------------------------------- blends

_GHOST_S = 0.12  # frames this far apart are compared: a pan of a third of the frame a second moves them
# less than the layout's shift tolerance, while a 0.5 s blend's mix changes by a quarter
_GHOST_AROUND_S = 1.5  # ... and the frames this far around set what the shot's own motion explains


def ghost_ratio(dense: Dense, f: Features, first: int, last: int, fps: float,
                cache: np.ndarray | None = None) -> float:
    """How much less the frames between frame indices `first` and `last` are explained by motion
    than the frames around them: the ratio of the largest to the typical `unexplained` change.

    A frame's unexplained change is its motion-tolerant layout distance (the best of small shifts)
    to the nearer-matching of the frames _GHOST_S before and after it. Inside a shot, a pan, a
    zoom or a moving object leaves a frame close to a shifted neighbour, whatever the shot's
    colours; in the middle of a dissolve or a wipe a frame is a mix of two pictures and matches
    neither, however alike the two shots' colours and textures are (two parts of one photo).
    A hard cut leaves every frame equal to one side: it does not count here. `cache`: float32 [M]
    of NaN, kept between calls on one video (their neighbourhoods overlap)."""
    pos = dense.indices
    m = len(pos)
    w = max(2, round(_GHOST_S * fps))
    around = max(w + 2, round(_GHOST_AROUND_S * fps))
    a, b = int(np.searchsorted(pos, first)), int(np.searchsorted(pos, last, side="right"))
    lo, hi = max(w, a - around), min(m - w, b + around)
    if hi - lo < 3 or b <= a:
        return 0.0
    # Every other frame of the neighbourhood is enough for its typical value (half the work).
    frames = np.asarray(sorted(set(range(lo, hi, 2)) | set(range(max(lo, a), min(hi, b)))))
    if cache is None:
        cache = np.full(m, np.nan, np.float32)
    todo = frames[np.isnan(cache[frames])]
    if len(todo):
        cache[todo] = np.minimum(_layout(f.luma[todo], f.luma[todo - w]), _layout(f.luma[todo], f.luma[todo + w]))
    change = cache[frames]
    inside = (frames >= a) & (frames < b)
    # The frames around, clear of the span by the comparison distance (they see the blend too).
    outside = (frames < a - w) | (frames >= b + w)
    if not inside.any() or outside.sum() < 3:
        return 0.0
    return float(change[inside].max() / max(float(np.median(change[outside])), 1e-3))


def read_summary_frames(path: str | Path, info: VideoInfo, indices: list[int], prep: Preprocessing,
                        dense_max_frames: int, options: DecodeOptions, *,
                        cancel: CancelToken | None = None) -> tuple[np.ndarray, Dense | None]:
    """What /summarize decodes: the sampled frames as the model wants them, and the signature of
    every frame when the video has at most `dense_max_frames` frames (0: never). `options`: how
    the samples are decoded when there are no signatures to take."""
    if 0 < info.frame_count <= dense_max_frames:
        return decode_dense(path, info, indices, prep.size, prep.resize, options.threads, prep.resize_shorter,
                            cancel=cancel)
    return prep.read(path, info, indices, options, cancel=cancel)[0], None


def model_clips(frames: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """Frames [N,H,W,3] as the model's input [ceil(N/T), T, 3, H, W], the last clip padded by
    repeating its last frame."""
    pad = (-len(frames)) % prep.num_frames
    if pad:
        frames = np.concatenate([frames, np.repeat(frames[-1:], pad, axis=0)])
    return prep.normalize(frames.reshape(-1, prep.num_frames, *frames.shape[1:]))


def frame_times(info: VideoInfo) -> np.ndarray:
    """Seconds from the first frame to every frame (vectorised: a long video has 10^5 frames)."""
    pts = np.asarray(info.pts, np.float64)
    return (pts - pts[0]) * float(info.time_base)
