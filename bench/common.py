"""Shared pieces of the benchmarks: the cached test clips, timing, tables, machine notes.

The clips are real H.264 files rendered by models.synthetic. Rendering a 60 s 1080p clip
with numpy takes minutes, so each clip is written once under .cache/bench (gitignored) and
reused; the file name carries every parameter so a changed spec never reuses a stale file.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("BENCH_CACHE", ROOT / ".cache" / "bench"))


@dataclass(frozen=True)
class ClipPlan:
    """One benchmark clip: what the issue asks for, encoded as H.264 in MP4."""

    name: str
    width: int
    height: int
    duration_s: float
    fps: float = 30.0
    gop: int = 250
    label: str = "move_left"
    seed: int = 7

    @property
    def filename(self) -> str:
        return (f"{self.name}_grain_{self.width}x{self.height}_{self.duration_s:g}s_{self.fps:g}fps"
                f"_gop{self.gop}_{self.label}_s{self.seed}.mp4")


CLIP_1080P_60S = ClipPlan("long", 1920, 1080, 60.0)
CLIP_720P_10S = ClipPlan("short", 1280, 720, 10.0)
BENCH_CLIPS = (CLIP_1080P_60S, CLIP_720P_10S)


def ensure_clip(plan: ClipPlan, cache: Path = CACHE, log: Callable[[str], None] = print) -> Path:
    """The path of `plan`'s clip, rendering and encoding it first when it is not cached."""
    from models import synthetic  # imported late: rendering needs nothing else from here

    path = cache / plan.filename
    if path.exists() and path.stat().st_size > 0:
        return path
    cache.mkdir(parents=True, exist_ok=True)
    spec = synthetic.draw_spec(plan.seed, plan.label)
    # Constant frame rate: the clips are ordinary camera-like files.
    spec = dataclasses.replace(spec, width=plan.width, height=plan.height, duration_s=plan.duration_s,
                               fps=plan.fps, vfr=False)
    log(f"rendering {path.name} (once; cached under {cache}) ...")
    start = time.perf_counter()
    partial = path.with_suffix(".part.mp4")  # never leave a truncated file under the final name
    _write_upscaled(partial, spec, plan)
    partial.replace(path)
    log(f"  wrote {path.stat().st_size / 1e6:.1f} MB in {time.perf_counter() - start:.0f} s")
    return path


def _write_upscaled(path: Path, spec: object, plan: ClipPlan) -> None:
    """Encode `spec` at the plan's size from frames rendered at RENDER_SIDE and scaled up.

    models.synthetic renders with numpy at about 1 s a frame at 1080p on this machine (30
    minutes for the 60 s clip); rendering at 640 px and letting swscale scale the picture up
    (bicubic) gives the same scene, motion and GOP structure in a few minutes. The encoder
    settings are synthetic.write_video's (libx264 veryfast, crf from quality 0.8).
    """
    from fractions import Fraction

    import av
    import numpy as np

    from models import synthetic

    renderer = synthetic.Renderer(spec, max_side=RENDER_SIDE)  # type: ignore[arg-type]
    with av.open(str(path), mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=Fraction(plan.fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = plan.width, plan.height, "yuv420p"
        stream.codec_context.gop_size = plan.gop
        synthetic._codec_options(stream, "libx264", 0.8)
        count = round(plan.duration_s * plan.fps)
        rng = np.random.default_rng(plan.seed)
        grain = rng.normal(0, GRAIN_SIGMA, (GRAIN_POOL, plan.height, plan.width)).round().astype(np.int16)
        for i in range(count):
            frame = av.VideoFrame.from_ndarray(renderer.frame(i / count), format="rgb24")
            # threads=1: swscale slice threads can deadlock when freed (see models.frames.to_rgb).
            frame = frame.reformat(width=plan.width, height=plan.height, format="yuv420p",
                                   interpolation="BICUBIC", threads=1)
            # Sensor-like grain on luma: without it the upscaled clip is ~80 kbit/s and decodes
            # far faster than camera footage does; with it the bitrate is camera-like.
            planes = frame.to_ndarray()
            luma = planes[: plan.height].astype(np.int16) + grain[i % GRAIN_POOL]
            planes[: plan.height] = np.clip(luma, 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


RENDER_SIDE = 640
GRAIN_SIGMA = 3.0  # luma levels
GRAIN_POOL = 7  # distinct grain planes, cycled: a prime, so no pattern lines up with the GOP


def median_time(fn: Callable[[], object], repeat: int, warmup: int = 1) -> tuple[float, list[float]]:
    """Median wall seconds of `fn` over `repeat` runs after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def interleaved_medians(cases: Sequence[tuple[str, Callable[[], object]]], repeat: int) -> dict[str, float]:
    """Median wall seconds of each case, timed in rounds that run every case once, so that a
    change of machine load during the run hits all cases alike. One untimed warm-up each."""
    for _, fn in cases:
        fn()
    times: dict[str, list[float]] = {name: [] for name, _ in cases}
    for _ in range(repeat):
        for name, fn in cases:
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def cores() -> int:
    """CPUs this process may run on (the affinity mask, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def machine_note() -> str:
    """One line saying where the numbers came from, including how busy the machine was."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cores()} cores ({cpu}), {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, load average {load[0]:.1f} at start")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (pastes straight into BENCHMARKS.md)."""
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    return "\n".join([line, rule, *body])


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if value != value:  # NaN: a figure that could not be measured
            return "n/a"
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def _proc_stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _proc_cpu_s(pid: int) -> float:
    try:
        fields = _proc_stat(pid)
    except OSError:
        return 0.0  # gone meanwhile
    # utime, stime, and those of its waited-for children (workers killed and reaped).
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _proc_tree(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(_proc_stat(int(entry.name))[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = [root], [root]
    while frontier:
        frontier = [p for p, pp in parents.items() if pp in frontier]
        tree += frontier
    return tree


def tree_cpu_s(root: int) -> float:
    """User + system CPU seconds of process `root` and its descendants (Linux /proc): what a
    server and its worker processes spent, e.g. after answering a request."""
    return sum(_proc_cpu_s(pid) for pid in _proc_tree(root))


def main() -> None:
    """Render the benchmark clips ahead of time (`python -m bench.common`)."""
    for plan in BENCH_CLIPS:
        print(ensure_clip(plan))


if __name__ == "__main__":
    main()
