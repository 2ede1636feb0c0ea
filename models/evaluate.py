"""Evaluate an exported model on real encoded files across the task's whole range.

    python -m models.evaluate --model models/motion --clips 90

Unlike the validation set (rendered at the sampled frames, small working resolution), each
clip here is a real file at full size (96x96 to 1920x1080, portrait too), 8-60 fps, 1-10 s,
in one of nine codec/container pairs, some with audio, read through the serving path
(probe + sample + ONNX Runtime). Seeds are far from the training seeds. It is still this
project's renderer, so it measures codecs, sizes and the pipeline, not renderer shift.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import av
import numpy as np
import onnxruntime as ort

from models import frames as F
from models import synthetic
from models.manifest import ModelManifest

PAIRS = (
    ("libx264", "mp4", "mp4"), ("libx265", "mp4", "mp4"), ("libvpx", "webm", "webm"),
    ("libvpx-vp9", "webm", "webm"), ("libsvtav1", "matroska", "mkv"), ("mpeg4", "avi", "avi"),
    ("mjpeg", "avi", "avi"), ("libx264", "mov", "mov"), ("libvpx-vp9", "matroska", "mkv"),
)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=Path(__file__).parent / "motion")
    p.add_argument("--clips", type=int, default=90)
    p.add_argument("--seed", type=int, default=5_000_000)
    p.add_argument("--max-side", type=int, default=1920, help="cap on rendered size (speed)")
    args = p.parse_args(argv)
    av.logging.set_level(av.logging.ERROR)
    manifest = ModelManifest.load(args.model)
    session = ort.InferenceSession(str(args.model / manifest.onnx_file), providers=["CPUExecutionProvider"])
    right, per_label, per_codec, confusions = 0, Counter(), Counter(), Counter()
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
            clip = F.sample_frames(path, manifest.num_frames, manifest.size, policy=manifest.resize)
            x = F.normalize(clip.frames, manifest.mean, manifest.std)[None]
            guess = manifest.labels[int(np.argmax(session.run(["logits"], {"frames": x})[0][0]))]
            ok = guess == label
            right += ok
            per_label[label] += ok
            per_codec[f"{codec}/{container}"] += ok
            if not ok:
                confusions[f"{label}->{guess}"] += 1
            # A running tally: a long evaluation that is cut short still says something.
            print(f"{i + 1}/{args.clips} {codec}/{container} {spec.width}x{spec.height} {label} -> {guess}"
                  f"  running top-1 {right / (i + 1):.3f}", file=sys.stderr, flush=True)
            path.unlink()
    n_label = args.clips / len(synthetic.LABELS)
    report = {
        "clips": args.clips, "top1": right / args.clips, "seconds": round(time.perf_counter() - started, 1),
        "per_label": {k: round(v / n_label, 3) for k, v in sorted(per_label.items())},
        "per_codec_right": dict(per_codec), "confusions": dict(confusions.most_common()),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
