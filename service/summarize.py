"""Segments and keyframes of a video: shot boundaries (hard cuts and gradual transitions) from densely
sampled frames, one representative keyframe per segment, scored by importance.

Why this shape:
- Hard cuts are easy (any frame difference spikes); crossfades and fades through black are where
  threshold-on-adjacent-frames detectors (PySceneDetect) fail, because each step of a 0.5 s blend is
  small. So every gap between samples is scored by comparing frames on *either side of a skip*: for a
  skip wide enough to jump over the blend, the frames compared are clean frames of two different
  scenes, and the distance is as large as for a hard cut.
- Motion inside a shot (pans, moving objects, grain) also raises distances at long lags. It does so
  steadily, though, while a transition is a local peak. Each gap's score is therefore measured
  against the video's own typical distance at the same lag, and kept only if it is a clear local
  peak; a final check merges neighbouring segments whose clean parts still look alike.
- Hard cuts are found separately (one sample step that is most of the change and a spike among its
  neighbours), so they are placed exactly. A fade through black peaks twice (into and out of the
  black); the two become one boundary at the darkest frame, and black frames are never keyframes.
- Thresholds are relative (to the video's own change at the same lag, to each side's own spread),
  with one absolute floor, _MIN_SCORE. Tuned on bench.scenegen seeds 0-2 and 100-107, checked on
  seeds 200-209 and 300-311 that were not tuned on.
- Embeddings of the untrained or motion-trained model barely move between natural scenes, so they
  get a small weight: they help when they do differ and cost nothing when they do not.
- Features are mostly cheap, translation-tolerant image statistics (colour and luma histograms,
  gradient statistics) plus a coarse thumbnail; the model's embeddings are one more signal.
  Everything works on the 64x64 frames the model sees, so no second decode is needed.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np

from models.frames import VideoDecodeError, VideoInfo, read_frames
from models.sampling import plan_summary_indices  # noqa: F401  (its home is models.sampling)

# The service's defaults (SUMMARIZE_FPS, SUMMARIZE_MAX_FRAMES) and the scene benchmark's:
# 4 fps puts 2 samples inside a 0.5 s transition, which the cut scores see across a skip
# (BENCHMARKS.md: F1 0.98 over hard cuts, crossfades and fades at 4 fps).
DEFAULT_SUMMARY_FPS = 4.0
DEFAULT_SUMMARY_MAX_FRAMES = 256  # long videos: sample sparser rather than decode without bound

# Relative weights of the per-feature distances (each already on a 0..1 scale).
_WEIGHTS = {"color": 1.0, "luma": 0.5, "texture": 0.75, "thumb": 0.75, "embed": 0.25}
_TRANSITION_S = 0.75  # the longest gradual transition we expect to skip over (0.5 s blend + a hold)
_DARK = 0.06  # mean luma below which a frame is (nearly) black: never a keyframe
# The least a transition must change the picture beyond what the video changes by itself over the
# same time (combined distance, 0..1): about "a tenth of the colours or the layout is different".
_MIN_SCORE = 0.12
_MIN_SEGMENT_S = 0.6  # shorter than a glance: not a part of the video worth a keyframe


@dataclass(frozen=True)
class Segment:
    start_s: float
    end_s: float
    start_index: int
    end_index: int


@dataclass(frozen=True)
class Keyframe:
    index: int
    timestamp_s: float
    score: float
    segment: int


# ---------------------------------------------------------------------------------------- features


def _pool(x: np.ndarray, out: int) -> np.ndarray:
    """Area-average [N,H,W,C] down to [N,out,out,C] (H and W multiples of `out` after cropping)."""
    n, h, w, c = x.shape
    fh, fw = max(1, h // out), max(1, w // out)
    x = x[:, : fh * out, : fw * out]
    return x.reshape(n, out, fh, out, fw, c).mean(axis=(2, 4))


def _tv_matrix(p: np.ndarray) -> np.ndarray:
    """Total-variation distance (half L1, in [0,1]) between all pairs of rows of `p` (rows sum to 1)."""
    return 0.5 * np.abs(p[:, None, :] - p[None, :, :]).sum(-1)


def _distance_matrices(frames: np.ndarray, embeddings: np.ndarray | None) -> dict[str, np.ndarray]:
    x = frames.astype(np.float32) * (1.0 / 255.0)
    n = len(x)
    # A 2x2 blur before quantizing keeps grain from flipping pixels between histogram bins.
    small = _pool(x, 32) if min(x.shape[1:3]) >= 32 else x
    q = np.clip((small * 4).astype(np.int32), 0, 3)
    code = (q[..., 0] * 16 + q[..., 1] * 4 + q[..., 2]).reshape(n, -1)
    color = np.stack([np.bincount(c, minlength=64) for c in code]).astype(np.float32)
    color /= color.sum(1, keepdims=True)

    luma = x @ np.asarray([0.299, 0.587, 0.114], np.float32)
    lq = np.clip((_pool(luma[..., None], 32)[..., 0] * 16).astype(np.int32), 0, 15).reshape(n, -1)
    lhist = np.stack([np.bincount(c, minlength=16) for c in lq]).astype(np.float32)
    lhist /= lhist.sum(1, keepdims=True)

    # Texture: how much edge energy at which strength and in which direction. A pan or a moving
    # object keeps these nearly constant; a different scene rarely does.
    gx = np.abs(np.diff(luma, axis=2))[:, :-1, :]
    gy = np.abs(np.diff(luma, axis=1))[:, :, :-1]
    mag = np.sqrt(gx**2 + gy**2)
    edges = np.asarray([0.0, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, np.inf], np.float32)
    mbin = np.clip(np.searchsorted(edges, mag.reshape(n, -1), side="right") - 1, 0, len(edges) - 2)
    mhist = np.stack([np.bincount(b, minlength=len(edges) - 1) for b in mbin]).astype(np.float32)
    mhist /= mhist.sum(1, keepdims=True)
    energy = np.stack([gx.mean((1, 2)), gy.mean((1, 2))], 1)
    orient = energy / np.maximum(energy.sum(1, keepdims=True), 1e-6)
    texture = np.concatenate([mhist * 0.75, orient * 0.25], 1)

    thumb = _pool(x, 8).reshape(n, -1)
    dists = {
        "color": _tv_matrix(color),
        "luma": _tv_matrix(lhist),
        "texture": _tv_matrix(texture),
        # Mean absolute difference of 8x8 thumbnails; x3 puts a clearly different picture near 1.
        "thumb": np.minimum(1.0, 3.0 * np.abs(thumb[:, None, :] - thumb[None, :, :]).mean(-1)),
    }
    if embeddings is not None and len(embeddings) == n and np.isfinite(embeddings).all():
        e = embeddings.astype(np.float32).reshape(n, -1)
        e /= np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-6)
        dists["embed"] = np.clip((1.0 - e @ e.T) * 0.5, 0.0, 1.0)
    return dists


def _combine(dists: dict[str, np.ndarray]) -> np.ndarray:
    total = sum(_WEIGHTS[k] for k in dists)
    return sum(_WEIGHTS[k] * d for k, d in dists.items()) / total


# ---------------------------------------------------------------------------------------- boundaries


def _lag_baseline(d: np.ndarray, max_lag: int) -> np.ndarray:
    """Typical distance between samples `lag` apart, over the whole video (most such pairs lie
    inside one shot, so this is how much the video changes by itself over that time)."""
    n = len(d)
    base = np.zeros(max_lag + 1, np.float32)
    for lag in range(1, max_lag + 1):
        if lag < n:
            base[lag] = float(np.median(np.diagonal(d, offset=lag)))
    return base


def _gap_scores(d: np.ndarray, skip_max: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each gap g (between samples g and g+1): how much more the frames either side differ than
    frames the same distance apart usually do, maximised over skips; the skip that won; and the
    largest distance across the gap at any skip (the whole change a transition there makes)."""
    n = len(d)
    base = _lag_baseline(d, 2 * skip_max + 1)
    score = np.zeros(max(0, n - 1), np.float32)
    best_skip = np.zeros(max(0, n - 1), np.int32)
    total = np.zeros(max(0, n - 1), np.float32)
    for g in range(n - 1):
        best, arg = -1.0, 0
        for h in range(min(skip_max, g, n - 2 - g) + 1):
            a, b = g - h, g + 1 + h
            # Two frames on each side: one noisy frame must not make (or hide) a transition.
            left = [a] + ([a - 1] if a >= 1 else [])
            right = [b] + ([b + 1] if b + 1 < n else [])
            cross = float(np.median(d[np.ix_(left, right)]))
            total[g] = max(total[g], cross)
            if cross - base[2 * h + 1] > best:
                best, arg = cross - base[2 * h + 1], h
        score[g], best_skip[g] = max(best, 0.0), arg
    return score, best_skip, total


