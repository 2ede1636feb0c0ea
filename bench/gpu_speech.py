"""Whisper on CTranslate2 CUDA against the CPU, on one generated clip (for a GPU machine).

    python -m bench.gpu_speech [--model-dir DIR] [--seconds 60] [--repeat 3]

Needs only faster-whisper (this repo's vendored copy, or an installed one) and a faster-whisper
model directory; by default the bundled Whisper base, joined and sha256-checked by
service.model_files. The clip is speech-like (espeak-ng when installed, else harmonic tones
with syllable-like envelopes), so the numbers measure the model, not VAD: vad_filter is off and
every row decodes the whole clip. Prints seconds and real-time factor per device/compute type,
and each row's speed-up over the CPU int8 row measured in the same run.

CTranslate2's Linux wheels link CUDA 12 (cuBLAS, cuDNN 9): a CUDA 13-only machine needs the
CUDA 12 runtime libraries (e.g. the nvidia-cublas-cu12 / nvidia-cudnn-cu12 wheels on
LD_LIBRARY_PATH) or the CUDA rows fail, which the table then says.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time

import numpy as np

RATE = 16000


def speech_like(seconds: float) -> np.ndarray:
    if shutil.which("espeak-ng"):
        from bench.speechgen import compose

        sentences = ["The quick brown fox jumps over the lazy dog.", "Please send the report before Friday.",
                     "It is raining in the north today.", "The train leaves at seven in the evening."]
        audio = compose(sentences).audio
        reps = int(np.ceil(seconds * RATE / len(audio)))
        return np.tile(audio, reps)[: int(seconds * RATE)]
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 8))
    syllables = (np.sin(2 * np.pi * 4 * t + rng.uniform(0, 6)) > 0).astype(np.float32)
    return (0.2 * voice * syllables).astype(np.float32)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", default=None, help="faster-whisper model directory (default: bundled base)")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--cpu-threads", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        from service._vendor.faster_whisper import WhisperModel
    except ImportError:
        from faster_whisper import WhisperModel
    import ctranslate2

    model_dir = args.model_dir
    if model_dir is None:
        from service.model_files import prepare_whisper_base

        model_dir = str(prepare_whisper_base().path)
    audio = speech_like(args.seconds)
    print(f"clip {len(audio) / RATE:.0f} s, beam {args.beam}, CUDA devices seen by CTranslate2: "
          f"{ctranslate2.get_cuda_device_count()}")
    cases = [("cpu", "int8"), ("cpu", "float32"), ("cuda", "float16"), ("cuda", "int8_float16")]
    results: dict[tuple[str, str], float | str] = {}
    for device, compute in cases:
        try:
            model = WhisperModel(model_dir, device=device, compute_type=compute, cpu_threads=args.cpu_threads)
            runs = []
            for i in range(args.repeat + 1):  # the first run warms up (CUDA context, allocator)
                t = time.perf_counter()
                segments, _ = model.transcribe(audio, language="en", beam_size=args.beam, vad_filter=False)
                text = " ".join(s.text for s in segments)
                if i:
                    runs.append(time.perf_counter() - t)
            results[(device, compute)] = statistics.median(runs)
            print(f"{device}/{compute}: {results[(device, compute)]:.2f} s; {text[:80]!r}")
            del model
        except Exception as exc:  # a missing CUDA library is a row that says so, not a crash
            results[(device, compute)] = f"failed: {exc}"
            print(f"{device}/{compute}: failed: {exc}")
    base = results.get(("cpu", "int8"))
    print("\n| device | compute type | s | RTF | speed-up vs cpu/int8 |\n|---|---|---|---|---|")
    for (device, compute), v in results.items():
        if isinstance(v, float):
            up = f"{base / v:.1f}x" if isinstance(base, float) else "n/a"
            print(f"| {device} | {compute} | {v:.2f} | {v / (len(audio) / RATE):.3f} | {up} |")
        else:
            print(f"| {device} | {compute} | {v} | | |")


if __name__ == "__main__":
    main()
