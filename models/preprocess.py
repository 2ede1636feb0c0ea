"""A model's input preprocessing, read from its model.json alone: decode -> resize -> normalize.

Any model directory just works: T and the input size, the resize policy (stretch,
shorter_side_crop, letterbox, done in FFmpeg), the value range (`rescale`) and mean/std,
and the sampling policy all come from the manifest. Training and serving both use this.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from models.cancel import CancelToken
from models.frames import DecodeOptions, ResizePolicy, VideoInfo, normalize, read_frames_at
from models.manifest import ModelManifest, SamplingPolicy


@dataclass(frozen=True)
class Preprocessing:
    num_frames: int
    size: tuple[int, int]  # (H, W)
    resize: ResizePolicy
    resize_shorter: int | None
    rescale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    sampling: SamplingPolicy

    @classmethod
    def from_manifest(cls, m: ModelManifest) -> Preprocessing:
        return cls(
            num_frames=m.num_frames, size=m.size, resize=m.resize, resize_shorter=m.resize_shorter,
            rescale=m.rescale, mean=tuple(m.mean), std=tuple(m.std), sampling=m.sampling,
        )

    @property
    def clip_shape(self) -> tuple[int, int, int, int]:
        """One normalized clip: [T, 3, H, W]."""
        return self.num_frames, 3, self.size[0], self.size[1]

    def read(
        self, path: str | Path | BinaryIO, info: VideoInfo, indices: list[int], options: DecodeOptions,
        *, cancel: CancelToken | None = None,
    ) -> tuple[np.ndarray, list[int]]:
        """uint8 [len(indices), H, W, 3] resized as the model wants, and the frames returned."""
        o = options
        return read_frames_at(path, info, indices, self.size, self.resize, o.threads, o.mode, o.loop_filter,
                              o.hwaccel, o.workers, self.resize_shorter, cancel=cancel)

    def decode_clips(
        self, path: str | Path | BinaryIO, info: VideoInfo, clips: list[list[int]], options: DecodeOptions,
        *, cancel: CancelToken | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Decode every distinct frame once -> (uint8 [N, T, H, W, 3], float32 [N, T, 3, H, W]).

        cancel: see models.frames.read_frames_at (stops the decode between packets)."""
        flat = [i for clip in clips for i in clip]
        frames, _ = self.read(path, info, flat, options, cancel=cancel)
        frames = frames.reshape(len(clips), self.num_frames, *frames.shape[1:])
        return frames, self.normalize(frames)

    def normalize(self, frames: np.ndarray) -> np.ndarray:
        """uint8 [..., H, W, 3] -> float32 [..., 3, H, W] (rescale, then mean/std)."""
        return normalize(frames, self.mean, self.std, self.rescale)
