"""Timelines (/classify?segments=true) on clips that play two behaviours one after the other.

    python -m bench.timeline --clips 40 --seed 5000 --singles 20
    python -m bench.timeline --clips 24 --seed 5000 --fades
    python -m bench.timeline --clips 40 --seed 5000 --renderer shift    # the independent renderer

Each clip is two models.synthetic specs of different labels sharing one frame size, frame rate,
background, object shape and colour: the first behaviour for 2-5 s, then the second for 2-5 s
(the object takes up the second one where its spec puts it, at a size scaled to the shared
frame); `--renderer shift` draws them with bench.shift instead, the renderer written from
MOTION_CLASSES.md alone. Encoded with libx264 and answered by the service's own /classify pipeline in-process
(service.pipelines: probe, plan, decode as an idle service does, the model, the timeline), once
per timeline method (TIMELINE_METHOD: `search`, the default, and `windows`, the fixed windows
it replaced), on the same files. A clip is right when the timeline's label at the middle of
the first half is the first behaviour and at the middle of the second half the second one
("halves"), and "strict" when the timeline's labels, neighbours merged, are exactly the two
behaviours in order. `--singles N` adds N clips of one behaviour (4-10 s): "kept whole" when
the timeline is that one label, and "quarters" when the label at 1/4 and 3/4 is right.
Time per request (ms) and model clips per request come from the same runs.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from models import synthetic
from service.pipelines import Pipelines, run_forward
from service.schemas import ClassifyResponse
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("search", "windows")


def _write(path: Path, fps: float, renderers: list[tuple[synthetic.Renderer, int]]) -> None:
    first = renderers[0][0]
    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        st.width, st.height, st.pix_fmt = first.w, first.h, "yuv420p"
        st.options = {"crf": "20", "preset": "veryfast"}
        for r, n in renderers:
            for i in range(n):
                frame = av.VideoFrame.from_ndarray(r.frame(i / n), format="rgb24").reformat(format="yuv420p")
                for p in st.encode(frame):
                    out.mux(p)
        for p in st.encode(None):
            out.mux(p)


def two_behaviours(path: Path, seed: int, first: str, second: str, rng: np.random.Generator) -> float:
    """Write the clip; returns the time the second behaviour starts."""
    a = synthetic.draw_spec(seed, first)
    fps = float(rng.choice([12.0, 15.0, 24.0, 25.0, 30.0]))
    da, db = float(rng.uniform(2.0, 5.0)), float(rng.uniform(2.0, 5.0))
    a = dataclasses.replace(a, fps=fps, duration_s=da, vfr=False)
    # b's object sizes are pixels of b's own frame: second_spec rescales them to the shared frame, or
    # the second object can be several times the frame (or a speck) and no longer show its behaviour.
    b = dataclasses.replace(synthetic.second_spec(a, seed + 1, second), fps=fps, duration_s=db, vfr=False)
    na, nb = round(da * fps), round(db * fps)
    _write(path, fps, [(synthetic.Renderer(a, max_side=256), na), (synthetic.Renderer(b, max_side=256), nb)])
    return na / fps


def two_behaviours_shift(path: Path, seed: int, first: str, second: str, rng: np.random.Generator) -> float:
    """The same kind of clip drawn by bench.shift, the independent renderer (OpenCV shapes over noise,
    gradient or flat backgrounds, written from MOTION_CLASSES.md alone): each behaviour is a
    bench.shift clip, re-timed to 2-5 s at one frame rate; the second one's geometry is scaled into
    the first one's frame, whose size, background, colour and shape it shares."""
    from bench import shift

    a, b = shift.make_clip(seed, first), shift.make_clip(seed + 1, second)
    fps = float(rng.choice([12.0, 15.0, 24.0, 25.0, 30.0]))
    na, nb = (round(float(rng.uniform(2.0, 5.0)) * fps) for _ in range(2))
    ia = np.round(np.linspace(0, len(a.times) - 1, na)).astype(int)  # nearest frames: a blink stays square
    ib = np.round(np.linspace(0, len(b.times) - 1, nb)).astype(int)
    kx, ky = a.width / b.width, a.height / b.height
    k = min(kx, ky)
    clip = dataclasses.replace(
        a, label=f"{first},{second}", fps=fps, times=np.arange(na + nb) / fps,
        center=(np.concatenate([a.center[0][ia], b.center[0][ib] * kx]),
                np.concatenate([a.center[1][ia], b.center[1][ib] * ky])),
        axes=(np.concatenate([a.axes[0][ia], b.axes[0][ib] * k]), np.concatenate([a.axes[1][ia], b.axes[1][ib] * k])),
        alpha=np.concatenate([a.alpha[ia], b.alpha[ib]]))
    shift.encode(clip, path, "libx264", "mp4", "yuv420p", audio=False, rng=rng)
    return na / fps


