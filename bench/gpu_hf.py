"""A base-size VideoMAE (16x224, random weights) on one GPU: torch CUDA vs ONNX Runtime's CUDA EP, fp32 and fp16.

    python -m bench.gpu_hf                              # build, export (fp32 + fp16) under runs/hf-gpu, time
    python -m bench.gpu_hf --model-dir DIR [--fp16-dir DIR]   # time graphs exported already

Needs only torch (CUDA build), transformers, onnxruntime-gpu and numpy (plus onnx and
onnxconverter-common when it exports). Each row is the median of --repeat timed runs after
warm-up, all in this one process, so the ratios compare like with like. The ORT rows run
the exported graph (logits + per-frame attention + embeddings, eager attention); the torch
rows run transformers' own model with its default attention (SDPA), as a user would.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import median_time  # noqa: E402 (run as a script on the GPU machine: ROOT first)


def timed(fn, repeat: int, warmup: int = 3) -> float:
    return median_time(fn, repeat, warmup)[0]


def export_dirs(out: Path) -> tuple[Path, Path]:
    """fp32 and fp16 graphs of a random base VideoMAE, with the repo's exporter and its ORT-vs-torch check."""
    from models import hf_random
    from models.hf_export import check_parity, export_module
    from models.hf_network import HFVideoClassifier

    model, _ = hf_random.build("videomae", "base")
    model.config._attn_implementation = "eager"
    wrapped = HFVideoClassifier(model)
    dirs = []
    for fp16 in (False, True):
        d = out / ("videomae-base-fp16" if fp16 else "videomae-base")
        d.mkdir(parents=True, exist_ok=True)
        export_module(wrapped, d / "model.onnx", fp16=fp16)
        print(f"exported {d}: parity {check_parity(wrapped, d / 'model.onnx', fp16)}", flush=True)
        dirs.append(d)
    return dirs[0], dirs[1]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", type=Path, help="an exported fp32 model directory (model.onnx)")
    p.add_argument("--fp16-dir", type=Path, help="an exported fp16 model directory")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "hf-gpu")
    p.add_argument("--batches", type=int, nargs="*", default=[1, 8])
    p.add_argument("--repeat", type=int, default=20)
    args = p.parse_args(argv)

    import onnxruntime as ort
    import torch
    import transformers

    assert torch.cuda.is_available(), "no CUDA device"
    assert "CUDAExecutionProvider" in ort.get_available_providers(), "onnxruntime-gpu's CUDA EP is missing"
    fp32_dir, fp16_dir = args.model_dir, args.fp16_dir
    if fp32_dir is None:
        fp32_dir, fp16_dir = export_dirs(args.out)
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, transformers {transformers.__version__}, "
          f"onnxruntime {ort.__version__}")

    cfg = transformers.VideoMAEConfig(num_labels=400)
    torch.manual_seed(0)
    hf = transformers.VideoMAEForVideoClassification(cfg).eval().cuda()  # default attention (SDPA)
    rows = []
    for batch in args.batches:
        x = np.random.default_rng(batch).standard_normal((batch, 16, 3, 224, 224)).astype(np.float32)
        xt = torch.from_numpy(x).cuda()

        def torch_run(model=hf, inp=xt):
            with torch.inference_mode():
                model(pixel_values=inp).logits.float().cpu()
            torch.cuda.synchronize()

        row = {"batch": batch, "torch fp32": timed(torch_run, args.repeat)}
        hf16, x16 = hf.half(), xt.half()  # in place: .float() below restores it (weights are random anyway)
        row["torch fp16"] = timed(lambda m=hf16, inp=x16: torch_run(m, inp), args.repeat)
        hf.float()
        for label, d in (("ORT CUDA fp32", fp32_dir), ("ORT CUDA fp16", fp16_dir)):
            if d is None:
                continue
            session = ort.InferenceSession(str(Path(d) / "model.onnx"),
                                           providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
            row[label] = timed(lambda s=session, inp=x: s.run(None, {"frames": inp}), args.repeat)
            del session
        rows.append(row)
    names = [k for k in rows[0] if k != "batch"]
    print("| batch | " + " | ".join(f"{n} ms" for n in names) + " | " + " | ".join(
        f"{n} / torch fp32" for n in names[1:]) + " | clips/s (best) |")
    print("|" + "---|" * (1 + 2 * len(names)))
    for row in rows:
        best = min(row[n] for n in names)
        print(f"| {row['batch']} | " + " | ".join(f"{row[n] * 1000:.1f}" for n in names) + " | "
              + " | ".join(f"{row[n] / row['torch fp32']:.2f}" for n in names[1:])
              + f" | {row['batch'] / best:.1f} |")


if __name__ == "__main__":
    main()
