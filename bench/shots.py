"""Shot detection on footage this project's scene generator did not make, side by side with
PySceneDetect (ContentDetector and AdaptiveDetector, default settings).

    python -m bench.shots --set ffmpeg --seeds 1000-1007        # bench.shotgen_ffmpeg: ffmpeg's sources + xfade
    python -m bench.shots --set real --seeds 2000-2007          # bench.shotreal: real clips and photos, edited
    python -m bench.shots --set ffmpeg,real --seeds 1100-1103   # both, interleaved (real seeds 2100-2103)
    python -m bench.shots --table runs.jsonl                    # tables of a --jsonl record

Scoring is bench.scenes': a keyframe hits a shot when it lies in the shot's clean span (0.1 s
margin); coverage = shots hit / shots, precision = distinct shots hit / keyframes, F1 their
harmonic mean; PySceneDetect gets one middle-frame keyframe per scene it finds. `ours` is the
/summarize pipeline in-process (decode, model, summarize), max_keyframes 16 so that the cap does
not hide a missed shot. Times are per video, decode included, for every method, in the same
run, one after the other on the same file: `s/video` wall-clock, `cpu s/video` the process's
CPU time (every thread: FFmpeg's, OpenCV's, ONNX Runtime's), which a busy shared machine
disturbs less than the wall clock. `x content` = mean seconds / ContentDetector's mean seconds;
`median x` = the median over videos of each video's own wall ratio (and of its CPU ratio).
`--repeat N` times every method N times per video, in rounds, and keeps the medians.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.scenegen import SceneVideo, generate_video
from bench.scenes import ROOT, Pipeline, parse_seeds, scenedetect_keyframes, score_keyframes
from service.summarize import DEFAULT_SUMMARY_FPS, DEFAULT_SUMMARY_MAX_FRAMES

SETS = {
    "scenegen": ("hard", "crossfade", "fade-black", "mixed"),
    "ffmpeg": ("hard", "fade", "dissolve", "fadeblack", "wipe", "mixed"),
    "real": ("street", "hard", "dissolve", "fadeblack", "wipe", "short", "mixed"),
}
GRADUAL = {"crossfade", "fade-black", "fade", "dissolve", "fadeblack", "wipe"}


def make_video(which: str, kind: str, seed: int, cache: Path) -> SceneVideo:
    if which == "real" and kind == "street":
        from bench.shotreal import bikes

        return bikes()
    path = cache / which / f"{kind}_s{seed}.mp4"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        return SceneVideo.from_json(path, meta.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    if which == "scenegen":
        video = generate_video(path, seed, kind)
    elif which == "ffmpeg":
        from bench.shotgen_ffmpeg import generate_ffmpeg_video

        video = generate_ffmpeg_video(path, seed, kind)
    else:
        from bench.shotreal import generate_real_edit

        video = generate_real_edit(path, seed, kind, cache / "real")
    meta.write_text(video.to_json())
    return video


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return usage.ru_utime + usage.ru_stime


def timed(fn: Callable[[], list[float]]) -> tuple[list[float], float, float]:
    """fn's answer, its wall seconds and the CPU seconds the process spent meanwhile."""
    wall, cpu = time.perf_counter(), _cpu_s()
    out = fn()
    return out, time.perf_counter() - wall, _cpu_s() - cpu


def _median_ratio(rows: list[dict], sel: list[dict], field: str) -> str:
    base = {(r["set"], r["type"], r["seed"]): r.get(field) for r in rows if r["method"] == "content"}
    ratios = []
    for r in sel:
        ref = base.get((r["set"], r["type"], r["seed"]))
        if r.get(field) is not None and ref:
            ratios.append(r[field] / ref)
    return f"{statistics.median(ratios):.2f}" if ratios else "n/a"


