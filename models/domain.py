"""`domain`: how far a video lies from what a model was trained on (API.md). numpy only.

    python -m models.domain --model models/motion \
        --fit runs/cache/synthetic-v1-0-2000-16-64-0.15.npz \
        --calibrate runs/cache/synthetic-v1-7919-1000-16-64-0.15.npz

(models.train caches of synthetic clips; one that is missing is rendered first, from its seed;
clips that pass through a codec may come out slightly different, so the threshold can move a little.)

A closed-set classifier answers every video with one of its labels, confidently, whatever
the video. Its softmax cannot say "this is nothing I know"; the
geometry of its features can.

Two methods, by the manifest's `domain.method`:

- `mahalanobis` (`DomainScorer`; Lee et al., 2018): the clip's pooled embedding (the mean
  over its T frames of the `embeddings` output), modelled per class by a Gaussian with one
  covariance shared by all classes. Measured on `motion`, it separates real footage from
  the synthetic training clips poorly (ROC AUC 0.76, BENCHMARKS.md): the embedding keeps
  what tells the motions apart and drops what the frames look like.
- `mahalanobis_ensemble` (`EnsembleScorer`, what `motion` ships): Gaussians at two depths
  of the network, in the spirit of Lee et al.'s feature ensemble and of PaDiM's patch
  Gaussians (Defard et al., 2020):
  * `pixels`: every 4x4 RGB patch of the preprocessed frames (48 values), one Gaussian
    over all training patches; a frame scores the 90th percentile of its patches'
    distances (natural images have many patches no rendered shape or noise texture
    makes, yet most of their patches are smooth), a clip the mean over its frames;
  * `features`: the frame-mean of the graph's `features` output (the CNN stem's last
    feature map averaged over space, models/features_output.py), one Gaussian over the
    training clips.
  Each part's distance is divided by its own 95% quantile on held-out in-domain clips, and
  the clip's distance is the geometric mean of the two.

Every distance is a Mahalanobis distance divided by sqrt(D), so that numbers read the same
whatever the width. The threshold is calibrated on held-out in-domain clips, never trained
on: the distance that keeps `keep` (95%) of them. A video of several clips takes the mean
of its clips' distances.

The service loads the statistics with `load_scorer` (no torch, no onnx) and calls
`video_answer` with the outputs the model already returned and the frames it was given:
a few small matrix products per clip.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

METHOD = "mahalanobis"
ENSEMBLE = "mahalanobis_ensemble"
FILE = "domain.npz"
SHRINKAGE = 0.1  # mahalanobis
ENSEMBLE_SHRINKAGE = 0.05
PATCH = 4  # pixels: side of the square RGB patches
PATCH_QUANTILE = 0.9  # pixels: a frame's score is this quantile of its patches' distances


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
        return _answer(self.distance(embeddings), self.threshold)

    def score_clips(self, outputs: dict[str, np.ndarray], frames: np.ndarray | None = None) -> np.ndarray:
        """Each clip's distance from the model's outputs (the frames are not used)."""
        return self.clip_distances(outputs["embeddings"])

    def video_answer(self, outputs: dict[str, np.ndarray], frames: np.ndarray | None = None) -> dict:
        """The `domain` object from the model's outputs for the video's clips (frames unused)."""
        return self.answer(outputs["embeddings"])

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


def _answer(distance: float, threshold: float) -> dict:
    d = distance if np.isfinite(distance) else float(np.finfo(np.float32).max)
    return {"in_domain": bool(d <= threshold), "distance": d, "threshold": threshold}


@dataclass(frozen=True)
class Gaussian:
    """One Gaussian, kept as its mean and a whitening matrix W (W W^T = the precision)."""

    mean: np.ndarray  # [D]
    whiten: np.ndarray  # [D, D]

    @classmethod
    def from_moments(cls, count: int, total: np.ndarray, outer: np.ndarray, shrinkage: float) -> Gaussian:
        """From the count, sum [D] and sum of outer products [D, D] of the samples."""
        mean = total / count
        cov = outer / count - np.outer(mean, mean)
        # Shrunk towards its diagonal, plus a small ridge: the covariance of flat synthetic
        # patches is nearly singular, and the inverse of its smallest eigenvalues would
        # dominate every distance.
        diag = np.diag(np.diag(cov))
        cov = (1 - shrinkage) * cov + shrinkage * diag + 1e-4 * diag + 1e-9 * np.eye(len(cov))
        return cls(mean, np.linalg.cholesky(np.linalg.inv(cov)))

    @classmethod
    def fit(cls, x: np.ndarray, shrinkage: float) -> Gaussian:
        x = np.asarray(x, np.float64)
        return cls.from_moments(len(x), x.sum(axis=0), x.T @ x, shrinkage)

    def distance(self, x: np.ndarray, dtype: type = np.float64) -> np.ndarray:
        """[..., D] -> Mahalanobis distance / sqrt(D) [...] (float32 for the many pixel patches)."""
        z = (np.asarray(x, dtype) - self.mean.astype(dtype)) @ self.whiten.astype(dtype)
        return np.sqrt(np.einsum("...d,...d->...", z, z) / len(self.mean))


def patches(frames: np.ndarray, size: int = PATCH) -> np.ndarray:
    """frames [B, T, 3, H, W] -> non-overlapping size x size RGB patches [B, T, P, 3 * size^2]."""
    b, t, c, h, w = frames.shape
    h, w = h - h % size, w - w % size
    x = frames[..., :h, :w].reshape(b, t, c, h // size, size, w // size, size)
    return x.transpose(0, 1, 3, 5, 2, 4, 6).reshape(b, t, (h // size) * (w // size), c * size * size)


@dataclass(frozen=True)
class EnsembleScorer:
    """`mahalanobis_ensemble`: pixel-patch and stem-feature Gaussians (module docstring)."""

    pixels: Gaussian
    features: Gaussian
    scales: np.ndarray  # [2]: each part's calibration quantile (pixels, features)
    threshold: float
    patch: int = PATCH
    quantile: float = PATCH_QUANTILE

    def pixel_distances(self, frames: np.ndarray) -> np.ndarray:
        """frames [B, T, 3, H, W] (as the model got them) -> [B]."""
        d = self.pixels.distance(patches(np.asarray(frames, np.float32), self.patch), np.float32)  # [B, T, P]
        k = int(round(self.quantile * (d.shape[-1] - 1)))
        return np.partition(d, k, axis=-1)[..., k].mean(axis=-1)

    def feature_distances(self, features: np.ndarray) -> np.ndarray:
        """The `features` output [B, T, F] -> [B]."""
        return self.features.distance(np.asarray(features, np.float64).mean(axis=1))

    def parts(self, features: np.ndarray, frames: np.ndarray) -> np.ndarray:
        """[B, 2]: each part's distance, not yet scaled."""
        return np.stack([self.pixel_distances(frames), self.feature_distances(features)], axis=1)

    def combine(self, parts: np.ndarray) -> np.ndarray:
        """[B, 2] -> [B]: the geometric mean of the parts, each over its calibration quantile."""
        return np.exp(np.log(np.maximum(parts / self.scales, 1e-12)).mean(axis=1))

    def clip_distances(self, features: np.ndarray, frames: np.ndarray) -> np.ndarray:
        return self.combine(self.parts(features, frames))

    def score_clips(self, outputs: dict[str, np.ndarray], frames: np.ndarray) -> np.ndarray:
        """Each clip's distance from the model's outputs and the frames [B, T, 3, H, W] it was given."""
        return self.clip_distances(outputs["features"], frames)

    def video_answer(self, outputs: dict[str, np.ndarray], frames: np.ndarray) -> dict:
        """The `domain` object from the outputs and frames [B, T, 3, H, W] of the video's clips."""
        return _answer(float(self.score_clips(outputs, frames).mean()), self.threshold)

    def save(self, path: str | Path) -> None:
        np.savez(path, method=np.array(ENSEMBLE),
                 pixel_mean=self.pixels.mean, pixel_whiten=self.pixels.whiten,
                 feature_mean=self.features.mean, feature_whiten=self.features.whiten,
                 scales=self.scales, threshold=np.float64(self.threshold),
                 patch=np.int64(self.patch), quantile=np.float64(self.quantile))

    @classmethod
    def load(cls, model_dir: str | Path, file: str = FILE, threshold: float | None = None) -> EnsembleScorer:
        with np.load(Path(model_dir) / file) as d:
            return cls(Gaussian(d["pixel_mean"], d["pixel_whiten"]), Gaussian(d["feature_mean"], d["feature_whiten"]),
                       d["scales"].astype(np.float64), float(d["threshold"]) if threshold is None else float(threshold),
                       int(d["patch"]), float(d["quantile"]))


