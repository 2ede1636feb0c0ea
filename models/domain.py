"""`domain`: how far a video lies from what a model was trained on (API.md). numpy only.

    python -m models.domain --model models/motion --fit runs/cache/synthetic-v1-0-2000-16-64-0.15.npz \
        --calibrate runs/cache/synthetic-v1-7919-1000-16-64-0.15.npz

A closed-set classifier answers every video with one of its labels, confidently, whatever
the video. Its softmax cannot say "this is nothing I know"; the geometry of its features
can. The method (Lee et al., 2018, "A simple unified framework for detecting
out-of-distribution samples"): the clip's pooled embedding (the mean over its T frames of
the model's `embeddings` output) is modelled, per class, by a Gaussian with the class's
own mean and one covariance shared by all classes (fitted on training clips, shrunk
towards its diagonal so that it stays invertible on a few thousand clips). A clip's
distance is its Mahalanobis distance to the nearest class mean, divided by sqrt(D) so that
numbers read the same whatever the embedding width (about 1 for a typical training clip).

The threshold is calibrated on held-out in-domain clips, never trained on: the distance
that keeps `keep` (95%) of them. A video of several clips takes the mean of their
distances.

The service loads the statistics with `DomainScorer.load` (no torch, no onnx) and calls
`distance` on the embeddings the model already returned: it costs one small matrix
product per clip.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

METHOD = "mahalanobis"
FILE = "domain.npz"
SHRINKAGE = 0.1


@dataclass(frozen=True)
class DomainScorer:
    means: np.ndarray  # [C, D] float64: per-class mean of the pooled embedding
    precision: np.ndarray  # [D, D] float64: inverse of the shared (shrunk) covariance
    threshold: float

    @classmethod
    def fit(cls, pooled: np.ndarray, labels: np.ndarray, shrinkage: float = SHRINKAGE) -> DomainScorer:
        """Class means and one shared covariance of pooled embeddings [N, D] with labels [N]."""
        x = np.asarray(pooled, np.float64)
        classes = np.unique(labels)
        means = np.stack([x[labels == c].mean(axis=0) for c in classes])
        centered = x - means[np.searchsorted(classes, labels)]
        cov = centered.T @ centered / max(1, len(x) - len(classes))
        # Shrink towards the diagonal (Ledoit-Wolf style, fixed weight): a few thousand clips
        # in 128 dimensions leave the smallest eigenvalues noisy, and their inverse would
        # dominate the distance.
        cov = (1 - shrinkage) * cov + shrinkage * np.diag(np.diag(cov))
        cov += np.eye(len(cov)) * 1e-6 * np.trace(cov) / len(cov)
        return cls(means, np.linalg.inv(cov), float("inf"))

    def clip_distances(self, embeddings: np.ndarray) -> np.ndarray:
        """embeddings [B, T, D] (or pooled [B, D]) -> distance [B] to the nearest class."""
        e = np.asarray(embeddings, np.float64)
        pooled = e.mean(axis=1) if e.ndim == 3 else e
        diff = pooled[:, None, :] - self.means[None]  # [B, C, D]
        d2 = np.einsum("bcd,de,bce->bc", diff, self.precision, diff)
        return np.sqrt(np.clip(d2.min(axis=1), 0, None) / self.means.shape[1])

    def distance(self, embeddings: np.ndarray) -> float:
        """One video's distance: the mean over its clips."""
        return float(self.clip_distances(embeddings).mean())

    def answer(self, embeddings: np.ndarray) -> dict:
        """API.md's `domain` object."""
        d = self.distance(embeddings)
        d = d if np.isfinite(d) else float(np.finfo(np.float32).max)
        return {"in_domain": bool(d <= self.threshold), "distance": d, "threshold": self.threshold}

    def calibrated(self, held_out: np.ndarray, keep: float = 0.95) -> DomainScorer:
        """The same statistics with the threshold that keeps `keep` of held-out in-domain clips."""
        threshold = float(np.quantile(self.clip_distances(held_out), keep))
        return DomainScorer(self.means, self.precision, threshold)

    def save(self, path: str | Path) -> None:
        np.savez(path, means=self.means.astype(np.float32), precision=self.precision.astype(np.float32),
                 threshold=np.float64(self.threshold))

    @classmethod
    def load(cls, model_dir: str | Path, file: str = FILE, threshold: float | None = None) -> DomainScorer:
        with np.load(Path(model_dir) / file) as data:
            t = float(data["threshold"]) if threshold is None else float(threshold)
            return cls(data["means"].astype(np.float64), data["precision"].astype(np.float64), t)


# ---------------------------------------------------------------- fitting (onnxruntime, no torch)


def embed(model_dir: Path, clips: np.ndarray, batch: int = 64) -> np.ndarray:
    """uint8 clips [N, T, H, W, 3], already at the model's size -> pooled embeddings [N, D]."""
    import onnxruntime as ort

    from models.frames import normalize
    from models.manifest import ModelManifest

    m = ModelManifest.load(model_dir)
    session = ort.InferenceSession(str(Path(model_dir) / m.onnx_file), providers=["CPUExecutionProvider"])
    out = []
    for i in range(0, len(clips), batch):
        x = normalize(clips[i : i + batch], m.mean, m.std)
        out.append(session.run([m.outputs.embeddings], {m.input_name: x})[0].mean(axis=1))
    return np.concatenate(out)


def fit_model_dir(model_dir: Path, fit: Path, calibrate: Path, keep: float = 0.95,
                  shrinkage: float = SHRINKAGE) -> dict:
    """Fit on `fit` clips, calibrate on `calibrate` clips (both .npz with clips, labels), write
    domain.npz and the manifest's `domain` field. model.onnx is not touched."""
    from models.manifest import DomainSpec, ModelManifest

    manifest = ModelManifest.load(model_dir)
    with np.load(fit) as data:
        train_pooled, train_labels = embed(model_dir, data["clips"]), data["labels"]
    with np.load(calibrate) as data:
        held_pooled = embed(model_dir, data["clips"])
    scorer = DomainScorer.fit(train_pooled, train_labels, shrinkage).calibrated(held_pooled, keep)
    scorer.save(Path(model_dir) / FILE)
    manifest.domain = DomainSpec(
        method=METHOD, file=FILE, threshold=scorer.threshold,
        calibration={
            "statistic": "Mahalanobis distance of the frame-mean embedding to the nearest class mean "
                         "(shared covariance), divided by sqrt(D)",
            "fit_clips": int(len(train_labels)), "fit_data": Path(fit).name,
            "calibration_clips": int(len(held_pooled)), "calibration_data": Path(calibrate).name,
            "kept": keep, "shrinkage": shrinkage,
        },
    )
    manifest.save(model_dir)
    return {"threshold": scorer.threshold, "fit_clips": int(len(train_labels)),
            "calibration_clips": int(len(held_pooled))}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True, help="model directory (its model.onnx is not changed)")
    p.add_argument("--fit", type=Path, required=True, help=".npz of training clips (clips, labels)")
    p.add_argument("--calibrate", type=Path, required=True, help=".npz of held-out in-domain clips")
    p.add_argument("--keep", type=float, default=0.95, help="share of held-out clips inside the threshold")
    p.add_argument("--shrinkage", type=float, default=SHRINKAGE)
    args = p.parse_args(argv)
    print(json.dumps(fit_model_dir(args.model, args.fit, args.calibrate, args.keep, args.shrinkage), indent=2))


if __name__ == "__main__":
    main()
