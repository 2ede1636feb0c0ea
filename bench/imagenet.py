"""The `imagenet` model on this CPU: ONNX Runtime against torch eager on the same weights, and
what decoding plus preprocessing at 224 px costs against motion's 64 px.

    python -m bench.imagenet [--model models/imagenet] [--repeats 5]

Rows (each timed in this process, medians of `--repeats` runs after one warm-up):
- inference: clips/s at batch 1 and 8 and ms per frame, ORT (the service's session options)
  and torch eager (models.efficientnet built from the same pinned weights), with the ratio;
- decode + preprocess of one /classify clip of a 1280x720 H.264 video through the service's
  pipeline stage, for imagenet (T=8, shorter side 256, centre crop 224) and motion (T=16,
  64x64 stretch), with the ratio.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from bench.common import median_time

ROOT = Path(__file__).resolve().parents[1]


def inference_rows(model_dir: Path, repeats: int, torch_too: bool = True) -> list[dict]:
    from service.runtime import OnnxModel

    ort_model = OnnxModel(model_dir, provider="cpu")
    m = ort_model.manifest
    net = None
    if torch_too:
        import torch

        from models.registry import build_network

        net = build_network(m.architecture, m.network).eval()
    rows = []
    rng = np.random.default_rng(0)
    for batch in (1, 8):
        x = rng.standard_normal((batch, m.num_frames, 3, m.height, m.width)).astype(np.float32)
        ort_s = median_time(lambda x=x: ort_model.run(x), repeats)[0]
        row = {"batch": batch, "frames": batch * m.num_frames, "ort_clips_per_s": round(batch / ort_s, 2),
               "ort_ms_per_frame": round(1000 * ort_s / (batch * m.num_frames), 2)}
        if net is not None:
            xt = torch.from_numpy(x)

            def eager(xt=xt) -> None:
                with torch.inference_mode():
                    net(xt)

            torch_s = median_time(eager, repeats)[0]
            row |= {"torch_clips_per_s": round(batch / torch_s, 2),
                    "torch_ms_per_frame": round(1000 * torch_s / (batch * m.num_frames), 2),
                    "ort_speedup_vs_torch": round(torch_s / ort_s, 2)}
        rows.append(row)
    return rows


def preprocess_rows(model_dirs: list[Path], repeats: int) -> list[dict]:
    import av

    from bench import realmedia
    from models import sampling
    from models.frames import probe_video
    from models.manifest import ModelManifest
    from models.preprocess import Preprocessing
    from service.decoding import decode_options
    from service.settings import Settings

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        av.logging.set_level(av.logging.ERROR)
        path = realmedia.write_photo_video(Path(tmp) / "720p.mp4", realmedia.photo("coffee"), "pan", "libx264",
                                           1280, 720, fps=30, seconds=6.0)
        info = probe_video(path)
        for d in model_dirs:
            m = ModelManifest.load(d, verify=False)
            prep = Preprocessing.from_manifest(m)
            settings = Settings(model_dir=d)
            options = decode_options(settings, busy=True)  # one thread: the per-request cost
            clips = sampling.plan_clips(info, prep.num_frames, settings.clip_window_s, settings.max_clips,
                                        prep.sampling)
            s = median_time(lambda prep=prep, clips=clips, options=options: prep.decode_clips(path, info, clips,
                                                                                               options), repeats)[0]
            rows.append({"model": m.name, "frames": prep.num_frames, "input": f"{m.height}x{m.width}",
                         "resize": m.resize, "decode_preprocess_ms": round(1000 * s, 1),
                         "ms_per_frame": round(1000 * s / prep.num_frames, 2)})
    base = next((r for r in rows if r["model"] == "motion"), None)
    if base:
        for r in rows:
            r["ms_per_frame_vs_motion"] = round(r["ms_per_frame"] / base["ms_per_frame"], 2)
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=ROOT / "models" / "imagenet")
    p.add_argument("--baseline", type=Path, default=ROOT / "models" / "motion")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-torch", action="store_true", help="ONNX Runtime only (no torch installed)")
    args = p.parse_args(argv)
    report = {
        "inference": inference_rows(args.model, args.repeats, not args.no_torch),
        "decode_preprocess_720p_h264": preprocess_rows([args.baseline, args.model], args.repeats),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
