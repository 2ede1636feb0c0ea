"""Hours-long videos through the service: /classify, /classify?segments=true and /summarize.

    python -m bench.longvideo --hours 2          # a 2-hour 32x32 1 fps H.264 file (written with PyAV)
    python -m bench.longvideo --hours 10

Starts `python -m service` (default settings: no duration limit) on a free loopback port and
times each request (median of --repeat), next to the time PyAV takes only to demux the file
(the index every request builds) in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import av
import httpx
import numpy as np

from bench.e2e import default_model_dir, free_port, start_service, stop_service


def write_long(path: Path, seconds: int, fps: int = 1, size: int = 32, shot_s: int = 600) -> Path:
    """A bar sweeping to and fro over a flat colour that changes every `shot_s` seconds."""
    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264", rate=fps)
        st.width = st.height = size
        st.pix_fmt = "yuv420p"
        st.options = {"preset": "ultrafast"}
        for i in range(seconds * fps):
            shot = i // (fps * shot_s)
            colour = np.asarray([(shot * 70) % 256, (shot * 130 + 60) % 256, (shot * 200 + 30) % 256], np.uint8)
            img = np.empty((size, size, 3), np.uint8)
            img[:] = colour
            x = abs((i % (2 * (size - 4))) - (size - 4))
            img[:, x : x + 4] = 255 - colour
            for p in st.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in st.encode(None):
            out.mux(p)
    return path


def demux_seconds(path: Path) -> float:
    start = time.perf_counter()
    with av.open(str(path)) as c:
        for _ in c.demux(c.streams.video[0]):
            pass
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_long(Path(tmp) / "long.mp4", int(args.hours * 3600))
        size = path.stat().st_size
        port = free_port()
        proc = start_service(default_model_dir(), port, Path(tmp) / "service.log")
        url = f"http://127.0.0.1:{port}"
        rows = [("demux only (PyAV)", [demux_seconds(path) for _ in range(args.repeat)], "")]
        try:
            with httpx.Client(timeout=300) as c:
                for name, endpoint, params in (
                    ("/classify", "/classify", {}),
                    ("/classify?segments=true", "/classify", {"segments": "true"}),
                    ("/summarize", "/summarize", {}),
                ):
                    times, note = [], ""
                    for _ in range(args.repeat):
                        start = time.perf_counter()
                        r = c.post(url + endpoint, params=params, files={"file": ("long.mp4", path.read_bytes())})
                        times.append(time.perf_counter() - start)
                        r.raise_for_status()
                        body = r.json()
                        note = f"{len(body.get('segments', []))} segments" if "segments" in body else ""
                    rows.append((name, times, note))
        finally:
            stop_service(proc)
    print(f"{args.hours:g} h, 32x32, 1 fps, {int(args.hours * 3600)} frames, {size / 1e6:.2f} MB")
    print("| request | median s | all runs s | answer |")
    print("|---|---|---|---|")
    for name, times, note in rows:
        print(f"| {name} | {statistics.median(times):.2f} | {', '.join(f'{t:.2f}' for t in times)} | {note} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
