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
- Two parts of one photo or place (same colours, same textures) joined by a dissolve or a wipe
  barely move these statistics. When every frame's signature is at hand (service.shots), a
  weaker peak (down to _GHOST_MIN_SCORE) still counts if the frames in it are a blend: they
  match neither neighbour at any small shift, far more than the shot's own motion leaves
  unexplained (service.shots.ghost_ratio).
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np

from models.cancel import CancelToken
from models.frames import VideoDecodeError, VideoInfo, read_frames
from models.sampling import plan_summary_indices  # noqa: F401  (its home is models.sampling)
from service import shots

# The service's defaults (SUMMARIZE_FPS, SUMMARIZE_MAX_FRAMES) and the scene benchmark's:
# 4 fps puts 2 samples inside a 0.5 s transition, which the cut scores see across a skip
# (BENCHMARKS.md: F1 0.98 over hard cuts, crossfades and fades at 4 fps).
DEFAULT_SUMMARY_FPS = 4.0
DEFAULT_SUMMARY_MAX_FRAMES = 256  # long videos: sample sparser rather than decode without bound
# Up to this many frames every frame is decoded once for its signature (service.shots: cuts to the
# frame, short shots); beyond it only the samples are. 9,000 = 5 minutes at 30 fps.
DEFAULT_SUMMARY_DENSE_MAX_FRAMES = 9000

