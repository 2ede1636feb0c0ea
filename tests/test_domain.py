"""models.domain: class-conditional Gaussians, the pixel/feature ensemble, calibration, save/load (numpy
only), and the shipped statistics and graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.domain import ENSEMBLE, DomainScorer, EnsembleScorer, Gaussian, load_scorer, patches
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


def test_ensemble_scores_patches_and_features_and_survives_save_load(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    # In domain: smooth frames (every pixel of a 4x4 patch alike) and features near 0.
    def smooth(n: int) -> np.ndarray:
        return np.repeat(np.repeat(rng.normal(0, 1, (n, 4, 3, 4, 4)), 4, axis=3), 4, axis=4).astype(np.float32)

    train = smooth(200)
    pixels = Gaussian.fit(patches(train).reshape(-1, 48) + rng.normal(0, 0.05, (200 * 4 * 16, 48)), 0.05)
    features = Gaussian.fit(rng.normal(0, 1, (500, 6)), 0.05)
    held_frames, held_features = smooth(300), rng.normal(0, 1, (300, 4, 6))
    raw = EnsembleScorer(pixels, features, np.ones(2), float("inf"))
    scales = np.quantile(raw.parts(held_features, held_frames), 0.95, axis=0)
    scaled = EnsembleScorer(pixels, features, scales, float("inf"))
    scorer = EnsembleScorer(pixels, features, scales,
                            float(np.quantile(scaled.clip_distances(held_features, held_frames), 0.95)))

    fresh_frames, fresh_features = smooth(300), rng.normal(0, 1, (300, 4, 6))
    kept = np.mean(scorer.clip_distances(fresh_features, fresh_frames) <= scorer.threshold)
    assert 0.9 <= kept <= 0.99
    # Texture inside the patches (what a rendered flat shape lacks) is far from the training patches.
    textured = (fresh_frames[:5] + rng.normal(0, 1, fresh_frames[:5].shape)).astype(np.float32)
    assert (scorer.parts(fresh_features[:5], textured)[:, 0] > 3 * scales[0]).all()
    answer = scorer.video_answer({"features": fresh_features[:5]}, textured)
    assert answer["in_domain"] is False and answer["distance"] > answer["threshold"]

    scorer.save(tmp_path / "e.npz")
    loaded = load_scorer(tmp_path, ENSEMBLE, "e.npz")
    assert isinstance(loaded, EnsembleScorer) and abs(loaded.threshold - scorer.threshold) < 1e-12
    np.testing.assert_allclose(loaded.clip_distances(fresh_features[:20], fresh_frames[:20]),
                               scorer.clip_distances(fresh_features[:20], fresh_frames[:20]), rtol=1e-6)


def test_patches_are_the_non_overlapping_squares_of_each_frame() -> None:
    frames = np.arange(2 * 3 * 3 * 8 * 9, dtype=np.float32).reshape(2, 3, 3, 8, 9)
    p = patches(frames, 4)  # the 9th column does not fill a patch and is left out
    assert p.shape == (2, 3, 4, 48)
    np.testing.assert_array_equal(p[1, 2, 3].reshape(3, 4, 4), frames[1, 2, :, 4:8, 4:8])


def test_the_shipped_motion_graph_carries_features_beside_unchanged_outputs() -> None:
    import onnx
    import onnxruntime as ort

    from models.features_output import FEATURES, stem_tensor, with_features

    m = ModelManifest.load(REAL_MODEL)
    assert m.domain is not None and m.domain.method == ENSEMBLE and m.outputs.features == FEATURES
    scorer = load_scorer(REAL_MODEL, m.domain.method, m.domain.file)
    assert isinstance(scorer, EnsembleScorer) and abs(scorer.threshold - m.domain.threshold) < 1e-6
    graph = onnx.load(str(REAL_MODEL / m.onnx_file))
    assert graph.ir_version <= 10
    # `features` is the spatial mean of the stem's last feature map: expose that map and compare.
    inner = stem_tensor(graph)
    graph.graph.output.append(onnx.helper.make_tensor_value_info(inner, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(3).normal(0, 1, (2, m.num_frames, 3, m.height, m.width)).astype(np.float32)
    features, fmap = session.run([FEATURES, inner], {m.input_name: x})
    assert features.shape == (2, m.num_frames, scorer.features.mean.shape[0])
    np.testing.assert_allclose(features, fmap.mean(axis=(2, 3)).reshape(features.shape), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="already has"):
        with_features(onnx.load(str(REAL_MODEL / m.onnx_file)), inner)
