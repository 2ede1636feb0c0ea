"""Export a trained checkpoint to a self-describing model directory (model.onnx + model.json).

    python -m models.export --checkpoint runs/motion/best.pt --out runs/motion/export --name motion
    python -m models.export --hf MCG-NJU/videomae-base-finetuned-kinetics --out /models/repo/videomae

(writes a new model directory; serve it with MODEL_DIR=runs/motion/export. The shipped
models/motion is replaced only on purpose: `make model MODEL_OUT=models/motion`.)

The graph takes `frames` float32 [B, T, 3, H, W] with a dynamic batch axis and returns
`logits`, `attention` and `embeddings`. Before anything is written, ONNX Runtime runs the
exported graph on fresh random inputs against torch: a model whose logits differ by
1e-4 or more (3e-2 for fp16), or whose attention rows do not sum to 1, is refused.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from models.manifest import ModelManifest, ModelOutputs, file_sha256
from models.registry import build_network

# onnx 1.23 stamps IR version 14, which onnxruntime-gpu 1.31 refuses to load; the graph
# uses nothing newer than IR 10 (opset 17), so it is saved as IR 10.
IR_VERSION = 10
OPSET = 17
OUTPUT_NAMES = ("logits", "attention", "embeddings")


class ExportError(RuntimeError):
    pass


# Checkpoints written before the registry stored no architecture: they are all this one.
DEFAULT_ARCHITECTURE = "video_transformer"


def checkpoint_architecture(state: dict) -> str:
    return state.get("architecture") or DEFAULT_ARCHITECTURE


def load_checkpoint(path: Path) -> tuple[torch.nn.Module, dict]:
    """The checkpoint's network, built by its architecture's registered builder (models.registry)."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = build_network(checkpoint_architecture(state), state["config"])
    model.load_state_dict(state["model"])
    return model.eval(), state


def _input_shape(model: torch.nn.Module) -> tuple[int, int, int]:
    """(T, H, W) of the network's clips; every registered architecture keeps them in `cfg`."""
    cfg = model.cfg
    return cfg.num_frames, cfg.height, cfg.width


def export_onnx(model: torch.nn.Module, path: Path, fp16: bool = False) -> None:
    t, h, w = _input_shape(model)
    dummy = torch.zeros(2, t, 3, h, w)
    if getattr(model.cfg, "backbone", "none") != "none":
        # Pretrained EfficientNet blocks: the TorchScript exporter gets them wrong, the dynamo
        # exporter does not (models.efficientnet.export_dynamo); fp16 is not offered for them.
        from models.efficientnet import export_dynamo

        if fp16:
            raise ExportError("--fp16 is not supported for networks with a pretrained backbone")
        export_dynamo(model, path, t, h, w)
        return
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        torch.onnx.export(
            model, (dummy,), str(raw), input_names=["frames"], output_names=list(OUTPUT_NAMES),
            dynamic_axes={"frames": {0: "batch"}, **{n: {0: "batch"} for n in OUTPUT_NAMES}},
            opset_version=OPSET, dynamo=False,
        )
        graph = onnx.load(str(raw))
    if fp16:
        graph = _to_fp16(graph)
    graph.ir_version = IR_VERSION
    onnx.checker.check_model(graph)
    onnx.save(graph, str(path))


def _to_fp16(graph: onnx.ModelProto, keep_fp32: tuple[str, ...] = ()) -> onnx.ModelProto:
    """fp16 weights and arithmetic, fp32 inputs and outputs (callers need not change);
    operators of the types in `keep_fp32` stay fp32, with casts around them."""
    from onnxconverter_common import float16  # optional: pip install onnxconverter-common

    if not keep_fp32:
        return float16.convert_float_to_float16(graph, keep_io_types=True)
    # With a block list, onnxconverter-common 1.16 types the output of an Identity that forwards
    # an initializer (the legacy exporter writes those for shared weights) as fp16 while its
    # input stays fp32, and ONNX Runtime refuses the graph: give each such output its own copy.
    body = graph.graph
    initializers = {t.name: t for t in body.initializer}
    kept = []
    for node in body.node:
        if node.op_type == "Identity" and node.input[0] in initializers:
            copy = onnx.TensorProto()
            copy.CopyFrom(initializers[node.input[0]])
            copy.name = node.output[0]
            body.initializer.append(copy)
        else:
            kept.append(node)
    del body.node[:]
    body.node.extend(kept)
    block = list(float16.DEFAULT_OP_BLOCK_LIST) + list(keep_fp32)  # a list given replaces the default
    return float16.convert_float_to_float16(graph, keep_io_types=True, op_block_list=block)


