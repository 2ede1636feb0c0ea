"""Shot detection on footage this project's scene generator did not make, side by side with
PySceneDetect (ContentDetector and AdaptiveDetector, default settings).

    python -m bench.shots --set ffmpeg --seeds 1000-1007        # bench.shotgen_ffmpeg: ffmpeg's sources + xfade
    python -m bench.shots --set real --seeds 2000-2007          # bench.shotreal: real clips and photos, edited
    python -m bench.shots --set scenegen --seeds 400-407        # the project's own generator (bench.scenegen)

Scoring is bench.scenes': a keyframe hits a shot when it lies in the shot's clean span (0.1 s
margin); coverage = shots hit / shots, precision = distinct shots hit / keyframes, F1 their
harmonic mean; PySceneDetect gets one middle-frame keyframe per scene it finds. `ours` is the
/summarize pipeline in-process (decode, model, summarize), max_keyframes 16 so that the cap does
not hide a missed shot. Times are wall-clock per video, decode included, for every method, in
the same run; `x content` = our time / ContentDetector's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from bench.scenegen import SceneVideo, generate_video
from bench.scenes import ROOT, Pipeline, Score, parse_seeds, scenedetect_keyframes, score_keyframes, timed
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", dest="which", choices=sorted(SETS), default="ffmpeg")
    ap.add_argument("--seeds", default="1000-1003")
    ap.add_argument("--types", default=None, help="comma separated (default: all of the set's)")
    ap.add_argument("--max-keyframes", type=int, default=16)
    ap.add_argument("--cache", type=Path, default=ROOT / ".cache" / "shots")
    ap.add_argument("--no-scenedetect", action="store_true")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)

    model_dir = ROOT / "models" / "motion"
    pipeline = Pipeline(model_dir, DEFAULT_SUMMARY_FPS, DEFAULT_SUMMARY_MAX_FRAMES)
    methods: dict[str, Callable[[Path], list[float]]] = {}
    if not args.no_scenedetect:
        methods["content"] = lambda p: scenedetect_keyframes(p, "content")
        methods["adaptive"] = lambda p: scenedetect_keyframes(p, "adaptive")
    methods["ours"] = lambda p: pipeline.keyframes(p, args.max_keyframes)

    types = args.types.split(",") if args.types else list(SETS[args.which])
    results: dict[tuple[str, str], list[Score]] = defaultdict(list)
    for kind in types:
        seeds = [0] if kind == "street" else parse_seeds(args.seeds)
        for seed in seeds:
            video = make_video(args.which, kind, seed, args.cache)
            line = [f"{kind:10s} s{seed:<5d} {len(video.scenes)} shots {video.duration_s:5.1f}s"]
            for name, fn in methods.items():
                times, secs = timed(lambda fn=fn, video=video: fn(video.path))
                sc = score_keyframes(video, times, secs)
                results[(kind, name)].append(sc)
                results[("all", name)].append(sc)
                if kind in GRADUAL:
                    results[("gradual", name)].append(sc)
                line.append(f"{name} F1 {sc.f1:.2f} cov {sc.coverage:.2f} ({sc.keyframes}k, {secs:.2f}s)")
            if not args.quiet:
                print("  ".join(line), flush=True)

    print()
    print(f"set {args.which}, seeds {args.seeds}")
    print("| type | method | F1 | coverage | precision | s/video | x content | videos |")
    print("|---|---|---|---|---|---|---|---|")
    for kind in [*types, "gradual", "all"]:
        base = results.get((kind, "content"))
        for name in methods:
            rows = results.get((kind, name))
            if not rows:
                continue
            f1, cov, prec, secs = (
                statistics.fmean(getattr(r, f) for r in rows) for f in ("f1", "coverage", "precision", "seconds")
            )
            ratio = f"{secs / statistics.fmean(r.seconds for r in base):.2f}" if base else "n/a"
            print(f"| {kind} | {name} | {f1:.3f} | {cov:.3f} | {prec:.3f} | {secs:.3f} | {ratio} | {len(rows)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