# Relative weights of the per-feature distances (each already on a 0..1 scale).
_WEIGHTS = {"color": 1.0, "luma": 0.5, "texture": 0.75, "thumb": 0.25, "layout": 0.75, "embed": 0.25}
_LAYOUT_LAG = 6  # samples apart up to which the layout is compared motion-tolerantly
_TRANSITION_S = 0.75  # the longest gradual transition we expect to skip over (0.5 s blend + a hold)
_DARK = 0.06  # mean luma below which a frame is (nearly) black: never a keyframe
# The least a transition must change the picture beyond what the video changes by itself over the
# same time (combined distance, 0..1): about "a tenth of the colours or the layout is different".
_MIN_SCORE = 0.12
# A gradual transition may score down to this when the frames of every frame's signature show a
# blend there (service.shots.ghost_ratio at least _GHOST_RATIO): two shots of the same colours and
# textures (two parts of one photo, the same place from elsewhere) change the statistics little.
_GHOST_MIN_SCORE = 0.06
_GHOST_RATIO = 2.0
_MIN_SEGMENT_S = 0.6  # shorter than a glance: not a part of the video worth a keyframe
_MIN_SHOT_S = 0.2  # ... unless hard cuts bound it on both sides: an editor's short shot


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
    h, w = x.shape[1:3]
    fh, fw = max(1, h // out), max(1, w // out)
    x = x[:, : fh * out, : fw * out]
    # Rows then columns, as sums of strided slices (one add per pixel): a third of the time of one
    # mean over two small axes.
    rows = x[:, 0::fh].astype(np.float32)
    for i in range(1, fh):
        rows += x[:, i::fh]
    y = rows[:, :, 0::fw].copy()
    for j in range(1, fw):
        y += rows[:, :, j::fw]
    return y * np.float32(1.0 / (fh * fw))


def _row_counts(codes: np.ndarray, bins: int) -> np.ndarray:
    """Histogram of each row of integer codes in [0, bins): one bincount for all rows."""
    n = len(codes)
    offsets = (np.arange(n, dtype=np.int64) * bins)[:, None]
    return np.bincount((codes + offsets).ravel(), minlength=n * bins).astype(np.float32).reshape(n, bins)


def _pairwise_l1(v: np.ndarray, mean: bool = False) -> np.ndarray:
    """Sum (or mean) of absolute differences between all pairs of rows of `v` [N, K]: one row
    against the rows after it at a time, mirrored (a quarter of the time of an [N, N, K] array)."""
    n = len(v)
    out = np.zeros((n, n), np.result_type(v.dtype, np.float32))
    scratch = np.empty((max(0, n - 1), v.shape[1]), out.dtype)
    for i in range(n - 1):
        diff = scratch[: n - i - 1]
        np.subtract(v[i + 1 :], v[i], out=diff)
        np.abs(diff, out=diff)
        out[i, i + 1 :] = diff.mean(1) if mean else diff.sum(1)
    return out + out.T


def _tv_matrix(p: np.ndarray) -> np.ndarray:
    """Total-variation distance (half L1, in [0,1]) between all pairs of rows of `p` (rows sum to 1)."""
    return 0.5 * _pairwise_l1(p)


def _distance_matrices(frames: np.ndarray, embeddings: np.ndarray | None) -> dict[str, np.ndarray]:
    x = frames.astype(np.float32) * (1.0 / 255.0)
    n = len(x)
    # A 2x2 blur before quantizing keeps grain from flipping pixels between histogram bins.
    small = _pool(x, 32) if min(x.shape[1:3]) >= 32 else x
    q = np.clip((small * 4).astype(np.int32), 0, 3)
    code = (q[..., 0] * 16 + q[..., 1] * 4 + q[..., 2]).reshape(n, -1)
    color = _row_counts(code, 64)
    color /= color.sum(1, keepdims=True)

    luma = x @ np.asarray([0.299, 0.587, 0.114], np.float32)
    lq = np.clip((_pool(luma[..., None], 32)[..., 0] * 16).astype(np.int32), 0, 15).reshape(n, -1)
    lhist = _row_counts(lq, 16)
    lhist /= lhist.sum(1, keepdims=True)

    # Texture: how much edge energy at which strength and in which direction. A pan or a moving
    # object keeps these nearly constant; a different scene rarely does.
    gx = np.abs(np.diff(luma, axis=2))[:, :-1, :]
    gy = np.abs(np.diff(luma, axis=1))[:, :, :-1]
    mag = np.sqrt(gx**2 + gy**2)
    # Magnitude bins [0, .01), [.01, .02), ... [.32, inf), from how many pixels reach each inner
    # edge (six comparisons and counts cost less than a binary search per pixel).
    flat_mag = mag.reshape(n, -1)
    reach = np.stack([np.count_nonzero(flat_mag >= np.float32(e), axis=1)
                      for e in (0.0, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32)], 1)
    mhist = (reach - np.concatenate([reach[:, 1:], np.zeros((n, 1), reach.dtype)], 1)).astype(np.float32)
    mhist /= mhist.sum(1, keepdims=True)
    energy = np.stack([gx.mean((1, 2)), gy.mean((1, 2))], 1)
    orient = energy / np.maximum(energy.sum(1, keepdims=True), 1e-6)
    texture = np.concatenate([mhist * 0.75, orient * 0.25], 1)

    # The 8x8 thumbnail from the 32x32 pooling when that is an exact area average of it.
    exact = small is not x and x.shape[1] % 32 == 0 and x.shape[2] % 32 == 0
    thumb = (_pool(small, 8) if exact else _pool(x, 8)).reshape(n, -1)
    # Layout: 16x16 luma (mean taken out), compared at the best of small shifts for samples up to
    # _LAYOUT_LAG apart, so a pan or a moving object inside a shot changes it little while another
    # picture of the same colours (another shot of the same place) changes it a lot.
    lum = _pool(luma[..., None], 16)[..., 0] if min(luma.shape[1:]) >= 16 else luma
    lum = lum - lum.mean(axis=(1, 2), keepdims=True)
    flat = lum.reshape(n, -1)
    layout = _pairwise_l1(flat, mean=True)
    for lag in range(1, min(_LAYOUT_LAG, n - 1) + 1):
        near = _shifted_mad(lum[:-lag], lum[lag:])
        ii = np.arange(n - lag)
        layout[ii, ii + lag] = layout[ii + lag, ii] = near
    dists = {
        "color": _tv_matrix(color),
        "luma": _tv_matrix(lhist),
        "texture": _tv_matrix(texture),
        # Mean absolute difference of 8x8 thumbnails; x3 puts a clearly different picture near 1.
        "thumb": np.minimum(1.0, 3.0 * _pairwise_l1(thumb, mean=True)),
        "layout": np.minimum(1.0, 6.0 * layout),
    }
    if embeddings is not None and len(embeddings) == n and np.isfinite(embeddings).all():
        e = embeddings.astype(np.float32).reshape(n, -1)
        e /= np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-6)
        dists["embed"] = np.clip((1.0 - e @ e.T) * 0.5, 0.0, 1.0)
    return dists