def check_parity(model: torch.nn.Module, path: Path, fp16: bool, seed: int = 1234) -> dict:
    """Run ONNX Runtime and torch on the same fresh random inputs; raise if they disagree."""
    t, h, w = _input_shape(model)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    worst = {"logits": 0.0, "attention": 0.0, "embeddings": 0.0, "attention_row_sum": 0.0}
    for batch in (1, 3):
        x = rng.standard_normal((batch, t, 3, h, w)).astype(np.float32)
        with torch.no_grad():
            expected = [t.numpy() for t in model(torch.from_numpy(x))]
        got = session.run(list(OUTPUT_NAMES), {"frames": x})
        for name, e, g in zip(OUTPUT_NAMES, expected, got):
            if g.shape != e.shape:
                raise ExportError(f"{name}: ONNX shape {g.shape} != torch shape {e.shape}")
            worst[name] = max(worst[name], float(np.abs(g - e).max()))
        worst["attention_row_sum"] = max(worst["attention_row_sum"], float(np.abs(got[1].sum(1) - 1).max()))
    limit = 3e-2 if fp16 else 1e-4
    if not worst["logits"] < limit:
        raise ExportError(f"logits differ from torch by {worst['logits']:.2e} (limit {limit:.0e})")
    if not worst["attention_row_sum"] < 1e-3:
        raise ExportError(f"attention rows do not sum to 1 (off by {worst['attention_row_sum']:.2e})")
    return worst


def export(checkpoint: Path, out: Path, name: str, version: str, fp16: bool = False) -> ModelManifest:
    model, state = load_checkpoint(checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        candidate = Path(tmp) / "model.onnx"
        export_onnx(model, candidate, fp16)
        parity = check_parity(model, candidate, fp16)
        onnx_path = out / "model.onnx"
        candidate.replace(onnx_path)
    val = state.get("val") or {}
    t, h, w = _input_shape(model)
    manifest = ModelManifest(
        name=name, version=version, labels=list(state["labels"]),
        num_frames=t, height=h, width=w, architecture=checkpoint_architecture(state),
        mean=list(state["mean"]), std=list(state["std"]), resize=state.get("resize", "stretch"),
        input_name="frames", outputs=ModelOutputs(), onnx_file="model.onnx",
        sha256=file_sha256(onnx_path), precision="fp16" if fp16 else "fp32",
        metrics={"val_top1": val.get("top1"), "val_loss": val.get("loss"), "val_clips": val.get("count"),
                 "per_class": val.get("per_class"), "parity_max_abs_diff": parity},
        network=dict(state["config"]),
        training={"checkpoint_epoch": state.get("epoch", -1) + 1, "args": state.get("args", {})},
    )
    manifest.save(out)
    return manifest


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="a checkpoint written by models.train")
    source.add_argument("--hf", metavar="SOURCE", help="a Hugging Face video classifier: hub id or save_pretrained "
                        "folder with its processor config (VideoMAE, TimeSformer, ViViT; models/hf_export.py)")
    p.add_argument("--out", type=Path, required=True, help="model directory to write")
    p.add_argument("--name", default=None, help="model name (default: motion; with --hf, from SOURCE)")
    p.add_argument("--version", default="1")
    p.add_argument("--fp16", action="store_true", help="fp16 weights (for the GPU); fp32 inputs/outputs")
    p.add_argument("--sampling", default="uniform", help="--hf: uniform (default), stride:N or fps:F")
    p.add_argument("--exporter", choices=("legacy", "dynamo"), default="legacy", help="--hf: torch.onnx exporter")
    p.add_argument("--check-video", type=Path, default=None,
                   help="--hf: video for the preprocessing parity check (default: a synthetic clip)")
    args = p.parse_args(argv)
    try:
        if args.hf:
            from models.hf_export import export_hf, parse_sampling

            manifest = export_hf(args.hf, args.out, args.name, args.version, args.fp16,
                                 parse_sampling(args.sampling), args.exporter, args.check_video)
            print(json.dumps({"out": str(args.out), "name": manifest.name, "sha256": manifest.sha256,
                              "parity": manifest.metrics["parity_max_abs_diff"],
                              "preprocessing_parity": manifest.metrics["preprocessing_parity"]}, indent=2))
            return
        manifest = export(args.checkpoint, args.out, args.name or "motion", args.version, args.fp16)
    except ExportError as exc:
        sys.exit(f"export refused: {exc}")
    print(json.dumps({"out": str(args.out), "sha256": manifest.sha256,
                      "parity": manifest.metrics["parity_max_abs_diff"]}, indent=2))


if __name__ == "__main__":
    main()