def one_behaviour(path: Path, seed: int, label: str, rng: np.random.Generator) -> None:
    """One behaviour for 4-10 s (a timeline must not split it)."""
    fps = float(rng.choice([12.0, 15.0, 24.0, 25.0, 30.0]))
    duration = float(rng.uniform(4.0, 10.0))
    spec = dataclasses.replace(synthetic.draw_spec(seed, label), fps=fps, duration_s=duration, vfr=False)
    _write(path, fps, [(synthetic.Renderer(spec, max_side=256), round(duration * fps))])


def write_set(folder: Path, labels: list[str], seed: int, clips: int, fades: bool = False, singles: int = 0,
              renderer: str = "synthetic") -> list[tuple[Path, list[str], float | None]]:
    """Write the benchmark's clips into `folder`: (path, true labels in order, time the second
    behaviour starts) for `clips` two-behaviour clips (with `fades`, each has a fade_in or fade_out
    half), then (path, [label], None) for `singles` one-behaviour clips. Deterministic from `seed`."""
    rng = np.random.default_rng(seed)
    jobs: list[tuple[Path, list[str], float | None]] = []
    for k in range(clips):
        first, second = (str(x) for x in rng.choice(labels, 2, replace=False))
        if fades and "fade" not in first + second:
            second = str(rng.choice(["fade_in", "fade_out"]))
            if second == first:
                second = "fade_out" if first == "fade_in" else "fade_in"
        path = folder / f"c{k}.mp4"
        draw = two_behaviours_shift if renderer == "shift" else two_behaviours
        jobs.append((path, [first, second], draw(path, seed + 10 * k, first, second, rng)))
    for k in range(singles):
        label = str(labels[k % len(labels)])
        path = folder / f"s{k}.mp4"
        one_behaviour(path, seed + 7919 + 10 * k, label, rng)
        jobs.append((path, [label], None))
    return jobs


def timeline_of(pipes: Pipelines, path: Path) -> tuple[list[tuple[float, float, str]], int, float]:
    """The service's /classify?segments=true, in-process: (start, end, top label) spans, the number of
    clips the model classified, and the request's wall time in seconds."""
    pipe = pipes.classify

    async def request() -> tuple[ClassifyResponse, int]:
        # ClassifyPipeline.__call__'s three stages, kept apart to count the clips the model saw.
        deadline = t0 + pipe.settings.request_timeout_s
        inputs = await pipe.preprocess(path, True, deadline)
        result = await run_forward(pipe.model, inputs.x, deadline, pipe.settings)
        return pipe.postprocess(inputs, result, 1, True, t0), len(inputs.x)

    t0 = time.perf_counter()
    answer, model_clips = asyncio.run(request())
    took = time.perf_counter() - t0
    assert answer.segments is not None
    return [(s.start_s, s.end_s, s.labels[0].label) for s in answer.segments], model_clips, took


def label_at(segments: list[tuple[float, float, str]], t: float) -> str:
    for start, end, label in segments:
        if start <= t <= end:
            return label
    return segments[-1][2]


@dataclasses.dataclass
class Tally:
    right: int = 0
    strict: int = 0
    clips: int = 0
    singles_whole: int = 0
    singles_right: int = 0
    singles: int = 0
    seconds: list[float] = dataclasses.field(default_factory=list)
    model_clips: list[int] = dataclasses.field(default_factory=list)
    misses: dict[str, int] = dataclasses.field(default_factory=dict)


