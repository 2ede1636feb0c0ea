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
from models import synthetic


def quiet_av() -> None:
    import av

    av.logging.set_level(av.logging.ERROR)


def synthetic_clip(job: tuple[int, int, int, float]) -> tuple[np.ndarray, int]:
    seed, frames, size, encoded_share = job
    try:
        return synthetic.make_clip(seed, frames, (size, size), encoded_share)
    except (F.VideoDecodeError, av.error.FFmpegError) as exc:
        # A rare encoder/decoder failure on one clip must not end an hour-long run: the
        # same clip rendered without the codec keeps the seed's label and content.
        print(f"clip {seed}: codec round trip failed ({exc}); using the unencoded render", file=sys.stderr)
        return synthetic.make_clip(seed, frames, (size, size), 0.0)


def folder_clip(job: tuple[str, int, int, str]) -> np.ndarray | None:
    path, frames, size, policy = job
    try:
        return F.sample_frames(path, frames, (size, size), policy=policy, threads=1).frames
    except F.VideoDecodeError as exc:
        print(f"skipping {path}: {exc}", file=sys.stderr)
        return None
