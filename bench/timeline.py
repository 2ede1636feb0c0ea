"""Timelines (/classify?segments=true) on clips that play two behaviours one after the other.

    python -m bench.timeline --clips 40 --seed 5000

Each clip is two models.synthetic specs of different labels sharing one frame size, frame rate,
background, object shape and colour: the first behaviour for 2-5 s, then the second for 2-5 s
(the object takes up the second one where its spec puts it). Encoded with libx264 and read
through the service's own timeline path (plan_windows, uniform_indices over each window,
decode as the service does, the model, pipeline.timeline). A clip is right when the timeline's
label at the middle of the first half is the first behaviour and at the middle of the second
half the second one ("halves"), and "strict" when the timeline's labels, neighbours merged, are
exactly the two behaviours in order.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from models import synthetic
from models.frames import normalize, probe_video, read_frames, uniform_indices
from models.manifest import ModelManifest
from service import pipeline
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def two_behaviours(path: Path, seed: int, first: str, second: str, rng: np.random.Generator) -> float:
    """Write the clip; returns the time the second behaviour starts."""
    a = synthetic.draw_spec(seed, first)
    b = synthetic.draw_spec(seed + 1, second)
    fps = float(rng.choice([12.0, 15.0, 24.0, 25.0, 30.0]))
    da, db = float(rng.uniform(2.0, 5.0)), float(rng.uniform(2.0, 5.0))
    shared = {k: getattr(a, k) for k in ("width", "height", "background", "shape", "color", "noise_sigma")}
    a = dataclasses.replace(a, fps=fps, duration_s=da, vfr=False)
    b = dataclasses.replace(b, fps=fps, duration_s=db, vfr=False, **shared)
    ra, rb = synthetic.Renderer(a, max_side=256), synthetic.Renderer(b, max_side=256)
    na, nb = round(da * fps), round(db * fps)
    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        st.width, st.height, st.pix_fmt = ra.w, ra.h, "yuv420p"
        st.options = {"crf": "20", "preset": "veryfast"}
        frames = [ra.frame(i / na) for i in range(na)] + [rb.frame(i / nb) for i in range(nb)]
        for img in frames:
            for p in st.encode(av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p", threads=1)):
                out.mux(p)
        for p in st.encode(None):
            out.mux(p)
    return na / fps


def timeline_labels(path: Path, manifest: ModelManifest, session, settings: Settings) -> list[dict]:
    """The service's timeline path (/classify?segments=true), in-process, without the batcher."""
    info = probe_video(path)
    windows = pipeline.plan_windows(info.duration_s, settings.timeline_window_s, settings.timeline_max_windows)
    clips = [uniform_indices(info, manifest.num_frames, a, b) for a, b in windows]
    flat = [i for c in clips for i in c]
    frames = read_frames(path, info, flat, manifest.size, manifest.resize)
    x = normalize(frames, manifest.mean, manifest.std).reshape(len(clips), manifest.num_frames, 3, *manifest.size)
    probs = pipeline.softmax(session.run([manifest.outputs.logits], {manifest.input_name: x})[0])
    return pipeline.timeline(windows, probs, info.duration_s, manifest.labels, 1)


def label_at(segments: list[dict], t: float) -> str:
    for s in segments:
        if s["start_s"] <= t <= s["end_s"]:
            return s["labels"][0]["label"]
    return segments[-1]["labels"][0]["label"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--seed", type=int, default=5000)
    ap.add_argument("--fades", action="store_true", help="every clip has a fade_in or fade_out half")
    args = ap.parse_args(argv)
    import onnxruntime as ort

    model_dir = ROOT / "models" / "motion"
    manifest = ModelManifest.load(model_dir)
    session = ort.InferenceSession(str(model_dir / manifest.onnx_file), providers=["CPUExecutionProvider"])
    settings = Settings()
    rng = np.random.default_rng(args.seed)
    labels = manifest.labels
    halves = strict = 0
    per_label: dict[str, list[int]] = {}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.clips):
            first, second = (str(x) for x in rng.choice(labels, 2, replace=False))
            if args.fades and "fade" not in first + second:
                second = str(rng.choice(["fade_in", "fade_out"]))
                if second == first:
                    continue
            path = Path(tmp) / f"c{k}.mp4"
            switch = two_behaviours(path, args.seed + 10 * k, first, second, rng)
            segs = timeline_labels(path, manifest, session, settings)
            end = segs[-1]["end_s"]
            got = [label_at(segs, switch / 2), label_at(segs, (switch + end) / 2)]
            seq = [s["labels"][0]["label"] for s in segs]
            ok = got == [first, second]
            halves += ok
            strict += seq == [first, second]
            for lab, right in ((first, got[0] == first), (second, got[1] == second)):
                per_label.setdefault(lab, []).append(int(right))
            print(f"{first:>10s} -> {second:<10s} {'ok ' if ok else 'BAD'} timeline {seq}", flush=True)
    n = args.clips
    print(f"\nclips {n}  halves right {halves / n:.3f} ({halves}/{n})  strict {strict / n:.3f} ({strict}/{n})"
          f"  {time.perf_counter() - start:.0f} s")
    print("per label (halves):", {k: f"{np.mean(v):.2f} ({len(v)})" for k, v in sorted(per_label.items())})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