def _shifted_mad(a: np.ndarray, b: np.ndarray, shift: int = 2) -> np.ndarray:
    """Mean absolute difference of pairs a[k], b[k] ([M,S,S]) at the best shift of up to `shift`."""
    s = shift
    size = a.shape[1]
    core = a[:, s : size - s, s : size - s].reshape(len(a), -1)
    best = np.full(len(a), np.inf, np.float32)
    for dy in range(-s, s + 1):
        for dx in range(-s, s + 1):
            moved = b[:, s + dy : size - s + dy, s + dx : size - s + dx].reshape(len(b), -1)
            np.minimum(best, np.abs(core - moved).sum(axis=1), out=best)
    return best / core.shape[1]


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
    best = np.full(max(0, n - 1), -1.0)
    # Every gap at once for each skip h (a loop over gaps costs more in Python than in arithmetic).
    for h in range(skip_max + 1):
        g = np.arange(h, n - 1 - h)  # the gaps whose skip h stays inside the video
        if len(g) == 0:
            break
        a, b = g - h, g + 1 + h
        # Two frames on each side: one noisy frame must not make (or hide) a transition. The
        # median of the 1, 2 or 4 distances there (a frame before the first or after the last has none).
        pairs = np.full((len(g), 4), np.nan, np.result_type(d.dtype, np.float32))
        pairs[:, 0] = d[a, b]
        has_l, has_r = a >= 1, b + 1 < n
        pairs[has_l, 1] = d[a[has_l] - 1, b[has_l]]
        pairs[has_r, 2] = d[a[has_r], b[has_r] + 1]
        both = has_l & has_r
        pairs[both, 3] = d[a[both] - 1, b[both] + 1]
        ranked = np.sort(pairs, axis=1)  # NaNs last
        count = (~np.isnan(pairs)).sum(axis=1)
        cross = np.where(count == 4, (ranked[:, 1] + ranked[:, 2]) / 2,
                         np.where(count == 2, (ranked[:, 0] + ranked[:, 1]) / 2, ranked[:, 0]))
        total[g] = np.maximum(total[g], cross)
        gain = cross - base[2 * h + 1]
        better = gain > best[g]  # strictly: the smallest skip wins a tie
        best[g[better]] = gain[better]
        best_skip[g[better]] = h
    score[:] = np.maximum(best, 0.0)
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


