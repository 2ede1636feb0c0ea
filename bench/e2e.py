"""End-to-end benchmark: a bounded load generator against the running service, and the same
pipeline called one request at a time in-process, without HTTP and without the batcher.

    python -m bench.e2e [--url http://127.0.0.1:8000] [--requests 32] [--time-cap 120]
                        [--concurrency 1 4 16] [--clip short|long] [--model-dir DIR]
                        [--config DECODE_MODE=fast,DECODE_LOOP_FILTER=false ...]

Without --url the service is started here (`python -m service`, PORT set, loopback only)
and stopped at the end, once per --config (environment settings; default: none, i.e. the
service's defaults), so several configurations are compared in one run.

Besides throughput and latency it prints, from the same run: FFmpeg's own full decode of
the clip (`ffmpeg -threads <cores>`, median of 3) as "x ffmpeg" (p50 latency over it) and
"ffmpeg rate" (requests/s times its seconds: >= 1 means the service answers videos at
least as fast as FFmpeg can merely decode them), and the serving overhead: the client's
latency minus the decode and inference times the service reports (upload, routing,
queue, JSON), as a share of decode + inference, median over the level's requests.

The load is bounded twice: a fixed number of requests per level and a time cap after
which no new request starts. Mean batch size comes from the
batcher_batch_size histogram in /metrics (its _sum and _count, before and after a level).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx

from bench.common import CLIP_720P_10S, CLIP_1080P_60S, ROOT, cores, ensure_clip, machine_note, median_time, table
from bench.decode import ffmpeg_full_decode


def default_model_dir() -> Path:
    shipped = ROOT / "models" / "motion"
    return shipped


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(model_dir: Path | None, port: int, log: Path, config: dict[str, str] | None = None,
                  tree: Path = ROOT, ready_timeout_s: float = 180.0) -> subprocess.Popen:
    """`python -m service` of the source tree `tree` (default: this checkout) on loopback.

    model_dir None: no MODEL_DIR, so `config`'s MODEL_REPOSITORY (or the shipped one) is served."""
    env = {**os.environ, **(config or {}), "HOST": "127.0.0.1", "PORT": str(port)}
    env.pop("MODEL_DIR", None)
    if model_dir is not None:
        env["MODEL_DIR"] = str(model_dir)
    if tree != ROOT:
        env["PYTHONPATH"] = str(tree)  # that tree's service and models packages, not the installed ones
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "service"], cwd=tree, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    deadline = time.monotonic() + ready_timeout_s  # model load + warm-up on a busy 2-core machine
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the service exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop_service(proc)
    raise RuntimeError(f"the service was not ready within {ready_timeout_s:g} s; see {log}")


