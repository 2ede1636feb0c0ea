"""Evaluate an exported model on real encoded files across the task's whole range.

    python -m models.evaluate --model models/motion --clips 90
    python -m models.evaluate --model models/motion runs/motion-fp16 --decode exact fast-nodeblock

Several models and decode variants are scored on the same clips (paired comparison).

Unlike the validation set (rendered at the sampled frames, small working resolution), each
clip here is a real file at full size (96x96 to 1920x1080, portrait too), 8-60 fps, 1-10 s,
in one of nine codec/container pairs, some with audio, read through the serving path
(service.pipelines: the /classify pipeline itself, in-process). Seeds are far from the training seeds. It is still this
project's renderer, so it measures codecs, sizes and the pipeline, not renderer shift.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import onnxruntime as ort

from models import frames as F
from models import synthetic
from models.manifest import ModelManifest
from service.pipelines import Pipelines
from service.settings import Settings

PAIRS = (
    ("libx264", "mp4", "mp4"), ("libx265", "mp4", "mp4"), ("libvpx", "webm", "webm"),
    ("libvpx-vp9", "webm", "webm"), ("libsvtav1", "matroska", "mkv"), ("mpeg4", "avi", "avi"),
    ("mjpeg", "avi", "avi"), ("libx264", "mov", "mov"), ("libvpx-vp9", "matroska", "mkv"),
)


DECODES = {
    # name: (read_frames mode, loop_filter); see models.frames.read_frames_at.
    "exact": ("exact", True),
    "fast": ("fast", True),
    "exact-nodeblock": ("exact", False),
    "fast-nodeblock": ("fast", False),
}


@dataclass
class Tally:
    right: int = 0
    per_label: Counter = field(default_factory=Counter)
    per_codec: Counter = field(default_factory=Counter)
    confusions: Counter = field(default_factory=Counter)

    def add(self, label: str, guess: str, codec: str) -> bool:
        ok = guess == label
        self.right += ok
        self.per_label[label] += ok
        self.per_codec[codec] += ok
        if not ok:
            self.confusions[f"{label}->{guess}"] += 1
        return ok

    def report(self, clips: int) -> dict:
        n_label = clips / len(synthetic.LABELS)
        return {
            "top1": self.right / clips,
            "per_label": {k: round(v / n_label, 3) for k, v in sorted(self.per_label.items())},
            "per_codec_right": dict(self.per_codec), "confusions": dict(self.confusions.most_common()),
        }


def score_cached(path: Path, models: list) -> dict:
    """Top-1 of each model on already decoded clips, and how often the models agree."""
    data = np.load(path)
    clips, labels = data["clips"], data["labels"]
    preds = []
    report: dict = {"cached": str(path), "clips": len(clips), "models": []}
    for name, manifest, session in models:
        guesses = np.concatenate([
            np.argmax(session.run(["logits"], {manifest.input_name: F.normalize(
                clips[i : i + 50], manifest.mean, manifest.std)})[0], axis=1)
            for i in range(0, len(clips), 50)
        ])
        preds.append(guesses)
        report["models"].append({"model": name, "precision": manifest.precision,
                                 "top1": float((guesses == labels).mean())})
    report["all_agree"] = float(np.mean([np.all([p == preds[0] for p in preds], axis=0)]))
    return report


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, nargs="+", default=[Path(__file__).parent / "motion"],
                   help="one or more exported model directories, each scored on the same clips")
    p.add_argument("--decode", nargs="+", choices=sorted(DECODES), default=["exact"],
                   help="decode variants to score (fast: nearby frames; nodeblock: no loop filter)")
    p.add_argument("--clips", type=int, default=90)
    p.add_argument("--seed", type=int, default=5_000_000)
    p.add_argument("--max-side", type=int, default=1920, help="cap on rendered size (speed)")
    p.add_argument("--cached", type=Path, default=None,
                   help="instead: score the models on a training cache file (.npz of uint8 clips and "
                        "labels), e.g. the held-out synthetic validation set models.train wrote")
    args = p.parse_args(argv)
    av.logging.set_level(av.logging.ERROR)
    models = []
    for model_dir in args.model:
        manifest = ModelManifest.load(model_dir)
        session = ort.InferenceSession(str(model_dir / manifest.onnx_file), providers=["CPUExecutionProvider"])
        models.append((str(model_dir), manifest, session))
    if args.cached is not None:
        print(json.dumps(score_cached(args.cached, models), indent=2))
        return
    variants = [(m, d) for m in range(len(models)) for d in args.decode]
    # The service's own /classify pipeline (plan, decode, preprocess from model.json, model,
    # postprocess), in-process, with each variant's decode settings.
    pipelines = {
        (m, d): Pipelines.local(models[m][0], Settings(
            decode_mode=DECODES[d][0], decode_loop_filter=DECODES[d][1], max_duration_s=3600.0, max_pixels=1 << 26,
        ))
        for m, d in variants
    }
    tallies = {v: Tally() for v in variants}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.clips):
            label = synthetic.LABELS[i % len(synthetic.LABELS)]
            codec, container, ext = PAIRS[(i // len(synthetic.LABELS)) % len(PAIRS)]
            spec = synthetic.draw_spec(args.seed + i, label)
            path = Path(tmp) / f"{i}.{ext}"
            pix = "yuvj420p" if codec == "mjpeg" else "yuv420p"
            synthetic.write_video(str(path), spec, codec, container, pix, quality=0.5 + 0.5 * (i % 2),
                                  max_side=args.max_side, audio=i % 3 == 0 and container != "avi")
            guesses = []
            for m, d in variants:
                answer = asyncio.run(pipelines[(m, d)].classify(path, top_k=1))
                guess = answer.labels[0].label
                tallies[(m, d)].add(label, guess, f"{codec}/{container}")
                guesses.append(guess)
            # A running tally: a long evaluation that is cut short still says something.
            running = " ".join(f"{t.right / (i + 1):.3f}" for t in tallies.values())
            print(f"{i + 1}/{args.clips} {codec}/{container} {spec.width}x{spec.height} {spec.fps:g}fps "
                  f"{label} -> {','.join(guesses)}  running top-1 {running}", file=sys.stderr, flush=True)
            path.unlink()
    report = {
        "clips": args.clips, "seed": args.seed, "max_side": args.max_side,
        "seconds": round(time.perf_counter() - started, 1),
        "variants": [
            {"model": models[m][0], "precision": models[m][1].precision, "decode": d,
             **tallies[(m, d)].report(args.clips)}
            for m, d in variants
        ],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
