"""Pre- and post-processing around the model, kept apart from HTTP: pure functions.

Preprocess: plan which frames each clip uses, decode them once, normalize.
Postprocess: softmax labels, per-frame attention, keyframes, timeline segments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models import sampling
from models.frames import DecodeOptions, VideoInfo
from models.manifest import ModelManifest
from models.preprocess import Preprocessing

# ---------------------------------------------------------------- planning (models.sampling owns it)

plan_clips = sampling.plan_clips
plan_windows = sampling.plan_windows
chunk_indices = sampling.chunk_indices


# ---------------------------------------------------------------- preprocess


def decode_clips(
    path: Path, info: VideoInfo, clips: list[list[int]], manifest: ModelManifest, options: DecodeOptions
) -> tuple[np.ndarray, np.ndarray]:
    """Decode every distinct frame once -> (uint8 [N, T, H, W, 3], float32 [N, T, 3, H, W]),
    preprocessed as the manifest says (models.preprocess)."""
    return Preprocessing.from_manifest(manifest).decode_clips(path, info, clips, options)


# ---------------------------------------------------------------- postprocess


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def finite(x: float) -> float:
    """JSON has no NaN or Infinity: a non-finite model output becomes 0."""
    return float(x) if math.isfinite(x) else 0.0


def top_labels(probs: np.ndarray, labels: list[str], k: int) -> list[dict]:
    order = np.argsort(-probs, kind="stable")[:k]
    return [{"label": labels[i], "score": finite(probs[i])} for i in order]


@dataclass(frozen=True)
class FrameScore:
    index: int
    timestamp_s: float
    attention: float


def frame_attention(info: VideoInfo, clips: list[list[int]], attention: np.ndarray) -> list[FrameScore]:
    """Per-frame attention over every frame the model saw, summing to 1 over the list.

    Each clip's row sums to 1, so rows are weighted 1/N; a frame seen twice (short videos
    repeat frames) is listed once with its attention summed.
    """
    att = np.nan_to_num(np.clip(attention.astype(np.float64), 0, None))
    totals: dict[int, float] = {}
    for clip, row in zip(clips, att, strict=True):
        row_sum = row.sum()
        weights = row / row_sum if row_sum > 0 else np.full(len(row), 1.0 / len(row))
        for index, w in zip(clip, weights, strict=True):
            totals[index] = totals.get(index, 0.0) + float(w) / len(clips)
    total = sum(totals.values()) or 1.0
    return [FrameScore(i, info.timestamp(i), totals[i] / total) for i in sorted(totals)]


def keyframes(frames: list[FrameScore], k: int) -> list[int]:
    """The k most-attended frames, in time order (ties go to the earlier frame).

    A frame with less than half the uniform share of attention (1 / 2N) is not one the model
    attended to, even when fewer than k frames are left: an image model that sees its object
    in two of eight frames (the rest grey or black) names those two. The best one always stays.
    """
    best = sorted(frames, key=lambda f: (-f.attention, f.index))[: max(1, k)]
    floor = 0.5 / max(1, len(frames))
    return sorted(f.index for i, f in enumerate(best) if i == 0 or f.attention >= floor)


def timeline(
    windows: list[tuple[float, float]], probs: np.ndarray, duration_s: float, labels: list[str], k: int
) -> list[dict]:
    """Consecutive segments covering [0, duration]: each window owns the span nearest its center,
    and neighbours with the same top label merge (their probabilities averaged by length)."""
    centers = [(a + b) / 2 for a, b in windows]
    cuts = [0.0] + [(centers[i] + centers[i + 1]) / 2 for i in range(len(centers) - 1)] + [duration_s]
    return merge_spans([(cuts[i], cuts[i + 1], p) for i, p in enumerate(probs)], labels, k)


def merge_spans(spans: list[tuple[float, float, np.ndarray]], labels: list[str], k: int) -> list[dict]:
    """API.md's timeline from consecutive (start, end, probabilities) spans: neighbours with the same
    top label merge, a merged segment's probabilities averaged by length; top-k labels each."""
    segments: list[dict] = []
    for start, end, p in spans:
        top = int(np.argmax(p))
        if segments and segments[-1]["_top"] == top:
            seg = segments[-1]
            seg["end_s"] = end
            seg["_sum"] = seg["_sum"] + p * (end - start)
        else:
            segments.append({"start_s": start, "end_s": end, "_top": top, "_sum": p * (end - start)})
    out = []
    for seg in segments:
        length = seg["end_s"] - seg["start_s"]
        mean = seg["_sum"] / length if length > 0 else seg["_sum"]
        labels_k = top_labels(mean, labels, k)
        out.append({"start_s": finite(seg["start_s"]), "end_s": finite(seg["end_s"]), "labels": labels_k})
    return out
