"""Decode benchmark: the model's T sampled frames against two full-decode baselines.

    python -m bench.decode [--repeat 3] [--frames 16] [--size 64]

For each clip, in the same run (so machine load hits every row alike):
  - sample: probe_video + read_frames of T uniform frames (one clip), and of the frames
    /classify plans for the video (service.pipeline.plan_clips with the default settings:
    several clips for a long video), in exact or fast mode, with or without the loop filter,
    on one decoder with frame threads or with the GOPs split over one decoder per core;
  - baseline (a): decode every frame and convert it to RGB with PyAV (the common approach);
  - baseline (b): `ffmpeg -threads <cores> -i clip -f null -` (FFmpeg's own full decode).
Each figure is the median of --repeat rounds (every row once per round, interleaved) after
one untimed warm-up.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import av

from bench.common import BENCH_CLIPS, cores, ensure_clip, interleaved_medians, machine_note, table
from models import frames as F


def full_decode_rgb(path: Path, threads: int) -> int:
    """Baseline (a): every frame decoded and converted to full-size RGB, as most code does."""
    count = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        for frame in container.decode(stream):
            frame.to_ndarray(format="rgb24")
            count += 1
    return count


def ffmpeg_full_decode(path: Path, threads: int, ffmpeg: str) -> None:
    """Baseline (b): FFmpeg's own full decode, output discarded."""
    subprocess.run([ffmpeg, "-v", "error", "-nostdin", "-threads", str(threads), "-i", str(path),
                    "-f", "null", "-"], check=True)


def frame_plan(info: F.VideoInfo, frames: int, classify: bool) -> list[int]:
    if not classify:
        return F.uniform_indices(info, frames)
    from service.pipeline import plan_clips
    from service.settings import Settings

    s = Settings()
    return [i for clip in plan_clips(info, frames, s.clip_window_s, s.max_clips) for i in clip]


def sample(path: Path, frames: int, size: int, classify: bool, mode: F.DecodeMode, loop_filter: bool,
           threads: int, workers: int) -> None:
    info = F.probe_video(path)
    F.read_frames(path, info, frame_plan(info, frames, classify), (size, size), threads=threads, mode=mode,
                  loop_filter=loop_filter, workers=workers)


def variants(frames: int, n: int, clips: int) -> list[tuple[str, bool, F.DecodeMode, bool, int, int]]:
    """(row name, classify plan?, mode, loop filter, threads, workers)."""
    out = []
    for classify, what in ((False, f"T={frames}"), (True, f"/classify plan ({clips}x{frames})")):
        out += [
            (f"sample {what} exact, frame threads", classify, "exact", True, n, 1),
            (f"sample {what} exact, GOP split", classify, "exact", True, n, n),
            (f"sample {what} exact, no loop filter, GOP split", classify, "exact", False, n, n),
            (f"sample {what} fast, no loop filter, GOP split", classify, "fast", False, n, n),
        ]
    return out


def run(repeat: int, frames: int, size: int) -> str:
    n = cores()
    ffmpeg = shutil.which("ffmpeg")
    lines = [f"machine: {machine_note()}", f"threads: {n} (decoder and ffmpeg), repeat {repeat}, median"]
    if ffmpeg is None:
        lines.append("ffmpeg: NOT FOUND on PATH: baseline (b) not measured "
                     "(Debian/Ubuntu: apt-get install -y ffmpeg)")
    else:
        version = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True).stdout.split("\n")[0]
        lines.append(f"ffmpeg: {version}")
    lines.append(f"PyAV {av.__version__} (FFmpeg libraries {av.library_versions['libavcodec']})")
    for plan in BENCH_CLIPS:
        path = ensure_clip(plan)
        info = F.probe_video(path)
        mbit = path.stat().st_size * 8 / info.duration_s / 1e6
        cases: list[tuple[str, Callable[[], object]]] = [
            ("baseline (a): PyAV full decode + RGB", lambda p=path: full_decode_rgb(p, n)),
        ]
        if ffmpeg is not None:
            cases.append((f"baseline (b): ffmpeg -threads {n} full decode",
                          lambda p=path, f=ffmpeg: ffmpeg_full_decode(p, n, f)))
        clips = len(frame_plan(info, frames, True)) // frames
        cases += [
            (name, lambda p=path, v=v: sample(p, frames, size, *v))
            for name, *v in variants(frames, n, clips)
        ]
        seconds = interleaved_medians(cases, repeat)
        base_a = seconds[cases[0][0]]
        base_b = seconds[cases[1][0]] if ffmpeg is not None else float("nan")
        rows = [(name, s, s / base_a, s / base_b) for name, s in seconds.items()]
        fast = F.sample_frames(path, frames, (size, size), info=info, mode="fast", loop_filter=False)
        clip = F.sample_frames(path, frames, (size, size), info=info)
        moved = [abs(a - b) for a, b in zip(fast.indices, clip.indices, strict=True)]
        lines += [
            "",
            f"### {plan.width}x{plan.height}, {info.duration_s:.0f} s, {info.fps:g} fps, "
            f"H.264 GOP {plan.gop}, "
            f"{info.frame_count} frames, {len(info.keyframes)} keyframes, {mbit:.2f} Mbit/s ({path.name})",
            "",
            table(["method", "seconds", "x baseline (a)", "x baseline (b) ffmpeg"], rows),
            "",
            f"fast mode moved {sum(m > 0 for m in moved)} of {frames} frames onto a keyframe, "
            f"by at most {max(moved)} frames (tolerance {max(F.fast_tolerance(sorted(set(clip.indices))))})",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--frames", type=int, default=16, help="T, the model's frames per clip")
    parser.add_argument("--size", type=int, default=64, help="output side in pixels")
    args = parser.parse_args(argv)
    av.logging.set_level(av.logging.ERROR)
    print(run(args.repeat, args.frames, args.size))


if __name__ == "__main__":
    main()
