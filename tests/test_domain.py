"""models.domain: class-conditional Gaussians, calibration, save/load (numpy only), and the shipped stats."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.domain import DomainScorer
from models.manifest import ModelManifest
from tests.conftest import REAL_MODEL


def _blobs(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, 3, n)
    centers = np.array([[4.0, 0, 0, 0], [0, 4.0, 0, 0], [0, 0, 4.0, 0]])
    # frames [n, T=5, D=4] around each class centre; the scorer pools over time
    return centers[labels][:, None, :] + rng.normal(0, 1, (n, 5, 4)), labels


def test_threshold_keeps_the_asked_share_and_flags_what_lies_far(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    train, y = _blobs(rng, 3000)
    held, _ = _blobs(rng, 2000)
    scorer = DomainScorer.fit(train.mean(axis=1), y).calibrated(held, keep=0.95)
    fresh, _ = _blobs(rng, 2000)
    kept = np.mean(scorer.clip_distances(fresh) <= scorer.threshold)
    assert 0.93 <= kept <= 0.97
    far = np.full((1, 5, 4), -6.0)
    answer = scorer.answer(far)
    assert answer["in_domain"] is False and answer["distance"] > answer["threshold"]
    scorer.save(tmp_path / "d.npz")
    loaded = DomainScorer.load(tmp_path, "d.npz")
    assert abs(loaded.threshold - scorer.threshold) < 1e-9
    np.testing.assert_allclose(loaded.clip_distances(fresh[:50]), scorer.clip_distances(fresh[:50]), rtol=1e-5)


def test_the_shipped_motion_statistics_match_its_manifest() -> None:
    m = ModelManifest.load(REAL_MODEL)
    assert m.domain is not None and m.domain.method == "mahalanobis"
    scorer = DomainScorer.load(REAL_MODEL, m.domain.file)
    assert abs(scorer.threshold - m.domain.threshold) < 1e-6
    assert scorer.means.shape == (len(m.labels), m.network["dim"])