Scorer = DomainScorer | EnsembleScorer


def load_scorer(model_dir: str | Path, method: str, file: str = FILE, threshold: float | None = None) -> Scorer:
    """The statistics a manifest's `domain` names (ValueError for a method this code does not know)."""
    if method == METHOD:
        return DomainScorer.load(model_dir, file, threshold)
    if method == ENSEMBLE:
        return EnsembleScorer.load(model_dir, file, threshold)
    raise ValueError(f"unknown domain method '{method}' (known: {METHOD}, {ENSEMBLE})")


# ---------------------------------------------------------------- fitting (onnxruntime, no torch)


def _session(model_dir: Path):
    import onnxruntime as ort

    from models.manifest import ModelManifest

    m = ModelManifest.load(model_dir)
    return m, ort.InferenceSession(str(Path(model_dir) / m.onnx_file), providers=["CPUExecutionProvider"])


def _batches(model_dir: Path, clips: np.ndarray, names: list[str], batch: int = 50):
    """uint8 clips [N, T, H, W, 3] at the model's size -> (normalized frames, outputs) per batch."""
    from models.frames import normalize

    m, session = _session(model_dir)
    for i in range(0, len(clips), batch):
        x = normalize(clips[i : i + batch], m.mean, m.std)
        yield x, dict(zip(names, session.run([getattr(m.outputs, n) for n in names], {m.input_name: x}), strict=True))