def _pick_peaks(score: np.ndarray, radius: int, threshold: float) -> list[int]:
    """Gaps whose score passes `threshold` and is the largest within `radius` gaps either side.

    A true local maximum, not greedy suppression: the shoulders of a wide transition's plateau
    must not survive as cuts of their own."""
    taken: list[int] = []
    for g in np.argsort(-score, kind="stable"):
        g = int(g)
        if score[g] < threshold:
            break
        lo, hi = max(0, g - radius), min(len(score), g + radius + 1)
        if score[g] >= score[lo:hi].max() and all(abs(g - t) > radius for t in taken):
            taken.append(g)
    return sorted(taken)


def _core(lo: int, hi: int, margin: int) -> np.ndarray:
    """Samples of [lo, hi) at least `margin` from its ends (the middle sample if none are)."""
    if hi - lo > 2 * margin:
        return np.arange(lo + margin, hi - margin)
    return np.asarray([(lo + hi - 1) // 2])


def _merge_similar(d: np.ndarray, cuts: list[int], margin: int, dark: np.ndarray, reach: int) -> list[int]:
    """Drop cuts whose two sides' clean parts (up to `reach` samples each, next to the cut) are not
    clearly farther apart than each side is from itself: the weakest first, re-checking its new
    neighbours. Black frames (a fade's) are not part of either side's picture, and a fade through
    black is an edit by itself: kept."""
    cuts = list(cuts)
    n = len(d)
    faded = {c for c in cuts if dark[max(0, c - 2 * margin) : c + 2 * margin + 2].any()}
    while cuts:
        bounds = [0, *[c + 1 for c in cuts], n]
        worst, worst_i = math.inf, -1
        for i, c in enumerate(cuts):
            if c in faded:
                continue
            a = _lit(_core(bounds[i], bounds[i + 1], margin), dark)[-reach:]
            b = _lit(_core(bounds[i + 1], bounds[i + 2], margin), dark)[:reach]
            between = float(np.median(d[np.ix_(a, b)]))
            within = max(_spread(d, a), _spread(d, b))
            # Two shots must differ clearly more than either varies within itself: by a visible
            # margin and by a clear factor (both, so neither static nor busy shots fool it).
            strength = min(between - (within + 0.5 * _MIN_SCORE), between - 1.5 * within)
            if strength < worst:
                worst, worst_i = strength, i
        if worst >= 0:
            break
        cuts.pop(worst_i)
    return cuts


def _lit(idx: np.ndarray, dark: np.ndarray) -> np.ndarray:
    kept = idx[~dark[idx]]
    return kept if len(kept) else idx


def _spread(d: np.ndarray, idx: np.ndarray) -> float:
    if len(idx) < 2:
        return 0.0
    sub = d[np.ix_(idx, idx)]
    return float(np.median(sub[np.triu_indices(len(idx), 1)]))


# ---------------------------------------------------------------------------------------- summary


def summarize(
    frames: np.ndarray,
    indices: list[int],
    timestamps: list[float],
    embeddings: np.ndarray | None,
    attention: np.ndarray | None,
    duration_s: float,
    frame_count: int,
    max_keyframes: int,
) -> tuple[list[Segment], list[Keyframe]]:
    """Cut the sampled video into segments and pick at most `max_keyframes` keyframes, in time order.

    `frames` are uint8 [N,H,W,3] of the frames at `indices` (at `timestamps`), `embeddings` [N,D] and
    `attention` [N] the model's outputs for them.
    """
    n = len(indices)
    duration_s = float(duration_s)
    fps = frame_count / duration_s if duration_s > 0 else 25.0
    if n == 0:
        return [Segment(0.0, duration_s, 0, max(0, frame_count - 1))], []
    ts = np.asarray(timestamps, np.float64)
    # The mean spacing: sampling a 25 fps video at 8 fps alternates 0.12 s and 0.16 s steps.
    dt = float(ts[-1] - ts[0]) / (n - 1) if n > 1 else duration_s
    dt = max(dt, 1e-3)
    skip_max = max(1, math.ceil(_TRANSITION_S / 2 / dt - 0.1))  # -0.1: float noise must not add one

    d = _combine(_distance_matrices(frames, embeddings)) if n > 1 else np.zeros((1, 1), np.float32)
    luma = frames.astype(np.float32).mean(axis=(1, 2, 3)) / 255.0

    cuts: list[int] = []
    if n > 2:
        score, best_skip, total = _gap_scores(d, skip_max)
        # Every test below is relative to the video's own change at the same lag (the medians
        # subtracted), plus an absolute floor: a visibly different picture.
        # Hard cuts: one sample pair changes far more than its neighbours (a blend spreads its
        # change over several pairs, so it never looks like this), and that one step is most of the
        # change across the gap at any skip (one step of a blend is only a part of it).
        adjacent = np.diagonal(d, offset=1)
        step = adjacent - float(np.median(adjacent))
        hard = [
            g
            for g in range(n - 1)
            if step[g] >= _MIN_SCORE
            and adjacent[g] >= 0.75 * total[g]
            and step[g] >= 2.0 * max(step[g - 1] if g else 0.0, step[g + 1] if g + 2 < n else 0.0, 0.0)
        ]
        reach = max(2, math.ceil(1.0 / dt))  # compare up to a second of each side
        dark = _is_dark(luma)
        # A noisy shot can make one step jump; only hard cuts whose sides really differ may
        # overrule a gradual transition nearby.
        hard = _merge_similar(d, hard, margin=skip_max, dark=dark, reach=reach)
        # Gradual transitions: peaks of the skip score away from the hard cuts.
        gradual = [
            g
            for g in _pick_peaks(score, radius=2 * skip_max, threshold=_MIN_SCORE)
            if all(abs(g - c) > 2 * skip_max for c in hard)
        ]
        cuts = sorted(hard + gradual)
        cuts = _join_fades(cuts, luma, ts)
        cuts = _merge_similar(d, cuts, margin=skip_max, dark=dark, reach=reach)
        cuts = sorted({g if g in hard else _settle(g, int(best_skip[g]), luma) for g in cuts})
        cuts = _drop_short(cuts, ts, score, duration_s)

    # Segments: boundaries halfway between the samples either side of each cut, in frame indices.
    starts = [0]
    for g in cuts:
        t = 0.5 * (ts[g] + ts[g + 1])
        starts.append(min(frame_count - 1, max(starts[-1] + 1, round(t * fps))))
    starts = sorted(set(starts))
    segments = []
    for i, s in enumerate(starts):
        e = starts[i + 1] - 1 if i + 1 < len(starts) else frame_count - 1
        start_s = 0.0 if i == 0 else s / fps
        end_s = duration_s if i + 1 == len(starts) else starts[i + 1] / fps
        segments.append(Segment(round(start_s, 4), round(end_s, 4), int(s), int(max(s, e))))

    keyframes = _keyframes(segments, indices, ts, d, luma, attention, dt, max_keyframes)
    return segments, keyframes


def _drop_short(cuts: list[int], ts: np.ndarray, score: np.ndarray, duration_s: float) -> list[int]:
    """A "segment" shorter than _MIN_SEGMENT_S is a flash or a transition's remnant, not a part of
    the video a viewer would name: drop its weaker boundary, the shortest first."""
    cuts = list(cuts)
    while cuts:
        times = [0.0, *[0.5 * (ts[g] + ts[g + 1]) for g in cuts], duration_s]
        lengths = np.diff(times)
        i = int(np.argmin(lengths))
        if lengths[i] >= _MIN_SEGMENT_S:
            break
        # Segment i lies between cut i-1 and cut i: remove the weaker of its existing bounds.
        sides = [j for j in (i - 1, i) if 0 <= j < len(cuts)]
        cuts.pop(min(sides, key=lambda j: score[cuts[j]]))
    return cuts


def _is_dark(luma: np.ndarray) -> np.ndarray:
    """Near-black samples: absolutely dark, or far darker than the video usually is."""
    return (luma < _DARK) | (luma < 0.25 * float(np.median(luma)))


def _join_fades(cuts: list[int], luma: np.ndarray, ts: np.ndarray) -> list[int]:
    """A fade through black peaks twice (scene -> black, black -> scene). A short segment made
    mostly of dark frames between two cuts is that black interval, not a scene: keep one cut."""
    dark = _is_dark(luma)
    cuts = list(cuts)
    i = 0
    while i + 1 < len(cuts):
        a, b = cuts[i], cuts[i + 1]
        inside = np.arange(a + 1, b + 1)
        short = ts[b + 1] - ts[a] <= 2.5 * _TRANSITION_S
        if short and dark[inside].mean() >= 0.3:
            # The darkest gap between them becomes the one boundary.
            window = luma[a : b + 2]
            cuts[i : i + 2] = [a + int(np.argmin(window[:-1] + window[1:]))]
        else:
            i += 1
    return cuts


def _settle(g: int, skip: int, luma: np.ndarray) -> int:
    """Put a gradual transition's boundary at its darkest gap (a fade through black) so neither side
    keeps the black frames."""
    if skip == 0:
        return g
    lo, hi = max(0, g - skip), min(len(luma) - 2, g + skip)
    window = luma[lo : hi + 2]
    if _is_dark(luma)[lo : hi + 2].any():
        return lo + int(np.argmin(window[:-1] + window[1:]))
    return g


def _keyframes(
    segments: list[Segment],
    indices: list[int],
    ts: np.ndarray,
    d: np.ndarray,
    luma: np.ndarray,
    attention: np.ndarray | None,
    dt: float,
    max_keyframes: int,
) -> list[Keyframe]:
    """One keyframe per segment: its most representative lit frame clear of transitions, scored by
    the segment's share of the video, how representative the frame is and the model's attention;
    the best `max_keyframes` of them, in time order."""
    idx = np.asarray(indices)
    att = None
    if attention is not None and len(attention) == len(indices) and np.isfinite(attention).all():
        att = np.asarray(attention, np.float64)
        att = att / max(float(att.mean()), 1e-9)
    dark = _is_dark(luma)
    picks: list[tuple[int, int, float]] = []  # (segment, sample, raw score)
    total = max(1e-6, sum(s.end_s - s.start_s for s in segments))
    for si, seg in enumerate(segments):
        members = np.nonzero((idx >= seg.start_index) & (idx <= seg.end_index))[0]
        if len(members) == 0:
            continue
        # Stay clear of the segment's ends, where a gradual transition is still under way.
        margin_s = min(_TRANSITION_S * 0.6, (seg.end_s - seg.start_s) / 3)
        lo = seg.start_s + (margin_s if si > 0 else 0.0)
        hi = seg.end_s - (margin_s if si + 1 < len(segments) else 0.0)
        clean = members[(ts[members] >= lo) & (ts[members] <= hi)]
        if len(clean) == 0:
            clean = members
        lit = clean[~dark[clean]]
        if len(lit) == 0:
            continue  # an all-black segment: nothing worth showing
        # The medoid: the frame most like the rest of the segment, i.e. most representative.
        sub = d[np.ix_(lit, lit)]
        typical = sub.mean(1)
        centre = 0.5 * (lo + hi)
        # Prefer the middle among near-equals: farthest from any transition.
        closeness = np.abs(ts[lit] - centre) / max(hi - lo, dt)
        k = int(np.argmin(typical + 0.05 * closeness))
        best = int(lit[k])
        share = (seg.end_s - seg.start_s) / total
        represent = 1.0 - float(typical[k])
        focus = float(np.clip(att[members].mean(), 0, 2) / 2) if att is not None else 0.5
        picks.append((si, best, 0.5 * min(1.0, share * len(segments)) + 0.3 * represent + 0.2 * focus))
    if len(picks) > max_keyframes:
        picks = sorted(picks, key=lambda p: -p[2])[:max_keyframes]
    picks.sort(key=lambda p: p[1])
    return [
        Keyframe(int(idx[s]), round(float(ts[s]), 4), round(float(np.clip(sc, 0.0, 1.0)), 4), si)
        for si, s, sc in picks
    ]


# ---------------------------------------------------------------------------------------- thumbnails


def jpeg_data_uri(path: str | Path | BinaryIO, info: VideoInfo, index: int, max_side: int = 256) -> str:
    """A small JPEG of frame `index` at the displayed aspect ratio, as a data URI (PyAV's mjpeg)."""
    scale = max_side / max(info.width, info.height)
    # Even dimensions: yuvj420p subsamples chroma by two.
    w = max(2, round(info.width * min(1.0, scale) / 2) * 2)
    h = max(2, round(info.height * min(1.0, scale) / 2) * 2)
    rgb = read_frames(path, info, [index], size=(h, w))[0]
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = w, h, "yuvj420p"
    codec.time_base = Fraction(1, 25)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuvj420p")
    packets = codec.encode(frame) + codec.encode(None)
    data = b"".join(bytes(p) for p in packets)
    if not data:
        raise VideoDecodeError(f"frame {index} could not be encoded as JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
