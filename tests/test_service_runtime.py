"""service.runtime: the ONNX Runtime session on the shipped model, with and without IO binding."""

from __future__ import annotations

import numpy as np
from conftest import REAL_MODEL

from service.runtime import CPU, OnnxModel


def test_io_binding_gives_the_same_outputs() -> None:
    plain = OnnxModel(REAL_MODEL, provider="cpu", io_binding="off")
    bound = OnnxModel(REAL_MODEL, provider="cpu", io_binding="on")
    assert plain.providers[0] == CPU and not plain.io_binding and bound.io_binding
    # auto: on only when CUDA runs the model.
    assert OnnxModel(REAL_MODEL, provider="cpu").io_binding is False
    x = np.random.default_rng(0).standard_normal((3, *plain.clip_shape), dtype=np.float32)
    a, b = plain.run(x), bound.run(x)
    assert set(a) == set(b) == {"logits", "attention", "embeddings", "features"}  # features: motion names it
    for name in a:
        assert a[name].shape == b[name].shape
        np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-5)
    # A batch of another size through the same binding path (dynamic batch axis).
    assert bound.run(x[:1])["logits"].shape == (1, len(bound.manifest.labels))
    np.testing.assert_allclose(bound.run(x[:1])["attention"].sum(axis=-1), 1.0, atol=1e-5)


def test_every_setting_is_in_the_readme_table() -> None:
    from service.settings import Settings

    readme = (REAL_MODEL.parents[1] / "README.md").read_text()
    missing = [name.upper() for name in Settings.model_fields if f"| `{name.upper()}` |" not in readme]
    assert not missing, f"settings missing from the README's table: {missing}"