def _merge_similar(d: np.ndarray, cuts: list[int], margin: int, dark: np.ndarray, reach: int,
                   fixed: set[int] | frozenset[int] = frozenset()) -> list[int]:
    """Drop cuts whose two sides' clean parts (up to `reach` samples each, next to the cut) are not
    clearly farther apart than each side is from itself: the weakest first, re-checking its new
    neighbours. Black frames (a fade's) are not part of either side's picture, and a fade through
    black is an edit by itself: kept, as are the `fixed` cuts (found to the frame elsewhere)."""
    cuts = list(cuts)
    n = len(d)
    faded = {c for c in cuts if dark[max(0, c - 2 * margin) : c + 2 * margin + 2].any()} | set(fixed)
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
    *,
    dense: shots.Dense | None = None,
    frame_times: Sequence[float] | None = None,
) -> tuple[list[Segment], list[Keyframe]]:
    """Cut the sampled video into segments and pick at most `max_keyframes` keyframes, in time order.

    `frames` are uint8 [N,H,W,3] of the frames at `indices` (at `timestamps`), `embeddings` [N,D] and
    `attention` [N] the model's outputs for them. `dense` (service.shots.decode_dense): signatures of
    every frame, which place hard cuts to the frame and find shots too short for the samples;
    `frame_times`: the timestamp of every frame of the video (its index), for exact boundaries.
    """
    n = len(indices)
    duration_s = float(duration_s)
    fps = frame_count / duration_s if duration_s > 0 else 25.0
    if n == 0:
        return [Segment(0.0, duration_s, 0, max(0, frame_count - 1))], []
    ts = np.asarray(timestamps, np.float64)
    idx = np.asarray(indices)
    times = np.asarray(frame_times, np.float64) if frame_times is not None and len(frame_times) == frame_count else None

    def frame_at(t: float) -> int:
        if times is not None:
            return int(np.clip(np.searchsorted(times, t, side="left"), 0, frame_count - 1))
        return int(np.clip(round(t * fps), 0, frame_count - 1))

    def time_of(frame: int) -> float:
        return float(times[frame]) if times is not None else frame / fps

    # The mean spacing: sampling a 25 fps video at 8 fps alternates 0.12 s and 0.16 s steps.
    dt = float(ts[-1] - ts[0]) / (n - 1) if n > 1 else duration_s
    dt = max(dt, 1e-3)
    skip_max = max(1, math.ceil(_TRANSITION_S / 2 / dt - 0.1))  # -0.1: float noise must not add one

    d = _combine(_distance_matrices(frames, embeddings)) if n > 1 else np.zeros((1, 1), np.float32)
    luma = frames.astype(np.float32).mean(axis=(1, 2, 3)) / 255.0

    # Hard cuts to the frame from every frame's signature (service.shots), when there are some.
    dense_f = shots.features(dense.signatures) if dense is not None and len(dense.indices) >= 3 else None
    dense_cuts = shots.hard_cuts(dense, dense_f) if dense is not None else []
    # The gap (between samples g and g+1) that holds each dense cut; -1 before the first sample.
    dense_gap = {c: int(np.searchsorted(idx, c, side="left")) - 1 for c in dense_cuts}
    boundaries: list[tuple[int, bool]] = []  # (first frame of the new segment, hard cut?)
    if n > 2:
        score, best_skip, total = _gap_scores(d, skip_max)
        reach = max(2, math.ceil(1.0 / dt))  # compare up to a second of each side
        dark = _is_dark(luma)
        if dense is not None:
            hard = sorted({g for g in dense_gap.values() if 0 <= g < n - 1})
            near = skip_max + 1  # the skip score of a cut's gap and its neighbours is that cut's
        else:
            # Every test below is relative to the video's own change at the same lag (the medians
            # subtracted), plus an absolute floor: a visibly different picture.
            # Hard cuts: one sample pair changes far more than its neighbours (a blend spreads its
            # change over several pairs, so it never looks like this), and that one step is most of
            # the change across the gap at any skip (one step of a blend is only a part of it).
            adjacent = np.diagonal(d, offset=1)
            step = adjacent - float(np.median(adjacent))
            hard = [
                g
                for g in range(n - 1)
                if step[g] >= _MIN_SCORE
                and adjacent[g] >= 0.75 * total[g]
                and step[g] >= 2.0 * max(step[g - 1] if g else 0.0, step[g + 1] if g + 2 < n else 0.0, 0.0)
            ]
            # A noisy shot can make one step jump; only hard cuts whose sides really differ may
            # overrule a gradual transition nearby.
            hard = _merge_similar(d, hard, margin=skip_max, dark=dark, reach=reach)
            near = 2 * skip_max
        # Gradual transitions: peaks of the skip score away from the hard cuts.
        low = _MIN_SCORE if dense_f is None else _GHOST_MIN_SCORE

        seen: dict[int, bool] = {}
        ghost_cache = np.full(len(dense.indices), np.nan, np.float32) if dense_f is not None else None  # type: ignore[union-attr]

        def blended(g: int) -> bool:
            """Does every frame's signature show a blend in the gap's transition span?"""
            if dense_f is None:
                return False
            if g not in seen:
                h = int(best_skip[g])
                first, last = int(idx[max(0, g - h)]), int(idx[min(n - 1, g + 1 + h)])
                seen[g] = shots.ghost_ratio(dense, dense_f, first, last, fps, ghost_cache) >= _GHOST_RATIO  # type: ignore[arg-type]
            return seen[g]

        gradual = [
            g
            for g in _pick_peaks(score, radius=2 * skip_max, threshold=low)
            if all(abs(g - c) > near for c in hard) and (score[g] >= _MIN_SCORE or blended(g))
        ]
        cuts = sorted(set(hard + gradual))
        cuts = _join_fades(cuts, luma, ts)
        fixed = set(hard) if dense is not None else set()
        # A blend seen frame by frame is an edit whatever the two sides' statistics say (the
        # similarity merge below is for peaks that motion inside one shot can make).
        blends = {g for g in gradual if blended(g)}
        cuts = _merge_similar(d, cuts, margin=skip_max, dark=dark, reach=reach, fixed=fixed | blends)
        if dense is not None:
            kept = set(cuts)
            boundaries += [(c, True) for c, g in dense_gap.items() if g in kept or not 0 <= g < n - 1]
            cuts = [g for g in cuts if g not in fixed]
            hard = []
        cuts = sorted({g if g in hard else _settle(g, int(best_skip[g]), luma) for g in cuts})
        boundaries += [(frame_at(0.5 * (ts[g] + ts[g + 1])), g in hard) for g in cuts]
        strength = {frame_at(0.5 * (ts[g] + ts[g + 1])): float(score[g]) for g in cuts}
    else:
        boundaries += [(c, True) for c in dense_cuts]
        strength = {}
    starts = _drop_short(sorted(boundaries), strength, time_of, duration_s)

    segments = []
    for i, start in enumerate(starts):
        end = starts[i + 1] - 1 if i + 1 < len(starts) else frame_count - 1
        start_s = 0.0 if i == 0 else time_of(start)
        end_s = duration_s if i + 1 == len(starts) else time_of(starts[i + 1])
        segments.append(Segment(round(start_s, 4), round(end_s, 4), int(start), int(max(start, end))))
    hard_starts = {b for b, h in boundaries if h}
    sig_luma = None
    if dense is not None and len(dense.indices):
        sig_luma = (dict(zip(dense.indices.tolist(), dense.signatures.mean(axis=(1, 2, 3)) / 255.0)))
    keyframes = _keyframes(segments, indices, ts, d, luma, attention, dt, max_keyframes, hard_starts, time_of,
                           sig_luma)
    return segments, keyframes


