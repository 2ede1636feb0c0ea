"""Recover a trainable torch network from an exported model directory (model.onnx + model.json).

    python -m models.from_onnx --model models/motion --out runs/motion-init.pt

The shipped motion model exists only as ONNX: its training checkpoint is not kept. To
fine-tune it (models.train --init) its weights are read back from the graph's initializers:

- parameters the exporter kept by name (`head.weight`, `layers.0.norm1.bias`, ...) directly;
- a Linear the exporter turned into a MatMul: the initializer transposed, its module found
  from the node's name (`/layers.0/attn/qkv/MatMul` -> `layers.0.attn.qkv`);
- a Conv whose BatchNorm the exporter folded into it: the folded weight and bias go to the
  conv and its BatchNorm becomes the identity (mean 0, variance 1 - eps, scale 1, shift =
  the folded bias). Fine-tuning then keeps those BatchNorms in eval mode (their statistics
  are gone), which models.train does for a network recovered this way.

Nothing is trusted: ONNX Runtime runs the graph and torch runs the recovered network on the
same random clips, and a difference in logits of 1e-4 or more is an error.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper
from torch import nn

from models.registry import build_network

PARITY_ATOL = 1e-4


class RecoveryError(RuntimeError):
    pass


def module_path(node_name: str) -> str:
    """`/stem/convs/convs.0/Conv` -> `stem.convs.0`; `/layers.0/attn/qkv/MatMul` -> `layers.0.attn.qkv`.

    The TorchScript exporter names a node by its module scopes, repeating a container's name
    in its child's (`convs/convs.0`)."""
    parts: list[str] = []
    for seg in node_name.strip("/").split("/")[:-1]:
        if parts and seg.startswith(parts[-1] + "."):
            parts[-1] = seg
        else:
            parts.append(seg)
    return ".".join(parts)


def recover(model_dir: Path, check: bool = True) -> tuple[nn.Module, dict]:
    """The network of an exported model directory, with the graph's weights; and its manifest.
    `check`: refuse it unless its logits match the graph's (check_parity)."""
    manifest = json.loads((model_dir / "model.json").read_text())
    if not manifest.get("network"):
        raise RecoveryError(f"{model_dir}/model.json has no `network` config to rebuild from")
    net = build_network(manifest.get("architecture") or "video_transformer", manifest["network"])
    graph = onnx.load(str(model_dir / manifest.get("onnx_file", "model.onnx"))).graph
    inits = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.initializer}
    state = net.state_dict()
    modules = dict(net.named_modules())
    loaded: set[str] = set()

    def put(key: str, value: torch.Tensor) -> None:
        if key not in state or tuple(state[key].shape) != tuple(value.shape):
            raise RecoveryError(f"{key}: the graph's tensor {tuple(value.shape)} does not fit the network")
        state[key] = value.to(state[key].dtype)
        loaded.add(key)

    for name, value in inits.items():
        if name in state:
            put(name, value)
    for node in graph.node:
        weights = [i for i in node.input[1:] if i in inits]
        if node.op_type not in ("Conv", "MatMul", "Gemm") or not weights:
            continue
        path = module_path(node.name)
        if f"{path}.weight" in loaded:
            continue
        if path not in modules:
            raise RecoveryError(f"node {node.name}: no module {path} in the network")
        if node.op_type == "MatMul":
            put(f"{path}.weight", inits[weights[0]].T.contiguous())
            continue
        put(f"{path}.weight", inits[weights[0]])
        if len(weights) < 2:
            continue
        if f"{path}.bias" in state:
            put(f"{path}.bias", inits[weights[1]])
            continue
        # A bias on a conv that has none: its BatchNorm (the next module) was folded in.
        parent, _, index = path.rpartition(".")
        bn_path = f"{parent}.{int(index) + 1}"
        bn = modules.get(bn_path)
        if not isinstance(bn, nn.BatchNorm2d):
            raise RecoveryError(f"node {node.name}: a folded bias but no BatchNorm after {path}")
        channels = bn.num_features
        put(f"{bn_path}.weight", torch.ones(channels))
        put(f"{bn_path}.bias", inits[weights[1]])
        put(f"{bn_path}.running_mean", torch.zeros(channels))
        put(f"{bn_path}.running_var", torch.full((channels,), 1.0 - bn.eps))
    missing = [k for k in state if k not in loaded and not k.endswith("num_batches_tracked")]
    if missing:
        raise RecoveryError(f"the graph does not give these weights: {', '.join(missing)}")
    net.load_state_dict(state)
    net.eval()
    if check:
        check_parity(net, model_dir / manifest.get("onnx_file", "model.onnx"), manifest)
    return net, manifest


@torch.no_grad()
def check_parity(net: nn.Module, onnx_path: Path, manifest: dict, clips: int = 4) -> float:
    t, h, w = manifest["num_frames"], manifest["height"], manifest["width"]
    x = np.random.default_rng(0).standard_normal((clips, t, 3, h, w)).astype(np.float32)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    want = session.run([manifest["outputs"]["logits"]], {manifest["input_name"]: x})[0]
    got = net(torch.from_numpy(x))[0].numpy()
    diff = float(np.abs(want - got).max())
    if diff >= PARITY_ATOL:
        raise RecoveryError(f"the recovered network's logits differ from the graph's by {diff:.2e}")
    return diff


def freeze_batchnorm(net: nn.Module) -> None:
    """Eval mode for every BatchNorm (call after net.train()): the recovered ones have no statistics."""
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="exported model directory")
    ap.add_argument("--out", type=Path, help="also save the weights as a torch state dict here")
    args = ap.parse_args(argv)
    net, manifest = recover(args.model, check=False)
    diff = check_parity(net, args.model / manifest.get("onnx_file", "model.onnx"), manifest)
    print(f"recovered {sum(p.numel() for p in net.parameters())} parameters; logits max |diff| {diff:.2e}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
