"""Which frames a model sees: every sampling plan of the project, kept apart from decoding.

Plans are lists of frame indices (0-based, presentation order) computed from a video's
index (models.frames.VideoInfo) alone; models.frames decodes whatever a plan asks for.
Serving (/classify clips and timeline windows, /summarize), the OIP-free benchmarks and
training on a folder of videos all plan here, so a model is trained on clips taken the way
it is later served (no train/serve skew). As torchcodec's samplers: plan first, decode after.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from models.manifest import SamplingPolicy

if TYPE_CHECKING:
    from models.frames import VideoInfo

UNIFORM = SamplingPolicy()


# ---------------------------------------------------------------- one clip


def uniform_indices(
    info: VideoInfo, num_frames: int, start_s: float = 0.0, end_s: float | None = None
) -> list[int]:
    """The frames on screen at the middle of `num_frames` equal parts of [start_s, end_s)."""
    end = info.duration_s if end_s is None else min(end_s, info.duration_s)
    start = max(0.0, min(start_s, end))
    step = (end - start) / num_frames
    return [info.index_at(start + (i + 0.5) * step) for i in range(num_frames)]


def clip_indices(
    info: VideoInfo,
    num_frames: int,
    policy: SamplingPolicy | None = None,
    start_s: float = 0.0,
    end_s: float | None = None,
) -> list[int]:
    """T frame indices of one clip taken from [start_s, end_s) by the model's sampling policy.

    uniform: the middle of T equal parts of the window. stride: T frames `stride` frames
    apart, centred on the window's middle. fps: T frames 1/fps seconds apart, centred on the
    window's middle. A stride or fps clip longer than the video repeats its first and last
    frames (clamped), as decoders of such models pad a short video.
    """
    policy = policy or UNIFORM
    if policy.policy == "uniform":
        return uniform_indices(info, num_frames, start_s, end_s)
    end = info.duration_s if end_s is None else min(end_s, info.duration_s)
    start = max(0.0, min(start_s, end))
    middle = (start + end) / 2
    last = info.frame_count - 1
    if policy.policy == "stride":
        assert policy.stride is not None
        centre = info.index_at(middle)
        first = centre - (policy.stride * (num_frames - 1)) // 2
        return [max(0, min(last, first + i * policy.stride)) for i in range(num_frames)]
    assert policy.fps is not None
    step = 1.0 / policy.fps
    return [info.index_at(max(0.0, middle + (i - (num_frames - 1) / 2) * step)) for i in range(num_frames)]


# ---------------------------------------------------------------- /classify


def plan_clips(
    info: VideoInfo, num_frames: int, clip_window_s: float, max_clips: int, policy: SamplingPolicy | None = None
) -> list[list[int]]:
    """Frame indices of each clip: one clip, or several over equal parts of a long video.

    T frames spread over a long video are far apart, and short motions fall between them;
    several clips each see their own part densely enough (multi-clip testing).
    """
    n = 1 if info.duration_s <= clip_window_s else min(max_clips, math.ceil(info.duration_s / clip_window_s))
    part = info.duration_s / n
    return [clip_indices(info, num_frames, policy, k * part, (k + 1) * part) for k in range(n)]


def plan_windows(duration_s: float, window_s: float, max_windows: int) -> list[tuple[float, float]]:
    """Half-overlapping timeline windows over the video: at least `window_s` long, at most `max_windows`."""
    win = min(duration_s, max(window_s, 2 * duration_s / (max_windows + 1)))
    stride = win / 2
    n = 1 if win >= duration_s else math.ceil((duration_s - win) / stride - 1e-9) + 1
    return [(min(k * stride, duration_s - win), min(k * stride, duration_s - win) + win) for k in range(n)]


def window_clips(
    info: VideoInfo, windows: list[tuple[float, float]], num_frames: int, policy: SamplingPolicy | None = None
) -> list[list[int]]:
    """One clip per timeline window."""
    return [clip_indices(info, num_frames, policy, a, b) for a, b in windows]


# ---------------------------------------------------------------- /summarize


def plan_summary_indices(info: VideoInfo, fps: float, max_frames: int) -> list[int]:
    """Frames to decode for a summary: ~`fps` per second over the whole video, at most `max_frames`."""
    n = max(1, min(int(max_frames), math.ceil(info.duration_s * max(fps, 1e-6))))
    n = min(n, info.frame_count)
    step = info.duration_s / n
    return sorted({info.index_at((k + 0.5) * step) for k in range(n)})


def chunk_indices(indices: list[int], num_frames: int) -> list[list[int]]:
    """Consecutive groups of T indices; the last one padded by repeating its last frame."""
    chunks = [indices[i : i + num_frames] for i in range(0, len(indices), num_frames)]
    if chunks and len(chunks[-1]) < num_frames:
        chunks[-1] = chunks[-1] + [chunks[-1][-1]] * (num_frames - len(chunks[-1]))
    return chunks


# ---------------------------------------------------------------- training on a folder


# What the service uses by default (CLIP_WINDOW_S, MAX_CLIPS); training uses the same values
# so that a long training video yields the clips /classify would take from it.
DEFAULT_CLIP_WINDOW_S = 10.0
DEFAULT_MAX_CLIPS = 4


def plan_training_clips(
    info: VideoInfo,
    num_frames: int,
    policy: SamplingPolicy | None = None,
    clip_window_s: float = DEFAULT_CLIP_WINDOW_S,
    max_clips: int = DEFAULT_MAX_CLIPS,
) -> list[list[int]]:
    """The clips a labelled video of a training folder contributes: exactly /classify's clips.

    A video of 40 s served as four 10 s clips was trained, before, as one clip of T frames
    spread over 40 s: a model never shown the sampling density it is served with. Now each
    serving clip is a training example with the video's label.
    """
    return plan_clips(info, num_frames, clip_window_s, max_clips, policy)