def _drop_short(boundaries: list[tuple[int, bool]], strength: dict[int, float],
                time_of: Callable[[int], float], duration_s: float) -> list[int]:
    """First frames of the segments. A "segment" shorter than _MIN_SEGMENT_S with a gradual
    boundary is a transition's remnant, not a part of the video a viewer would name: drop its
    weaker gradual boundary, the shortest first. Between two hard cuts a shot may be as short as
    _MIN_SHOT_S (cuts to the frame: a 0.3 s shot is an editor's choice, not noise)."""
    cuts: list[tuple[int, bool]] = []
    for b, hard in sorted(boundaries):
        if b <= 0:
            continue
        if cuts and cuts[-1][0] == b:
            cuts[-1] = (b, cuts[-1][1] or hard)
        else:
            cuts.append((b, hard))
    while cuts:
        edges = [0.0, *[time_of(b) for b, _ in cuts], duration_s]
        lengths = np.diff(edges)
        hard = [h for _, h in cuts]
        # Segment i lies between cut i-1 and cut i (the video's ends are neither).
        need = np.asarray([
            _MIN_SHOT_S if all(hard[j] for j in (i - 1, i) if 0 <= j < len(cuts)) else _MIN_SEGMENT_S
            for i in range(len(lengths))
        ])
        short = lengths - need
        i = int(np.argmin(short))
        if short[i] >= 0:
            break
        # Remove the weaker of its bounds, a gradual one first.
        sides = [j for j in (i - 1, i) if 0 <= j < len(cuts)]
        cuts.pop(min(sides, key=lambda j: (cuts[j][1], strength.get(cuts[j][0], 1.0))))
    return [0, *[b for b, _ in cuts]]


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
    hard_starts: set[int] = frozenset(),  # type: ignore[assignment]
    time_of: Callable[[int], float] | None = None,
    sig_luma: dict[int, float] | None = None,
) -> list[Keyframe]:
    """One keyframe for every segment: its most representative lit frame clear of transitions,
    scored by the segment's share of the video, how representative the frame is and the model's
    attention. When there are more segments than `max_keyframes`, the most distinct segments keep
    theirs (API.md): the best-scored first, then each time the one least like those already kept.
    In time order."""
    idx = np.asarray(indices)
    att = None
    if attention is not None and len(attention) == len(indices) and np.isfinite(attention).all():
        att = np.asarray(attention, np.float64)
        att = att / max(float(att.mean()), 1e-9)
    dark = _is_dark(luma)
    picks: list[tuple[int, int, float, int]] = []  # (segment, frame index, score, sample or -1)
    total = max(1e-6, sum(s.end_s - s.start_s for s in segments))
    for si, seg in enumerate(segments):
        length = seg.end_s - seg.start_s
        share = length / total
        members = np.nonzero((idx >= seg.start_index) & (idx <= seg.end_index))[0]
        # Stay clear of the segment's ends, where a gradual transition may still be under way; a
        # hard cut's side needs only a frame's clearance.
        soft = min(_TRANSITION_S * 0.6, length / 3)
        firm = min(0.05, length / 4)
        lo = seg.start_s + (0.0 if si == 0 else firm if seg.start_index in hard_starts else soft)
        last = si + 1 == len(segments)
        hi = seg.end_s - (0.0 if last else firm if segments[si + 1].start_index in hard_starts else soft)
        clean = members[(ts[members] >= lo) & (ts[members] <= hi)] if len(members) else members
        if len(clean) == 0 and sig_luma is None:
            clean = members
        if len(clean) == 0:
            # A shot too short for a sample clear of its ends: its middle frame (the signatures of
            # every frame showed the shot, so the frame is in it).
            mid = (seg.start_index + seg.end_index) // 2
            picks.append((si, mid, 0.5 * min(1.0, share * len(segments)) + 0.15 + 0.1, -1))
            continue
        lit = clean[~dark[clean]]
        if len(lit) == 0:
            lit = clean[[int(np.argmax(luma[clean]))]]  # all dark: its brightest frame
        # The medoid: the frame most like the rest of the segment, i.e. most representative.
        sub = d[np.ix_(lit, lit)]
        typical = sub.mean(1)
        centre = 0.5 * (lo + hi)
        # Prefer the middle among near-equals: farthest from any transition.
        closeness = np.abs(ts[lit] - centre) / max(hi - lo, dt)
        k = int(np.argmin(typical + 0.05 * closeness))
        best = int(lit[k])
        represent = 1.0 - float(typical[k])
        focus = float(np.clip(att[members].mean(), 0, 2) / 2) if att is not None else 0.5
        picks.append((si, int(idx[best]), 0.5 * min(1.0, share * len(segments)) + 0.3 * represent + 0.2 * focus,
                      best))
    if len(picks) > max_keyframes:
        picks = _most_distinct(picks, d, max_keyframes)
    picks.sort(key=lambda p: p[1])
    out = []
    for si, frame, sc, sample in picks:
        t = float(ts[sample]) if sample >= 0 else (time_of(frame) if time_of is not None else segments[si].start_s)
        out.append(Keyframe(int(frame), round(t, 4), round(float(np.clip(sc, 0.0, 1.0)), 4), si))
    return out