def long_videos(pipes: dict[str, Pipelines], repeat: int = 3) -> int:
    from bench.longvideo import write_long

    with tempfile.TemporaryDirectory() as tmp:
        for name, seconds, fps, size in (("60 s 480x480 30 fps", 60, 30, 480), ("2 h 32x32 1 fps", 7200, 1, 32)):
            path = write_long(Path(tmp) / f"{seconds}.mp4", seconds, fps, size, shot_s=max(1, seconds // 4))
            for m, p in pipes.items():
                runs = [timeline_of(p, path) for _ in range(repeat)]
                took = sorted(r[2] for r in runs)
                print(f"{name}: {m:>8s} {took[len(took) // 2] * 1000:.0f} ms/request (median of {repeat}: "
                      f"{', '.join(f'{t * 1000:.0f}' for t in took)}), {runs[0][1]} model clips, "
                      f"{len(runs[0][0])} segments", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--seed", type=int, default=5000)
    ap.add_argument("--fades", action="store_true", help="every clip has a fade_in or fade_out half")
    ap.add_argument("--singles", type=int, default=0, help="also this many one-behaviour clips")
    ap.add_argument("--renderer", choices=["synthetic", "shift"], default="synthetic",
                    help="draw the two-behaviour clips with models.synthetic or with bench.shift (independent)")
    ap.add_argument("--methods", default=",".join(METHODS), help="TIMELINE_METHOD values to compare")
    ap.add_argument("--model", default=str(ROOT / "models" / "motion"))
    ap.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: all cores)")
    ap.add_argument("--long", action="store_true",
                    help="only time both methods on long videos (bench.longvideo.write_long): 60 s of 480x480 "
                    "at 30 fps and 2 h of 32x32 at 1 fps")
    args = ap.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    base = Settings(model_dir=Path(args.model))
    pipes = {m: Pipelines.local(args.model, base.model_copy(update={"timeline_method": m}), args.threads)
             for m in methods}
    if args.long:
        return long_videos(pipes)
    labels = pipes[methods[0]].classify.model.manifest.labels
    tallies = {m: Tally() for m in methods}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        jobs = write_set(Path(tmp), labels, args.seed, args.clips, args.fades, args.singles, args.renderer)
        for n, (path, truth, switch) in enumerate(jobs):
            line = {}
            for m in methods if n % 2 == 0 else methods[::-1]:  # alternate which method runs first
                segs, model_clips, took = timeline_of(pipes[m], path)
                t = tallies[m]
                t.seconds.append(took)
                t.model_clips.append(model_clips)
                seq = [s[2] for s in segs]
                end = segs[-1][1]
                if switch is None:
                    got = [label_at(segs, end / 4), label_at(segs, 3 * end / 4)]
                    t.singles += 1
                    t.singles_right += got == truth * 2
                    t.singles_whole += seq == truth
                    ok = seq == truth
                else:
                    got = [label_at(segs, switch / 2), label_at(segs, (switch + end) / 2)]
                    t.clips += 1
                    ok = got == truth
                    t.right += ok
                    t.strict += seq == truth
                for want, have in zip(truth * (2 if switch is None else 1), got, strict=True):
                    if want != have:
                        t.misses[want] = t.misses.get(want, 0) + 1
                line[m] = f"{m} {'ok ' if ok else 'BAD'} {seq}"
            print(f"{' -> '.join(truth):>22s}  " + "  |  ".join(line[m] for m in methods), flush=True)
    print(f"\n{len(jobs)} clips, {time.perf_counter() - start:.0f} s")
    ref = tallies[methods[-1]]
    for m in methods:
        t = tallies[m]
        parts = [f"{m:>8s}:"]
        if t.clips:
            parts.append(f"halves right {t.right / t.clips:.3f} ({t.right}/{t.clips})  "
                         f"strict {t.strict / t.clips:.3f} ({t.strict}/{t.clips})")
        if t.singles:
            parts.append(f"singles kept whole {t.singles_whole / t.singles:.3f} ({t.singles_whole}/{t.singles}), "
                         f"quarters right {t.singles_right}/{t.singles}")
        parts.append(f"{np.mean(t.seconds) * 1000:.0f} ms/request (median {np.median(t.seconds) * 1000:.0f}; "
                     f"{np.mean(t.seconds) / np.mean(ref.seconds):.2f}x {methods[-1]}), "
                     f"{np.mean(t.model_clips):.1f} model clips/request")
        print("  ".join(parts))
        print(f"{'':>9s} misses by label: {dict(sorted(t.misses.items()))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