def stop_service(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def batch_stats(url: str) -> tuple[float, float]:
    """(sum, count) of the batcher's batch size histogram."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    total = re.search(r"^batcher_batch_size_sum(?:\{[^}]*\})? ([0-9.eE+-]+)$", text, re.M)
    count = re.search(r"^batcher_batch_size_count(?:\{[^}]*\})? ([0-9.eE+-]+)$", text, re.M)
    return (float(total.group(1)) if total else float("nan"), float(count.group(1)) if count else float("nan"))


async def load(url: str, clip: bytes, name: str, concurrency: int, requests: int,
               time_cap: float) -> tuple[list[float], int, float, list[float]]:
    """Send up to `requests` uploads, `concurrency` at a time, none starting after `time_cap` s.

    Returns (latencies of 200 answers, failures, wall seconds, overhead shares): an overhead
    share is (latency - decode - inference) / (decode + inference), times from timings_ms.
    """
    latencies: list[float] = []
    overheads: list[float] = []
    failures = 0
    issued = 0
    start = time.perf_counter()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:

        async def worker() -> None:
            nonlocal issued, failures
            while issued < requests and time.perf_counter() - start < time_cap:
                issued += 1
                t0 = time.perf_counter()
                response = await client.post("/classify", files={"file": (name, clip, "video/mp4")})
                if response.status_code == 200:
                    latency = time.perf_counter() - t0
                    latencies.append(latency)
                    timings = response.json()["timings_ms"]
                    work = (timings["decode"] + timings["inference"]) / 1000
                    overheads.append((latency - work) / work)
                else:
                    failures += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, failures, time.perf_counter() - start, overheads


def in_process(path: Path, model_dir: Path, requests: int, time_cap: float) -> list[float]:
    """The same work one request at a time, with the service's default settings: the service's own
    /classify pipeline (service.pipelines) in-process, decoding as an idle service does, with a
    direct ONNX Runtime call instead of the batcher. No HTTP."""
    import asyncio

    from service.pipelines import Pipelines
    from service.settings import Settings

    classify = Pipelines.local(model_dir, Settings(model_dir=model_dir), intra_op_threads=cores()).classify

    def once() -> None:
        asyncio.run(classify(path))

    once()  # warm-up, as the service warms up before it is ready
    latencies: list[float] = []
    start = time.perf_counter()
    while len(latencies) < requests and time.perf_counter() - start < time_cap:
        t0 = time.perf_counter()
        once()
        latencies.append(time.perf_counter() - t0)
    return latencies


def p(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def parse_config(text: str) -> dict[str, str]:
    pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
    if any(len(pair) != 2 for pair in pairs):
        raise SystemExit(f"--config wants KEY=VALUE[,KEY=VALUE...], not {text!r}")
    return {k.strip().upper(): v.strip() for k, v in pairs}


def run(args: argparse.Namespace) -> str:
    plan = CLIP_720P_10S if args.clip == "short" else CLIP_1080P_60S
    path = ensure_clip(plan)
    data = path.read_bytes()
    model_dir = Path(args.model_dir) if args.model_dir else default_model_dir()
    ffmpeg = shutil.which("ffmpeg")
    ffmpeg_s = median_time(lambda: ffmpeg_full_decode(path, cores(), ffmpeg), 3)[0] if ffmpeg else float("nan")
    if args.url is not None and urlparse(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("bench.e2e only loads a service on loopback")
    configs = [parse_config(c) for c in args.config] or [{}]
    rows = []
    for config in configs if args.url is None else [{}]:
        proc = None
        url = args.url
        if url is None:
            log = ROOT / ".cache" / "bench" / "e2e-service.log"
            port = free_port()
            proc = start_service(model_dir, port, log, config)
            url = f"http://127.0.0.1:{port}"
        name = ",".join(f"{k}={v}" for k, v in config.items()) or "defaults"
        try:
            for c in args.concurrency:
                before = batch_stats(url)
                lat, failed, wall, over = asyncio.run(load(url, data, path.name, c, args.requests, args.time_cap))
                after = batch_stats(url)
                batches = after[1] - before[1]
                mean_batch = (after[0] - before[0]) / batches if batches else float("nan")
                rows.append((f"service ({name}), concurrency {c}", len(lat), failed, len(lat) / wall,
                             p(lat, 0.5) * 1e3, p(lat, 0.99) * 1e3, mean_batch, p(over, 0.5) * 100))
        finally:
            if proc is not None:
                stop_service(proc)
    lat = in_process(path, model_dir, args.requests, args.time_cap)
    wall = sum(lat)
    rows.append(("in-process, one at a time, no batcher", len(lat), 0, len(lat) / wall,
                 p(lat, 0.5) * 1e3, p(lat, 0.99) * 1e3, 1.0, float("nan")))
    base = rows[-1][3]
    shown = [(*r[:7], r[3] / base, r[4] / 1e3 / ffmpeg_s, r[3] * ffmpeg_s, r[7]) for r in rows]
    return "\n".join([
        f"machine: {machine_note()}",
        f"clip: {path.name} ({len(data) / 1e6:.1f} MB); model: {model_dir}; service: {args.url or 'started here'}",
        f"ffmpeg -threads {cores()} full decode of the clip: {ffmpeg_s:.3f} s (median of 3, same run)"
        if ffmpeg else "ffmpeg: NOT FOUND on PATH, its columns are nan (apt-get install -y ffmpeg)",
        f"per level: at most {args.requests} requests, none started after {args.time_cap:g} s",
        "",
        table(["load", "ok", "failed", "requests/s", "p50 ms", "p99 ms", "mean batch",
               "throughput x in-process", "p50 x ffmpeg", "ffmpeg rate", "overhead % (median)"], shown),
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=None, help="a running service on loopback; default: start one")
    parser.add_argument("--requests", type=int, default=32, help="requests per concurrency level")
    parser.add_argument("--time-cap", type=float, default=120.0, help="seconds per level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--clip", choices=["short", "long"], default="short",
                        help="short: 10 s 720p (default); long: 60 s 1080p")
    parser.add_argument("--model-dir", default=None, help="default: the shipped models/motion")
    parser.add_argument("--config", action="append", default=[],
                        help="service settings for one run, KEY=VALUE[,KEY=VALUE]; repeat to compare")
    print(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
