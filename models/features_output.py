"""Add a `features` output to an exported graph: per-frame channel means of an inner feature map.

    python -m models.features_output --model models/motion

`domain` (models/domain.py) needs to see more of a frame than the final embedding: the
embedding is trained to keep what tells the ten motions apart and to drop the rest, so a
real photo and a rendered shape can land close together there. The per-frame CNN stem's
last feature map still says what the frame *looks like*. This adds, without retraining and
without touching the existing outputs, one output:

    features [B, T, C] = mean over the H' x W' grid of the stem's last feature map [B*T, C, H', W']

a ReduceMean and a Reshape on a tensor the graph computes anyway. logits, attention and
embeddings are the same nodes on the same inputs; `add_features_output` checks that they
come out identical before it writes the file, and updates model.json (sha256, outputs).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

FEATURES = "features"
IR_VERSION = 10  # onnxruntime-gpu 1.31 loads no later (models/export.py)
STEM_PREFIX = "/stem/convs/"  # models.network.FrameStem's convolutions, as torch.onnx names them


def stem_tensor(model) -> str:
    """The output of the last node of the stem's convolutions (before the projection to tokens)."""
    names = [n.output[0] for n in model.graph.node if n.name.startswith(STEM_PREFIX)]
    if not names:
        raise ValueError(f"no node named {STEM_PREFIX}*: not a models.network FrameStem graph; pass --tensor")
    return names[-1]


def with_features(model, tensor: str, input_name: str = "frames"):
    """A copy of `model` with the `features` output [B, T, C] (the mean of `tensor` [B*T, C, h, w]
    over its last two axes, regrouped by the input's first two axes)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = model.graph
    if any(o.name == FEATURES for o in g.output):
        raise ValueError(f"the graph already has an output '{FEATURES}'")
    p = "domain_features/"
    g.initializer.extend([
        numpy_helper.from_array(np.array([0], np.int64), p + "start"),
        numpy_helper.from_array(np.array([2], np.int64), p + "end"),
        numpy_helper.from_array(np.array([-1], np.int64), p + "rest"),
    ])
    g.node.extend([
        helper.make_node("ReduceMean", [tensor], [p + "pooled"], name=p + "ReduceMean", axes=[2, 3], keepdims=0),
        helper.make_node("Shape", [input_name], [p + "shape"], name=p + "Shape"),
        helper.make_node("Slice", [p + "shape", p + "start", p + "end"], [p + "bt"], name=p + "Slice"),
        helper.make_node("Concat", [p + "bt", p + "rest"], [p + "target"], name=p + "Concat", axis=0),
        helper.make_node("Reshape", [p + "pooled", p + "target"], [FEATURES], name=p + "Reshape"),
    ])
    g.output.append(helper.make_tensor_value_info(FEATURES, TensorProto.FLOAT, ["batch", None, None]))
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def _outputs(model_bytes: bytes, names: list[str], x: np.ndarray) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    return session.run(names, {session.get_inputs()[0].name: x})


def add_features_output(model_dir: Path, tensor: str | None = None, seed: int = 0) -> dict:
    """Write `features` into model_dir's graph (once) and model.json; returns what was done."""
    import onnx

    from models.manifest import ModelManifest, file_sha256

    manifest = ModelManifest.load(model_dir)
    path = Path(model_dir) / manifest.onnx_file
    model = onnx.load(str(path))
    if manifest.outputs.features == FEATURES and any(o.name == FEATURES for o in model.graph.output):
        return {"changed": False, "sha256": manifest.sha256}
    tensor = tensor or stem_tensor(model)
    edited = with_features(model, tensor, manifest.input_name)
    # The contract's outputs must not move by a bit: same nodes, same inputs.
    x = np.random.default_rng(seed).normal(0, 1, (3, manifest.num_frames, 3, manifest.height, manifest.width))
    x = x.astype(np.float32)
    names = [manifest.outputs.logits, manifest.outputs.attention, manifest.outputs.embeddings]
    before = _outputs(model.SerializeToString(), names, x)
    after = _outputs(edited.SerializeToString(), [*names, FEATURES], x)
    diff = {n: float(np.abs(a - b).max()) for n, a, b in zip(names, before, after[:3], strict=True)}
    if any(d > 0 for d in diff.values()):
        raise RuntimeError(f"adding '{FEATURES}' changed the contract's outputs: {diff}")
    onnx.save(edited, str(path))
    manifest.outputs.features = FEATURES
    manifest.sha256 = file_sha256(path)
    manifest.metrics.setdefault("parity_max_abs_diff", {})["features_edit"] = max(diff.values())
    manifest.save(model_dir)
    return {"changed": True, "tensor": tensor, "features_shape": list(after[3].shape),
            "max_abs_diff_of_other_outputs": diff, "sha256": manifest.sha256}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True, help="model directory (model.onnx + model.json)")
    p.add_argument("--tensor", default=None, help=f"feature map to pool (default: the last {STEM_PREFIX}* node)")
    args = p.parse_args(argv)
    print(json.dumps(add_features_output(args.model, args.tensor), indent=2))


if __name__ == "__main__":
    main()
