"""What a pretrained backbone buys on the motion task: top-1 from 500 and 2,000 training clips.

    python -m bench.backbone --device cuda --out runs/backbone           # train the six runs
    python -m bench.backbone --evaluate-only bench/results/backbone-h200.json   # re-read results
    python -m bench.backbone --serve-cost runs/x/scratch runs/x/finetuned      # cost per clip, this CPU

Six runs of `models.train`, one pipeline with the service's: the seed's per-frame CNN trained
from scratch, ImageNet-pretrained EfficientNet-Lite0 blocks kept frozen (their features
computed once per clip and cached), and the same blocks fine-tuned (at 0.1x the learning
rate), each on the first 500 and on the first 2,000 clips of one synthetic training set.
Every run gets the same optimisation budget (`--clip-passes` clips through the network,
so 4x the epochs at 500 clips) and is scored on the same 1,000 held-out synthetic clips,
the best epoch kept as `models.train` keeps it.

Printed per run: held-out top-1, training seconds per clip pass (the feature cache
included), and the network's parameters (trained / total). What a clip costs to serve is
measured separately on this CPU (`--serve-cost`, ONNX Runtime on the exported runs), and
how the runs fare on clips they were not drawn from (the independent renderer, bench.shift)
by `--shift N`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

RUNS = (("scratch", []), ("frozen", ["--backbone", "efficientnet_lite0", "--freeze-backbone"]),
        ("finetuned", ["--backbone", "efficientnet_lite0"]))


def prepare_data(cache: Path, sizes: list[int], val_size: int, workers: int, seed: int = 0,
                 frames: int = 16, size: int = 64, share: float = 0.15) -> None:
    """Generate the largest training set once; the smaller ones are its first clips (the
    synthetic set's clip i depends on (seed, i) alone), written under their own cache keys."""
    from models.train import synthetic_cache_path, synthetic_dataset

    big = max(sizes)
    data = synthetic_dataset(seed, big, frames, size, share, workers, cache, f"generate {big}")
    for n in sizes:
        path = synthetic_cache_path(cache, seed, n, frames, size, share)
        if n != big and not path.exists():
            np.savez(path, clips=data.clips[:n], labels=data.labels[:n])
    synthetic_dataset(seed + 7919, val_size, frames, size, share, workers, cache, "generate val")


def train_all(args: argparse.Namespace) -> list[dict]:
    cache = args.out / "cache"
    results: list[dict] = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        prepare_data(cache, args.sizes, args.val_size, args.workers, seed)
        print(f"data of seed {seed} ready in {time.perf_counter() - t0:.0f} s", flush=True)
        train_seed(args, seed, cache, results)
    return results


def train_seed(args: argparse.Namespace, seed: int, cache: Path, results: list[dict]) -> None:
    """The runs of one replicate: its own training and validation clips and initialisation."""
    from models.train import build_parser, train

    for n in args.sizes:
        epochs = max(1, round(args.clip_passes / n))
        for name, extra in RUNS:
            if name not in args.runs:
                continue
            run = args.out / f"{name}-{n}-s{seed}"
            if run.exists():
                shutil.rmtree(run)
            argv = ["--out", str(run), "--cache", str(cache), "--train-size", str(n), "--val-size",
                    str(args.val_size), "--epochs", str(epochs), "--batch-size", str(args.batch_size),
                    "--workers", str(args.workers), "--device", args.device, "--quiet", "--seed", str(seed),
                    "--eval-every", str(max(1, epochs // 10)), *extra]
            print(f"== {name}, {n} clips, {epochs} epochs, seed {seed}", flush=True)
            metrics = train(build_parser().parse_args(argv))
            results.append(summarize(name, n, run, metrics) | {"seed": seed})
            # After every run: a run cut short still leaves the ones before it.
            (args.out / "results.json").write_text(json.dumps(results, indent=2))


def summarize(name: str, n: int, run: Path, metrics: dict) -> dict:
    import torch

    state = torch.load(run / "best.pt", map_location="cpu", weights_only=False)
    total = sum(v.numel() for k, v in state["model"].items() if not k.endswith(("running_mean", "running_var",
                                                                                 "num_batches_tracked")))
    pretrained = sum(v.numel() for k, v in state["model"].items()
                     if k.startswith(("stem.conv_stem", "stem.bn0", "stem.blocks"))
                     and not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    trained = total - pretrained if name == "frozen" else total
    best = metrics["best_val"] or {}
    return {"run": name, "train_clips": n, "epochs": metrics["epochs"], "val_top1": metrics["final_val_top1"],
            "best_val_top1": best.get("top1"),
            "val_clips": best.get("count"), "best_epoch": int(state["epoch"]) + 1,
            "train_seconds": metrics["train_seconds"], "feature_cache_seconds": metrics["feature_cache_seconds"],
            "seconds_per_clip_pass": metrics["seconds_per_clip"], "params_total": total,
            "params_trained": trained}


def print_table(results: list[dict]) -> None:
    print(f"\n{'run':>10s} {'clips':>6s} {'seed':>4s} {'epochs':>6s} {'top-1':>6s} {'train s':>8s} "
          f"{'ms/clip pass':>12s} {'params trained/total':>22s}")
    for r in results:
        print(f"{r['run']:>10s} {r['train_clips']:6d} {r.get('seed', 0):4d} {r['epochs']:6d} {r['val_top1']:6.3f} "
              f"{r['train_seconds'] + r['feature_cache_seconds']:8.1f} {1000 * r['seconds_per_clip_pass']:12.3f} "
              f"{r['params_trained']:>10,d} / {r['params_total']:<10,d}")
    groups: dict[tuple[str, int], list[float]] = {}
    for r in results:
        groups.setdefault((r["run"], r["train_clips"]), []).append(r["val_top1"])
    print(f"\nheld-out top-1 after the last epoch, over seeds:\n{'run':>10s} {'clips':>6s} {'mean':>6s} "
          f"{'min':>6s} {'max':>6s} {'seeds':>5s}")
    for (name, n), v in sorted(groups.items(), key=lambda kv: (kv[0][1], [r for r, _ in RUNS].index(kv[0][0]))):
        print(f"{name:>10s} {n:6d} {np.mean(v):6.3f} {min(v):6.3f} {max(v):6.3f} {len(v):5d}")


def serve_cost(model_dirs: list[Path], batches: tuple[int, ...] = (1, 8), rounds: int = 5, repeat: int = 10) -> None:
    """ONNX Runtime on this CPU, as the service runs it: ms per clip of each exported run at each
    batch size, rounds interleaved so that load on the machine falls on every model alike;
    ratios against the first directory."""
    import onnxruntime as ort

    from models.manifest import ModelManifest

    sessions = []
    for d in model_dirs:
        m = ModelManifest.load(d)
        sessions.append((d.name, m, ort.InferenceSession(str(d / m.onnx_file), providers=["CPUExecutionProvider"])))
    times: dict[tuple[str, int], list[float]] = {}
    rng = np.random.default_rng(0)
    for _ in range(rounds):
        for b in batches:
            for name, m, sess in sessions:
                x = rng.standard_normal((b, m.num_frames, 3, *m.size)).astype(np.float32)
                sess.run(None, {m.input_name: x})  # warm this shape
                t0 = time.perf_counter()
                for _ in range(repeat):
                    sess.run(None, {m.input_name: x})
                times.setdefault((name, b), []).append((time.perf_counter() - t0) / repeat / b)
    base = sessions[0][0]
    print(f"\nONNX Runtime CPU, ms per clip (median of {rounds} interleaved rounds), ratio to {base}:")
    for b in batches:
        ref = float(np.median(times[(base, b)]))
        for name, _, _ in sessions:
            ms = float(np.median(times[(name, b)]))
            print(f"  batch {b:2d} {name:>16s} {1000 * ms:8.2f} ms/clip  x{ms / ref:.2f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/backbone"))
    ap.add_argument("--sizes", type=int, nargs="+", default=[500, 2000])
    ap.add_argument("--val-size", type=int, default=1000)
    ap.add_argument("--clip-passes", type=int, default=40000,
                    help="clips through the network per run (epochs = this / training clips)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--runs", nargs="+", default=[name for name, _ in RUNS], choices=[name for name, _ in RUNS])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0],
                    help="replicates: each seed draws its own training and validation clips and initialisation")
    ap.add_argument("--evaluate-only", type=Path, metavar="RESULTS_JSON",
                    help="print the tables of an earlier run's results.json instead of training")
    ap.add_argument("--serve-cost", type=Path, nargs="+", metavar="MODEL_DIR",
                    help="exported runs (models.export): time them on ONNX Runtime CPU instead of training")
    args = ap.parse_args(argv)
    if args.serve_cost:
        serve_cost(args.serve_cost)
        return 0
    if args.evaluate_only:
        results = json.loads(args.evaluate_only.read_text())
    else:
        import torch

        if args.device.startswith("cuda") and not torch.cuda.is_available():
            sys.exit("--device cuda: no CUDA device here")
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels
        print("torch", torch.__version__, "device", args.device,
              torch.cuda.get_device_name() if args.device.startswith("cuda") else "", flush=True)
        args.out.mkdir(parents=True, exist_ok=True)
        results = train_all(args)
    print_table(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
