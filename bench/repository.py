"""A two-model repository under concurrent mixed load.

    python -m bench.repository [--requests 48] [--concurrency 8]

Builds a repository in a temporary folder: `motion` (the shipped model) and `second` (the
same network served with another model.json: shorter_side_crop at S=72, stride-2 sampling,
version 2), starts `python -m service` on it (MODEL_REPOSITORY, loopback), and sends
/classify and /summarize uploads, each naming one of the two models (and a share naming
none: the default), `--concurrency` at a time. Checks that every answer names the model it
asked for, and prints per model: answers, latency, and the batch-size histogram read from
/metrics (batcher_batch_size{model=...}), which shows each model batching on its own worker.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx

from bench.common import CLIP_720P_10S, ROOT, ensure_clip, machine_note, table
from bench.e2e import free_port, p, start_service, stop_service

SECOND = {"version": "2", "resize": "shorter_side_crop", "resize_shorter": 72,
          "sampling": {"policy": "stride", "stride": 2}}


def make_repository(root: Path) -> Path:
    repo = root / "repository"
    for name, changes in (("motion", {}), ("second", SECOND)):
        d = repo / name
        # The whole directory: model.json may name more files (e.g. domain statistics).
        shutil.copytree(ROOT / "models" / "motion", d, ignore=shutil.ignore_patterns("__*", "*.py"))
        manifest = json.loads((ROOT / "models" / "motion" / "model.json").read_text())
        manifest.update(name=name, **changes)
        (d / "model.json").write_text(json.dumps(manifest))
    return repo


def histograms(url: str) -> dict[str, dict[str, float]]:
    """{model: {bucket le: cumulative count}} of batcher_batch_size."""
    text = httpx.get(url + "/metrics", timeout=10).text
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for le, model, value in re.findall(r'^batcher_batch_size_bucket\{le="([^"]+)",model="([^"]+)"\} (\S+)$',
                                       text, re.M):
        out[model][le] = float(value)
    for model, value in re.findall(r'^batcher_batch_size_count\{model="([^"]+)"\} (\S+)$', text, re.M):
        out[model]["count"] = float(value)
    for model, value in re.findall(r'^batcher_batch_size_sum\{model="([^"]+)"\} (\S+)$', text, re.M):
        out[model]["sum"] = float(value)
    return out


async def mixed_load(url: str, clip: bytes, requests: int, concurrency: int) -> list[dict]:
    # (endpoint, model asked for or None for the default), cycled.
    kinds = list(itertools.product(["/classify", "/summarize"], ["motion", "second", None]))
    jobs = iter([kinds[i % len(kinds)] for i in range(requests)])
    results: list[dict] = []
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:

        async def worker() -> None:
            for endpoint, model in jobs:
                params = {"model": model} if model else {}
                t0 = time.perf_counter()
                r = await client.post(endpoint, params=params, files={"file": ("clip.mp4", clip, "video/mp4")})
                answered = r.json().get("model", {}).get("name") if r.status_code == 200 else None
                results.append({"endpoint": endpoint, "asked": model or "motion", "status": r.status_code,
                                "answered": answered, "latency": time.perf_counter() - t0})

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=48)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args(argv)
    clip = ensure_clip(CLIP_720P_10S).read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repository(Path(tmp))
        port = free_port()
        proc = start_service(None, port, ROOT / ".cache" / "bench" / "repository-service.log",
                             {"MODEL_REPOSITORY": str(repo)})
        url = f"http://127.0.0.1:{port}"
        try:
            models = httpx.get(url + "/v1/models").json()["models"]
            before = histograms(url)
            started = time.perf_counter()
            results = asyncio.run(mixed_load(url, clip, args.requests, args.concurrency))
            wall = time.perf_counter() - started
            after = histograms(url)
        finally:
            stop_service(proc)
    wrong = [r for r in results if r["status"] != 200 or r["answered"] != r["asked"]]
    print(f"machine: {machine_note()}")
    print("models: " + ", ".join(f"{m['name']} (v{m['version']}, {m['resize']}, default={m['default']})"
                                  for m in models))
    print(f"{len(results)} requests, {args.concurrency} at a time, in {wall:.1f} s "
          f"({len(results) / wall:.2f} requests/s); answers naming another model or failing: {len(wrong)}")
    rows = []
    for model in ("motion", "second"):
        mine = [r for r in results if r["asked"] == model]
        kinds = Counter(r["endpoint"] for r in mine)
        b, a = before.get(model, {}), after.get(model, {})
        batches = a.get("count", 0) - b.get("count", 0)
        clips = a.get("sum", 0) - b.get("sum", 0)
        buckets = [le for le in a if le not in ("count", "sum")]
        per_bucket, prev = [], 0.0
        for le in sorted(buckets, key=lambda x: float(x.replace("+Inf", "inf"))):
            n = a[le] - b.get(le, 0.0)
            if n - prev:
                per_bucket.append(f"<={le}: {int(n - prev)}")
            prev = n
        rows.append((model, f"{kinds['/classify']} classify, {kinds['/summarize']} summarize",
                     sum(r["answered"] == model for r in mine), p([r["latency"] for r in mine], 0.5) * 1e3,
                     int(batches), int(clips), clips / batches if batches else float("nan"), "; ".join(per_bucket)))
    print()
    print(table(["model", "asked", "answered by it", "p50 ms", "batches", "clips", "mean batch",
                 "batch-size histogram (batches per bucket)"], rows))
    if wrong:
        raise SystemExit(f"{len(wrong)} answers were wrong: {wrong[:3]}")


if __name__ == "__main__":
    main()
