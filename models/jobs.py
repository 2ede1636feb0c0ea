"""Worker-process jobs for building training caches.

They live in a torch-free module because the pool uses the spawn start method: a child
forked from a process that has loaded torch can spin forever in its thread runtime
(seen here: data generation stuck at 100% CPU), and spawned children should import only
what they need.
"""

from __future__ import annotations

import sys

import av
import numpy as np

from models import frames as F
from models import sampling, synthetic


def quiet_av() -> None:
    import av

    av.logging.set_level(av.logging.ERROR)


def synthetic_clip(job: tuple[int, int, int, float] | tuple[int, int, int, float, float, float],
                   ) -> tuple[np.ndarray, int, int, float]:
    """(frames, first label, second label, first label's share): a clip of one behaviour is
    (frames, y, y, 1.0). With a fifth and sixth item, change_share and crop_share, some clips
    change behaviour part-way and some show only part of a behaviour (synthetic.clip_kind)."""
    seed, frames, size, encoded_share = job[:4]
    change_share, crop_share = (job[4], job[5]) if len(job) > 5 else (0.0, 0.0)
    kind = synthetic.clip_kind(seed, change_share, crop_share)

    def make(share: float) -> tuple[np.ndarray, int, int, float]:
        if kind == "change":
            return synthetic.make_change_clip(seed, frames, (size, size), share, crop_share)
        make_one = synthetic.make_cropped_clip if kind == "crop" else synthetic.make_clip
        clip, y = make_one(seed, frames, (size, size), share)
        return clip, y, y, 1.0

    try:
        return make(encoded_share)
    except (F.VideoDecodeError, av.error.FFmpegError) as exc:
        # A rare encoder/decoder failure on one clip must not end an hour-long run: the
        # same clip rendered without the codec keeps the seed's label and content.
        print(f"clip {seed}: codec round trip failed ({exc}); using the unencoded render", file=sys.stderr)
        return make(0.0)


def folder_clip(job: tuple[str, int, int, str]) -> np.ndarray | None:
    """uint8 [clips, T, size, size, 3]: the clips /classify would take from the video
    (models.sampling.plan_training_clips), decoded exactly. None when it does not decode."""
    path, frames, size, policy = job
    try:
        info = F.probe_video(path)
        clips = sampling.plan_training_clips(info, frames)
        flat = [i for clip in clips for i in clip]
        decoded = F.read_frames(path, info, flat, (size, size), policy, threads=1)  # type: ignore[arg-type]
        return decoded.reshape(len(clips), frames, *decoded.shape[1:])
    except F.VideoDecodeError as exc:
        print(f"skipping {path}: {exc}", file=sys.stderr)
        return None