def embed(model_dir: Path, clips: np.ndarray, batch: int = 64) -> np.ndarray:
    """uint8 clips [N, T, H, W, 3], already at the model's size -> pooled embeddings [N, D]."""
    return np.concatenate([o["embeddings"].mean(axis=1) for _, o in _batches(model_dir, clips, ["embeddings"], batch)])


def fit_ensemble(model_dir: Path, train: np.ndarray, held_out: np.ndarray, keep: float = 0.95,
                 shrinkage: float = ENSEMBLE_SHRINKAGE) -> EnsembleScorer:
    """Fit both parts on `train` clips, scale and threshold them on `held_out` clips (uint8)."""
    n, total, outer, pooled = 0, 0.0, 0.0, []
    for x, out in _batches(model_dir, train, ["features"]):
        p = patches(x, PATCH).reshape(-1, 3 * PATCH * PATCH).astype(np.float64)
        n, total, outer = n + len(p), total + p.sum(axis=0), outer + p.T @ p
        pooled.append(out["features"].mean(axis=1))
    pixels = Gaussian.from_moments(n, total, outer, shrinkage)
    features = Gaussian.fit(np.concatenate(pooled), shrinkage)
    scorer = EnsembleScorer(pixels, features, np.ones(2), float("inf"))
    parts = np.concatenate([scorer.parts(o["features"], x) for x, o in _batches(model_dir, held_out, ["features"])])
    scales = np.quantile(parts, keep, axis=0)
    scorer = EnsembleScorer(pixels, features, scales, float("inf"))
    return EnsembleScorer(pixels, features, scales, float(np.quantile(scorer.combine(parts), keep)))