Pick = tuple[int, int, float, int]  # (segment, frame index, score, sample or -1)


def _most_distinct(picks: list[Pick], d: np.ndarray, k: int) -> list[Pick]:
    """k of the picks: the best-scored, then repeatedly the one farthest (in picture distance) from
    all kept so far, its score breaking near-ties. A pick without a sample counts as mid-distant."""
    order = sorted(range(len(picks)), key=lambda i: -picks[i][2])
    kept = [order[0]]
    rest = order[1:]
    while len(kept) < k and rest:
        def gain(i: int) -> float:
            si = picks[i][3]
            near = min(
                float(d[si, picks[j][3]]) if si >= 0 and picks[j][3] >= 0 else 0.5 for j in kept
            )
            return near + 0.25 * picks[i][2]
        best = max(rest, key=gain)
        kept.append(best)
        rest.remove(best)
    return [picks[i] for i in kept]


# ---------------------------------------------------------------------------------------- thumbnails


def jpeg_data_uri(
    path: str | Path | BinaryIO, info: VideoInfo, index: int, max_side: int = 256, *, cancel: CancelToken | None = None
) -> str:
    """A small JPEG of frame `index` at the displayed aspect ratio, as a data URI (PyAV's mjpeg)."""
    scale = max_side / max(info.width, info.height)
    # Even dimensions: yuvj420p subsamples chroma by two.
    w = max(2, round(info.width * min(1.0, scale) / 2) * 2)
    h = max(2, round(info.height * min(1.0, scale) / 2) * 2)
    rgb = read_frames(path, info, [index], size=(h, w), cancel=cancel)[0]
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = w, h, "yuvj420p"
    codec.time_base = Fraction(1, 25)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuvj420p")
    packets = codec.encode(frame) + codec.encode(None)
    data = b"".join(bytes(p) for p in packets)
    if not data:
        raise VideoDecodeError(f"frame {index} could not be encoded as JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
