"""Random-weight Hugging Face video classifiers, written as `save_pretrained` writes them. No network.

`tiny` configs keep tests fast (32x32 input, 2 layers); `base` configs are the released
checkpoints' shapes (VideoMAE-B 16x224, TimeSformer-B 8x224, ViViT-B 32x224), for measuring
export time, ONNX size and request cost without downloading weights. Each folder gets the
processor config its hub checkpoint has (VideoMAE and TimeSformer: VideoMAEImageProcessor;
ViViT: VivitImageProcessor), scaled down for `tiny`.

    python -m models.hf_random --arch videomae --size base --out runs/hf/videomae-base
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

ARCHS = ("videomae", "timesformer", "vivit")
KINETICS_LIKE = ["abseiling", "air drumming", "answering questions", "applauding", "applying cream",
                 "archery", "arm wrestling", "arranging flowers", "assembling computer", "auctioning"]


def _labels(n: int) -> dict[int, str]:
    return {i: KINETICS_LIKE[i] if i < len(KINETICS_LIKE) else f"class {i}" for i in range(n)}


def build(arch: str, size: str = "tiny", num_labels: int | None = None, seed: int = 0,
          init_range: float | None = None) -> tuple[Any, Any]:
    """(model, processor) with random weights.

    `init_range` (the configs' initializer_range): tiny models default to 0.5, so that their
    probabilities are far from uniform and depend on the input (a test that compares
    probabilities must be able to fail); base models keep transformers' 0.02.
    """
    import torch
    import transformers as tf

    num_labels = num_labels or (5 if size == "tiny" else 400)
    id2label = _labels(num_labels)
    common: dict[str, Any] = dict(id2label=id2label, label2id={v: k for k, v in id2label.items()},
                                  initializer_range=init_range or (0.5 if size == "tiny" else 0.02))
    if size == "tiny":
        common.update(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                      image_size=32)
        side, shorter = 32, 36
    elif size == "base":
        side, shorter = 224, 224
    else:
        raise ValueError(f"size must be tiny or base, not {size!r}")
    torch.manual_seed(seed)
    if arch == "videomae":
        # the released K400 checkpoint: 16 frames, tubelet 2, mean pooling, ImageNet mean/std
        cfg = tf.VideoMAEConfig(num_frames=4 if size == "tiny" else 16, patch_size=16, tubelet_size=2,
                                use_mean_pooling=True, **common)
        model = tf.VideoMAEForVideoClassification(cfg)
        processor = tf.VideoMAEImageProcessorPil(
            size={"shortest_edge": shorter}, crop_size={"height": side, "width": side},
            image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    elif arch == "timesformer":
        cfg = tf.TimesformerConfig(num_frames=4 if size == "tiny" else 8, patch_size=16, **common)
        model = tf.TimesformerForVideoClassification(cfg)
        processor = tf.VideoMAEImageProcessorPil(
            size={"shortest_edge": shorter}, crop_size={"height": side, "width": side},
            image_mean=[0.45, 0.45, 0.45], image_std=[0.225, 0.225, 0.225])
    elif arch == "vivit":
        cfg = tf.VivitConfig(num_frames=4 if size == "tiny" else 32, tubelet_size=[2, 16, 16], **common)
        model = tf.VivitForVideoClassification(cfg)
        processor = tf.VivitImageProcessor(
            size={"shortest_edge": shorter if size == "tiny" else 256},
            crop_size={"height": side, "width": side})
    else:
        raise ValueError(f"arch must be one of {ARCHS}, not {arch!r}")
    return model.eval(), processor


def write(arch: str, out: Path, size: str = "tiny", num_labels: int | None = None, seed: int = 0,
          init_range: float | None = None) -> Path:
    """A save_pretrained folder (config.json, weights, preprocessor_config.json) of a random model."""
    model, processor = build(arch, size, num_labels, seed, init_range)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=ARCHS, required=True)
    p.add_argument("--size", choices=("tiny", "base"), default="base")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print(write(args.arch, args.out, args.size, seed=args.seed))


if __name__ == "__main__":
    main()
