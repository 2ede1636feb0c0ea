"""GPU benchmark, for a machine with an NVIDIA GPU (CUDA 13 driver, onnxruntime-gpu).

    python -m bench.gpu [--batches 1 2 4 8 16 32 64] [--repeat 20] [--seconds 30] [--cpu-smoke]

1. model: what service.runtime runs (ONNX Runtime, CUDA execution provider, IO binding) on
   the fp32 and the fp16 export of the same weights, against torch eager fp32 on the GPU;
   host numpy in, host numpy out for both. Clips/s per batch size and fp16 ORT x torch.
2. decode: NVDEC (PyAV hwaccel=cuda, models.frames.hardware_decoder) against the CPU
   decoder on the frames /classify takes from the two bench clips.
3. load: `python -m service` with EXECUTION_PROVIDER=cuda under 16 concurrent uploads for
   --seconds, with `nvidia-smi` sampling utilization.gpu (the share of time a kernel ran).

Every figure is compared with its baseline in the same run (interleaved rounds). Without a
usable GPU it says so and measures nothing; --cpu-smoke runs parts 1 and 2 on the CPU
instead, to check the script on a machine without one (those are not GPU figures).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from bench.common import BENCH_CLIPS, CLIP_720P_10S, cores, ensure_clip, interleaved_medians, machine_note, table
from bench.decode import frame_plan
from models import frames as F

CUDA = "CUDAExecutionProvider"


def gpu_state() -> tuple[bool, str]:
    """(usable, what was found): a CUDA EP that a real session keeps, and torch seeing the GPU."""
    import torch

    found = f"onnxruntime {ort.__version__} providers {ort.get_available_providers()}; " \
            f"torch {torch.__version__} cuda available {torch.cuda.is_available()}"
    return CUDA in ort.get_available_providers() and torch.cuda.is_available(), found


def export_pair(out: Path) -> tuple[Path, Path, object]:
    """fp32 and fp16 model directories of the same weights, and the torch network."""
    import torch

    from bench.model import DEFAULT_CHECKPOINT
    from models.export import export, load_checkpoint
    from models.network import NetworkConfig, VideoTransformer
    from models.synthetic import LABELS

    checkpoint = DEFAULT_CHECKPOINT
    if not checkpoint.exists():
        # Only the ONNX file ships; speed does not depend on the weights' values.
        torch.manual_seed(0)
        net = VideoTransformer(NetworkConfig()).eval()
        checkpoint = out / "seeded.pt"
        torch.save({"config": net.cfg.to_dict(), "model": net.state_dict(), "labels": list(LABELS),
                    "mean": [0.5] * 3, "std": [0.25] * 3}, checkpoint)
    export(checkpoint, out / "fp32", "bench", "1")
    export(checkpoint, out / "fp16", "bench", "1", fp16=True)
    return out / "fp32", out / "fp16", load_checkpoint(checkpoint)[0]


def model_part(batches: list[int], repeat: int, on_gpu: bool) -> str:
    import torch

    from service.runtime import OnnxModel

    device = "cuda" if on_gpu else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        fp32_dir, fp16_dir, net = export_pair(Path(tmp))
        ort32 = OnnxModel(fp32_dir, provider=device, io_binding="on")
        ort16 = OnnxModel(fp16_dir, provider=device, io_binding="on")
    net = net.to(device)
    rng = np.random.default_rng(0)
    rows = []
    for b in batches:
        x = rng.standard_normal((b, *ort32.clip_shape), dtype=np.float32)

        def run_torch(x: np.ndarray = x) -> np.ndarray:
            with torch.inference_mode():
                return net(torch.from_numpy(x).to(device))[0].cpu().numpy()  # .cpu() waits for the GPU

        diff16 = float(np.abs(ort16.run(x)["logits"] - run_torch()).max())
        t = interleaved_medians([("torch", run_torch), ("ort32", lambda x=x: ort32.run(x)),
                                 ("ort16", lambda x=x: ort16.run(x))], repeat)
        rows.append((b, b / t["torch"], b / t["ort32"], b / t["ort16"], t["torch"] / t["ort16"], diff16))
    return "\n".join([
        f"providers in use: fp32 {ort32.providers}, fp16 {ort16.providers}; torch on {device}",
        "",
        table(["batch", "torch eager fp32 clips/s", "ORT fp32 clips/s", "ORT fp16 clips/s",
               "ORT fp16 x torch fp32", "max |logits fp16 - torch|"], rows),
    ])


def decode_part(repeat: int, clips: list[str] | None = None) -> str:
    accel = F.hardware_decoder("cuda")
    if accel is None:
        return "NVDEC: no usable CUDA device for FFmpeg (hardware_decoder returned None): not measured"
    rows = []
    for plan in BENCH_CLIPS:
        if clips and plan.name not in clips:
            continue
        path = ensure_clip(plan)
        info = F.probe_video(path)
        indices = frame_plan(info, 16, True)
        cases = [
            ("cpu", lambda p=path, i=info, ix=indices: F.read_frames(p, i, ix, (64, 64), threads=cores(),
                                                                      workers=cores())),
            ("nvdec", lambda p=path, i=info, ix=indices: F.read_frames(p, i, ix, (64, 64), hwaccel=accel)),
        ]
        t = interleaved_medians(cases, repeat)
        rows.append((path.name, len(indices), t["cpu"], t["nvdec"], t["cpu"] / t["nvdec"]))
    return table(["clip", "frames", "CPU decoder s", "NVDEC s", "NVDEC speed-up"], rows)


def load_part(seconds: float, model: str = "motion") -> str:
    """The service on CUDA serving one shipped model under 16 concurrent uploads of the 720p clip."""
    from bench import e2e

    smi = shutil.which("nvidia-smi")
    if smi is None:
        return "nvidia-smi not found: GPU busy share not measured"
    path = ensure_clip(CLIP_720P_10S)
    port = e2e.free_port()
    log = Path(tempfile.gettempdir()) / f"bench-gpu-service-{model}.log"
    try:
        proc = e2e.start_service(e2e.default_model_dir().parent / model, port, log, {"EXECUTION_PROVIDER": "cuda"})
    except RuntimeError as exc:
        return f"{model}: the service did not start ({exc}):\n{log.read_text()[-3000:]}"
    sampler = subprocess.Popen([smi, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-lms", "200"],
                               stdout=subprocess.PIPE, text=True)
    try:
        started = time.perf_counter()
        lat, failed, wall, _ = asyncio.run(e2e.load(f"http://127.0.0.1:{port}", path.read_bytes(), path.name,
                                                    16, 10**6, seconds))
    finally:
        sampler.terminate()
        samples = [float(v) for v in sampler.communicate()[0].split() if v.strip().replace(".", "").isdigit()]
        e2e.stop_service(proc)
    busy = statistics.mean(samples) if samples else float("nan")
    p50 = statistics.median(lat) * 1000 if lat else float("nan")
    return (f"{model}: service on CUDA, concurrency 16, {time.perf_counter() - started:.0f} s: "
            f"{len(lat) / wall:.2f} requests/s, p50 {p50:.0f} ms, {failed} failed; "
            f"GPU busy (nvidia-smi utilization.gpu, {len(samples)} samples): {busy:.1f}%")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the load part")
    parser.add_argument("--clips", nargs="+", choices=[p.name for p in BENCH_CLIPS], default=None,
                        help="decode part: only these bench clips (rendering the 60 s 1080p one takes minutes)")
    parser.add_argument("--load-models", nargs="*", default=["motion", "imagenet"],
                        help="shipped models the load part serves, one after the other")
    parser.add_argument("--skip", nargs="*", default=[], choices=["model", "decode", "load"])
    parser.add_argument("--cpu-smoke", action="store_true", help="no GPU: run parts 1-2 on the CPU")
    args = parser.parse_args(argv)
    usable, found = gpu_state()
    print(f"machine: {machine_note()}\n{found}\n")
    if not usable and not args.cpu_smoke:
        print("no usable GPU here: nothing measured (--cpu-smoke checks the script on the CPU)")
        return
    if not usable:
        print("CPU SMOKE RUN: these are not GPU figures\n")
    if "model" not in args.skip:
        print("## model\n\n" + model_part(args.batches, args.repeat, usable) + "\n", flush=True)
    if "decode" not in args.skip:
        print("## decode\n\n" + decode_part(max(3, args.repeat // 4), args.clips) + "\n", flush=True)
    if usable and "load" not in args.skip:
        for model in args.load_models:
            print("## load\n\n" + load_part(args.seconds, model), flush=True)


if __name__ == "__main__":
    main()