def _clips(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(clips, labels) of a models.train cache; a missing `synthetic-v1-SEED-COUNT-T-SIZE-SHARE.npz`
    is rendered first (models.train.synthetic_dataset, deterministic from its seed)."""
    path = Path(path)
    match = re.fullmatch(r"synthetic-v1-(\d+)-(\d+)-(\d+)-(\d+)-([0-9.]+)\.npz", path.name)
    if not path.exists() and match:
        from models.train import synthetic_dataset  # torch: the [train] extra, only to render

        seed, count, frames, size = (int(g) for g in match.groups()[:4])
        path.parent.mkdir(parents=True, exist_ok=True)
        synthetic_dataset(seed, count, frames, size, float(match.group(5)), 2, path.parent, f"render {path.name}")
    with np.load(path) as data:
        return data["clips"], data["labels"]


def fit_model_dir(model_dir: Path, fit: Path, calibrate: Path, keep: float = 0.95,
                  shrinkage: float | None = None, method: str = ENSEMBLE) -> dict:
    """Fit on `fit` clips, calibrate on `calibrate` clips (both .npz with clips, labels), write
    domain.npz and the manifest's `domain` field. For the ensemble, model.onnx first gets its
    `features` output (models/features_output.py) if it lacks one; its other outputs do not move."""
    from models.manifest import DomainSpec, ModelManifest

    graph = None
    if method == ENSEMBLE:
        from models.features_output import add_features_output

        graph = add_features_output(model_dir)
    manifest = ModelManifest.load(model_dir)
    train, train_labels = _clips(fit)
    held, _ = _clips(calibrate)
    calibration = {"fit_clips": int(len(train)), "fit_data": Path(fit).name,
                   "calibration_clips": int(len(held)), "calibration_data": Path(calibrate).name, "kept": keep}
    if method == ENSEMBLE:
        shrinkage = ENSEMBLE_SHRINKAGE if shrinkage is None else shrinkage
        scorer: Scorer = fit_ensemble(model_dir, train, held, keep, shrinkage)
        calibration.update({
            "statistic": "geometric mean of two Mahalanobis distances (each / sqrt(D), each over its 95% "
                         "calibration quantile): 4x4 RGB patches of the frames (90th percentile of a frame's "
                         "patches, mean over frames) and the frame-mean of the `features` output",
            "part_scales": [float(s) for s in scorer.scales], "patch": PATCH, "patch_quantile": PATCH_QUANTILE,
            "shrinkage": shrinkage,
        })
    elif method == METHOD:
        shrinkage = SHRINKAGE if shrinkage is None else shrinkage
        train_pooled, held_pooled = embed(model_dir, train), embed(model_dir, held)
        scorer = DomainScorer.fit(train_pooled, train_labels, shrinkage).calibrated(held_pooled, keep)
        calibration.update({
            "statistic": "Mahalanobis distance of the frame-mean embedding to the nearest class mean "
                         "(shared covariance), divided by sqrt(D)", "shrinkage": shrinkage,
        })
    else:
        raise ValueError(f"unknown method {method}")
    scorer.save(Path(model_dir) / FILE)
    manifest.domain = DomainSpec(method=method, file=FILE, threshold=scorer.threshold, calibration=calibration)
    manifest.save(model_dir)
    return {"method": method, "threshold": scorer.threshold, "fit_clips": int(len(train)),
            "calibration_clips": int(len(held)), "graph": graph}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True, help="model directory")
    p.add_argument("--fit", type=Path, required=True,
                   help=".npz of training clips (clips, labels); a missing synthetic-v1-* cache is rendered")
    p.add_argument("--calibrate", type=Path, required=True, help=".npz of held-out in-domain clips (likewise)")
    p.add_argument("--method", choices=(ENSEMBLE, METHOD), default=ENSEMBLE)
    p.add_argument("--keep", type=float, default=0.95, help="share of held-out clips inside the threshold")
    p.add_argument("--shrinkage", type=float, default=None,
                   help=f"shrinkage towards the diagonal (default {ENSEMBLE_SHRINKAGE}; mahalanobis {SHRINKAGE})")
    args = p.parse_args(argv)
    print(json.dumps(fit_model_dir(args.model, args.fit, args.calibrate, args.keep, args.shrinkage, args.method),
                     indent=2))


if __name__ == "__main__":
    main()
