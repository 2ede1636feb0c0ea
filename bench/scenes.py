"""Summaries side by side: our /summarize pipeline against PySceneDetect on multi-scene videos.

    python -m bench.scenes --seeds 100-111                     # in-process pipeline
    python -m bench.scenes --seeds 100-111 --url http://127.0.0.1:8000   # also over HTTP

Videos come from bench.scenegen (3-7 scenes of 1-4 s, hard cuts, 0.5 s crossfades, fades through
black; known clean spans). Score (the issue's): a keyframe hits scene j when its timestamp lies in
[start_j + 0.1, end_j - 0.1]; coverage = scenes hit / scenes; precision = distinct scenes hit /
keyframes returned; F1 = their harmonic mean. PySceneDetect gets one middle-frame keyframe per
detected scene. Times are wall-clock per video, decode included, for every method.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.scenegen import SceneVideo, generate_video
from models.frames import probe_video
from service.summarize import DEFAULT_SUMMARY_FPS, DEFAULT_SUMMARY_MAX_FRAMES

ROOT = Path(__file__).resolve().parents[1]
TYPES = ("hard", "crossfade", "fade-black", "mixed")


@dataclass(frozen=True)
class Score:
    f1: float
    coverage: float
    precision: float
    seconds: float
    keyframes: int


def score_keyframes(video: SceneVideo, times: list[float], seconds: float, margin: float = 0.1) -> Score:
    hit_by = [
        {j for j, s in enumerate(video.scenes) if s.start_s + margin <= t <= s.end_s - margin} for t in times
    ]
    hit = set().union(*hit_by) if hit_by else set()
    coverage = len(hit) / len(video.scenes)
    precision = len(hit) / len(times) if times else 0.0
    f1 = 2 * coverage * precision / (coverage + precision) if coverage + precision > 0 else 0.0
    return Score(f1, coverage, precision, seconds, len(times))


def scenedetect_keyframes(path: Path, detector: str) -> list[float]:
    from scenedetect import AdaptiveDetector, ContentDetector, detect

    det = ContentDetector() if detector == "content" else AdaptiveDetector()
    scenes = detect(str(path), det)
    if not scenes:  # no cut found: the whole video is one scene
        info = probe_video(path)
        return [info.duration_s / 2]
    return [(a.seconds + b.seconds) / 2 for a, b in scenes]


class Pipeline:
    """Our /summarize pipeline in-process (service.pipelines): probe, plan, decode, model, summarize."""

    def __init__(self, model_dir: Path, fps: float, max_frames: int) -> None:
        from service.pipelines import Pipelines
        from service.settings import Settings

        settings = Settings(model_dir=model_dir, summarize_fps=fps, summarize_max_frames=max_frames,
                            max_duration_s=3600.0, max_pixels=1 << 26)
        self.pipelines = Pipelines.local(model_dir, settings)

    def keyframes(self, path: Path, max_keyframes: int) -> list[float]:
        answer = asyncio.run(self.pipelines.summarize(path, max_keyframes=max_keyframes))
        return [k.timestamp_s for k in answer.keyframes]


def http_keyframes(url: str, path: Path, max_keyframes: int) -> list[float]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
            "Content-Type: video/mp4\r\n\r\n"
        ).encode()
        + path.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    req = urllib.request.Request(
        f"{url.rstrip('/')}/summarize?max_keyframes={max_keyframes}",
        data=body,
        method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with urllib.request.urlopen(req, timeout=120) as resp:
        return [k["timestamp_s"] for k in json.load(resp)["keyframes"]]


def timed(fn: Callable[[], list[float]]) -> tuple[list[float], float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        seeds.extend(range(int(a), int(b) + 1) if b else [int(a)])
    return seeds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="100-107", help="generator seeds, e.g. 100-107 or 1,5,9")
    ap.add_argument("--types", default=",".join(TYPES), help="transition types, comma separated")
    ap.add_argument(
        "--model",
        type=Path,
        default=None,
        help="model dir (default: the shipped models/motion)",
    )
    ap.add_argument("--url", default=None, help="also score a running service's /summarize")
    ap.add_argument("--max-keyframes", type=int, default=8)
    ap.add_argument("--fps", type=float, default=DEFAULT_SUMMARY_FPS)
    ap.add_argument("--max-frames", type=int, default=DEFAULT_SUMMARY_MAX_FRAMES)
    ap.add_argument("--cache", type=Path, default=ROOT / ".cache" / "scenes")
    ap.add_argument("--no-scenedetect", action="store_true", help="skip PySceneDetect (faster iteration)")
    ap.add_argument("--quiet", action="store_true", help="only the summary table")
    args = ap.parse_args(argv)

    candidates = (ROOT / "models" / "motion",)
    model_dir = args.model or next((p for p in candidates if (p / "model.json").exists()), None)
    if model_dir is None:
        print("no model found: pass --model", file=sys.stderr)
        return 2
    pipeline = Pipeline(model_dir, args.fps, args.max_frames)
    methods: dict[str, Callable[[Path], list[float]]] = {}
    if not args.no_scenedetect:
        methods["content"] = lambda p: scenedetect_keyframes(p, "content")
        methods["adaptive"] = lambda p: scenedetect_keyframes(p, "adaptive")
    methods["ours"] = lambda p: pipeline.keyframes(p, args.max_keyframes)
    if args.url:
        methods["ours-http"] = lambda p: http_keyframes(args.url, p, args.max_keyframes)

    results: dict[tuple[str, str], list[Score]] = defaultdict(list)
    print(f"model {model_dir}  fps {args.fps}  max_keyframes {args.max_keyframes}")
    for kind in args.types.split(","):
        for seed in parse_seeds(args.seeds):
            path = args.cache / f"scenes_{kind}_s{seed}.mp4"
            meta = path.with_suffix(".json")
            if path.exists() and meta.exists():
                video = SceneVideo.from_json(path, meta.read_text())
            else:
                video = generate_video(path, seed, kind)
                meta.write_text(video.to_json())
            line = [f"{kind:10s} s{seed:<4d} {len(video.scenes)} scenes {video.duration_s:5.1f}s"]
            for name, fn in methods.items():
                times, secs = timed(lambda fn=fn, path=path: fn(path))
                sc = score_keyframes(video, times, secs)
                results[(kind, name)].append(sc)
                results[("all", name)].append(sc)
                line.append(f"{name} F1 {sc.f1:.2f} ({sc.keyframes}k, {secs:.2f}s)")
            if not args.quiet:
                print("  ".join(line), flush=True)

    print()
    print(f"{'type':10s} {'method':10s} {'F1':>6s} {'cover':>6s} {'prec':>6s} {'s/video':>8s} {'videos':>6s}")
    for kind in [*args.types.split(","), "all"]:
        for name in methods:
            rows = results[(kind, name)]
            if not rows:
                continue
            f1, cov, prec, secs = (
                statistics.fmean(getattr(r, f) for r in rows)
                for f in ("f1", "coverage", "precision", "seconds")
            )
            print(f"{kind:10s} {name:10s} {f1:6.3f} {cov:6.3f} {prec:6.3f} {secs:8.3f} {len(rows):6d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
