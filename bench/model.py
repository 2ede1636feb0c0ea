"""Model benchmark: ONNX Runtime (CPU execution provider) against torch eager, same weights.

    python -m bench.model [--checkpoint runs/motion/best.pt] [--batches 1 8 32] [--repeat 7]

The checkpoint is exported to a temporary ONNX file with models.export.export_onnx (the
graph the service runs), both runtimes get the same thread count (this process's cores)
and the same random input, outputs are checked to agree, then each batch size is timed:
the median of --repeat runs after two untimed warm-ups, torch and ORT alternating run
by run so that a change in machine load hits both alike.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.common import ROOT, cores, machine_note, table

DEFAULT_CHECKPOINT = ROOT / "runs" / "motion" / "best.pt"  # what `make model` leaves behind


def interleaved(a: Callable[[], object], b: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median seconds of `a` and of `b`, run alternately so that a change in load hits both."""
    ta, tb = [], []
    for i in range(repeat + 2):
        for fn, times in ((a, ta), (b, tb)):
            start = time.perf_counter()
            fn()
            if i >= 2:  # two warm-ups each
                times.append(time.perf_counter() - start)
    return statistics.median(ta), statistics.median(tb)


def run(checkpoint: Path | None, batches: list[int], repeat: int) -> str:
    # Imported here: torch is only in the [train] extra, and --help should work without it.
    import onnxruntime as ort
    import torch

    from models.export import export_onnx, load_checkpoint

    n = cores()
    torch.set_num_threads(n)
    if checkpoint is not None:
        model, _ = load_checkpoint(checkpoint)
    else:
        # Only the exported ONNX file ships, not its torch weights. Speed does not depend
        # on the weights' values, so a seeded network of the shipped shape stands in.
        from models.network import NetworkConfig, VideoTransformer

        torch.manual_seed(0)
        model = VideoTransformer(NetworkConfig()).eval()
    cfg = model.cfg
    options = ort.SessionOptions()
    options.intra_op_num_threads = n
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        export_onnx(model, onnx_path)
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    rows = []
    worst = 0.0
    for b in batches:
        x = rng.standard_normal((b, cfg.num_frames, 3, cfg.height, cfg.width), dtype=np.float32)
        xt = torch.from_numpy(x)

        def torch_run(xt: torch.Tensor = xt) -> np.ndarray:
            with torch.inference_mode():
                return model(xt)[0].numpy()

        def ort_run(x: np.ndarray = x) -> np.ndarray:
            return session.run(["logits"], {"frames": x})[0]

        worst = max(worst, float(np.abs(torch_run() - ort_run()).max()))
        t_torch, t_ort = interleaved(torch_run, ort_run, repeat)
        rows.append((b, t_torch * 1e3, b / t_torch, t_ort * 1e3, b / t_ort, t_torch / t_ort))
    return "\n".join([
        f"machine: {machine_note()}",
        f"weights: {checkpoint or 'a seeded network of the default shape (no checkpoint here)'}; "
        f"torch {torch.__version__} eager fp32 (inference_mode), "
        f"onnxruntime {ort.__version__} CPUExecutionProvider fp32; {n} threads each; "
        f"median of {repeat}; input [B, {cfg.num_frames}, 3, {cfg.height}, {cfg.width}]",
        f"max |logits torch - logits ORT| over all batches: {worst:.2e}",
        "",
        table(["batch", "torch ms/batch", "torch clips/s", "ORT ms/batch", "ORT clips/s",
               "ORT speed-up (x torch)"], rows),
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="default: runs/motion/best.pt, else a seeded network of the default shape")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    checkpoint = args.checkpoint or (DEFAULT_CHECKPOINT if DEFAULT_CHECKPOINT.exists() else None)
    print(run(checkpoint, args.batches, args.repeat))


if __name__ == "__main__":
    main()
