"""bench.e2e's load against two source trees in one run: a baseline commit and this checkout.

    python -m bench.before_after [--base b50451d] [--requests 24] [--concurrency 1 4 16] [--rounds 2]

The baseline tree is `git archive`d into a temporary folder (the repository is not touched)
and both services run side by side on loopback with the same model directory; for each
concurrency level the two are loaded in turns (A B, then B A, ... for --rounds), so drift in
the shared machine's load falls on both alike. Prints requests/s, p50 and mean batch per tree
and level, the service process's CPU time per request (user + system, all threads: the
figure least disturbed by other jobs on a shared machine), and the ratio of this checkout to
the baseline; plus both trees' throughput over
the in-process pipeline (service.pipelines, this checkout) measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import tarfile
import tempfile
from pathlib import Path

from bench.common import CLIP_720P_10S, CLIP_1080P_60S, ROOT, ensure_clip, machine_note, table
from bench.e2e import batch_stats, free_port, in_process, load, p, start_service, stop_service


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads: less sensitive than wall time
    to the other jobs on a shared machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def export_tree(commit: str, into: Path) -> Path:
    """The files of `commit` (git archive), without touching the repository's worktrees."""
    archive = into / "base.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "-o", str(archive), commit], check=True)
    tree = into / "tree"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    return tree


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="b50451d", help="baseline commit")
    ap.add_argument("--requests", type=int, default=24, help="requests per tree, level and round")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--time-cap", type=float, default=120.0)
    ap.add_argument("--clip", choices=["short", "long"], default="short")
    args = ap.parse_args(argv)
    path = ensure_clip(CLIP_720P_10S if args.clip == "short" else CLIP_1080P_60S)
    data = path.read_bytes()
    model_dir = ROOT / "models" / "motion"
    with tempfile.TemporaryDirectory() as tmp:
        trees = {f"base {args.base}": export_tree(args.base, Path(tmp)), "this checkout": ROOT}
        procs, urls = {}, {}
        try:
            for name, tree in trees.items():
                port = free_port()
                log = ROOT / ".cache" / "bench" / f"before-after-{name.split()[0]}.log"
                procs[name] = start_service(model_dir, port, log, tree=tree)
                urls[name] = f"http://127.0.0.1:{port}"
            results: dict[tuple[str, int], dict[str, list[float]]] = {}
            for c in args.concurrency:
                for r in range(args.rounds):
                    order = list(trees) if r % 2 == 0 else list(reversed(trees))
                    for name in order:
                        before = batch_stats(urls[name])
                        cpu0 = cpu_seconds(procs[name].pid)
                        lat, failed, wall, _ = asyncio.run(
                            load(urls[name], data, path.name, c, args.requests, args.time_cap))
                        cpu = cpu_seconds(procs[name].pid) - cpu0
                        after = batch_stats(urls[name])
                        acc = results.setdefault((name, c), {"lat": [], "wall": [], "failed": [], "sum": [],
                                                             "count": [], "cpu": []})
                        acc["cpu"].append(cpu)
                        acc["lat"] += lat
                        acc["wall"].append(wall)
                        acc["failed"].append(failed)
                        acc["sum"].append(after[0] - before[0])
                        acc["count"].append(after[1] - before[1])
        finally:
            for proc in procs.values():
                stop_service(proc)
    lat = in_process(path, model_dir, args.requests, args.time_cap)
    base_rate = len(lat) / sum(lat)
    rows = []
    for c in args.concurrency:
        rate, p50, cpu = {}, {}, {}
        for name in trees:
            acc = results[(name, c)]
            rate[name] = len(acc["lat"]) / sum(acc["wall"])
            p50[name] = p(acc["lat"], 0.5)
            cpu[name] = sum(acc["cpu"]) / max(1, len(acc["lat"]))
            mean_batch = sum(acc["sum"]) / sum(acc["count"]) if sum(acc["count"]) else float("nan")
            rows.append((name, c, len(acc["lat"]), int(sum(acc["failed"])), rate[name], p50[name] * 1e3,
                         cpu[name] * 1e3, mean_batch, rate[name] / base_rate, ""))
        base, new = f"base {args.base}", "this checkout"
        rows.append(("ratio this / base", c, "", "", rate[new] / rate[base], p50[new] / p50[base],
                     cpu[new] / cpu[base], "", "", f"{rate[new] / rate[base]:.3f}"))
    rows.append(("in-process pipeline, one at a time", 1, len(lat), 0, base_rate, p(lat, 0.5) * 1e3, "", 1.0, 1.0,
                 ""))
    print(f"machine: {machine_note()}")
    print(f"clip: {path.name}; model: {model_dir}; {args.rounds} rounds x {args.requests} requests per tree and level,"
          " trees loaded in turns")
    print()
    print(table(["service", "concurrency", "ok", "failed", "requests/s", "p50 ms", "service CPU ms / request",
                 "mean batch", "throughput x in-process", "this / base (requests/s)"], rows))


if __name__ == "__main__":
    main()