def table(records: list[dict], which: str) -> str:
    """The side-by-side table of one set from per-video records."""
    rows = [r for r in records if r["set"] == which]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    kinds = list(dict.fromkeys(r["type"] for r in rows))
    out = ["| type | method | F1 | coverage | precision | s/video | x content | median x | cpu s/video "
           "| cpu x content | cpu median x | videos |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    groups = [*kinds, "gradual", "all"]
    for kind in groups:
        def pick(r: dict, kind: str = kind) -> bool:
            return kind == "all" or r["type"] == kind or (kind == "gradual" and r["type"] in GRADUAL)
        base = [r["seconds"] for r in rows if pick(r) and r["method"] == "content"]
        for name in methods:
            sel = [r for r in rows if pick(r) and r["method"] == name]
            if not sel:
                continue
            f1, cov, prec, secs = (
                statistics.fmean(r[f] for r in sel) for f in ("f1", "coverage", "precision", "seconds")
            )
            ratio = f"{secs / statistics.fmean(base):.2f}" if base else "n/a"
            cpus = [r["cpu_seconds"] for r in sel if r.get("cpu_seconds") is not None]
            cpu_base = [r["cpu_seconds"] for r in rows if pick(r) and r["method"] == "content" and r.get("cpu_seconds")]
            cpu = statistics.fmean(cpus) if cpus else None
            cpu_ratio = f"{cpu / statistics.fmean(cpu_base):.2f}" if cpu is not None and cpu_base else "n/a"
            out.append(f"| {kind} | {name} | {f1:.3f} | {cov:.3f} | {prec:.3f} | {secs:.3f} | {ratio} "
                       f"| {_median_ratio(rows, sel, 'seconds')} | {'n/a' if cpu is None else f'{cpu:.3f}'} "
                       f"| {cpu_ratio} | {_median_ratio(rows, sel, 'cpu_seconds')} | {len(sel)} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", dest="which", default="ffmpeg",
                    help=f"one or more of {', '.join(sorted(SETS))}, comma separated (interleaved seed by seed)")
    ap.add_argument("--seeds", default="1000-1003", help="seeds of the first set; the k-th set adds 1000 x k")
    ap.add_argument("--types", default=None, help="comma separated (default: all of the set's)")
    ap.add_argument("--max-keyframes", type=int, default=16)
    ap.add_argument("--cache", type=Path, default=ROOT / ".cache" / "shots")
    ap.add_argument("--jsonl", type=Path, default=None, help="append one record per video and method here")
    ap.add_argument("--table", type=Path, default=None, help="only print the tables of a --jsonl file")
    ap.add_argument("--no-scenedetect", action="store_true")
    ap.add_argument("--repeat", type=int, default=1,
                    help="time every method this many times per video, in rounds (median kept): steadier "
                         "ratios on a busy machine")
    args = ap.parse_args(argv)

    sets = args.which.split(",")
    if args.table:
        records = [json.loads(line) for line in args.table.read_text().splitlines() if line.strip()]
        for which in dict.fromkeys(r["set"] for r in records):
            print(f"\nset {which}\n{table(records, which)}")
        return 0
    pipeline = Pipeline(ROOT / "models" / "motion", DEFAULT_SUMMARY_FPS, DEFAULT_SUMMARY_MAX_FRAMES)
    methods: dict[str, Callable[[Path], list[float]]] = {}
    if not args.no_scenedetect:
        methods["content"] = lambda p: scenedetect_keyframes(p, "content")
        methods["adaptive"] = lambda p: scenedetect_keyframes(p, "adaptive")
    methods["ours"] = lambda p: pipeline.keyframes(p, args.max_keyframes)

    # Seed by seed over every set and type, so that a run cut short still covers all of them.
    jobs: list[tuple[str, str, int]] = []
    for k, seed in enumerate(parse_seeds(args.seeds)):
        for j, which in enumerate(sets):
            kinds = args.types.split(",") if args.types else list(SETS[which])
            for kind in kinds:
                if kind == "street" and k:
                    continue  # one real street clip
                jobs.append((which, kind, seed + 1000 * j))
    records: list[dict] = []
    for which, kind, seed in jobs:
        video = make_video(which, kind, seed, args.cache)
        line = [f"{which:8s} {kind:10s} s{seed:<5d} {len(video.scenes)} shots {video.duration_s:5.1f}s"]
        # Rounds of every method in turn, so that a change of load hits all of them alike.
        runs: dict[str, list[tuple[list[float], float, float]]] = {name: [] for name in methods}
        for _ in range(max(1, args.repeat)):
            for name, fn in methods.items():
                runs[name].append(timed(lambda fn=fn, video=video: fn(video.path)))
        for name in methods:
            times = runs[name][0][0]
            secs = statistics.median(r[1] for r in runs[name])
            cpu = statistics.median(r[2] for r in runs[name])
            sc = score_keyframes(video, times, secs)
            rec = {"set": which, "type": kind, "seed": seed, "method": name, "f1": sc.f1, "coverage": sc.coverage,
                   "precision": sc.precision, "seconds": secs, "cpu_seconds": cpu, "keyframes": sc.keyframes,
                   "shots": len(video.scenes)}
            records.append(rec)
            if args.jsonl:
                with args.jsonl.open("a") as f:
                    f.write(json.dumps(rec) + "\n")
            line.append(f"{name} F1 {sc.f1:.2f} cov {sc.coverage:.2f} ({sc.keyframes}k, {secs:.2f}s, cpu {cpu:.2f}s)")
        print("  ".join(line), flush=True)
    for which in sets:
        print(f"\nset {which}\n{table(records, which)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
