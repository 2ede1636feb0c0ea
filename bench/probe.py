"""Hostile-client probes against a real `python -m service` on loopback (issue 13).

    python -m bench.probe [--repo PATH] [--scale reduced|full] [--json out.json]

--repo runs the service of another checkout (e.g. `git worktree add /tmp/old b50451d`) with
this script's bombs, so the same probes measure the code before and after a change. Every
loop is bounded and every connection goes to 127.0.0.1. Prints one table row per probe:
statuses, CPU seconds the server spent in the 10 s after its answer, RSS growth, fds and
temp files afterwards, and the latency of small /classify requests sent while the bomb ran.

Scales: full is issue 13's (4K 120 fps 600 s, HEVC 16384x8640, 999 streams, 200k tags, 300
stalled clients, a 200-request burst, a 60 s soak); reduced keeps every attack but smaller,
to fit about 10 minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.common import tree_cpu_s
from tests import bombs

REPO = Path(__file__).resolve().parent.parent

SCALES = {
    "full": dict(solid=(3840, 2160, 120, 600, 600), hevc=(16384, 8640), streams=999, tags=200_000,
                 stalled=300, burst=200, soak_s=60),
    "reduced": dict(solid=(1920, 1080, 120, 300, 600), hevc=(8192, 4320), streams=999, tags=30_000,
                    stalled=100, burst=200, soak_s=20),
}


@dataclass
class Row:
    probe: str
    statuses: Counter = field(default_factory=Counter)
    wall_s: float = 0.0
    cpu_after_s: float | None = None
    rss_growth_mb: float | None = None
    peak_growth_mb: float | None = None  # VmHWM of the server process (not of probe workers)
    fds_after: int | None = None
    tmp_after: int | None = None
    small_ms: list[float] = field(default_factory=list)
    small_statuses: Counter = field(default_factory=Counter)
    note: str = ""


class Server:
    def __init__(self, repo: Path, tmp: Path, **settings: object) -> None:
        self.port = _free_port()
        self.tmp = tmp / "uploads"
        self.tmp.mkdir(parents=True, exist_ok=True)
        env = os.environ | {"PYTHONPATH": str(repo), "PORT": str(self.port), "TMP_DIR": str(self.tmp),
                            "LOG_LEVEL": "warning", "MODEL_DIR": str(repo / "models" / "motion"),
                            "WHISPER_MODEL": "none"}  # no background speech-model load in the measurements
        env |= {k.upper(): str(v) for k, v in settings.items()}
        self.log = open(tmp / f"server-{self.port}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "service"], cwd=tmp, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        end = time.monotonic() + 180
        while time.monotonic() < end:
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not become ready")

    def cpu_s(self) -> float:
        """CPU seconds of the server and its child processes (probe workers, reaped ones too)."""
        return tree_cpu_s(self.proc.pid)

    def rss_mb(self, key: str = "VmRSS") -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
        return 0.0

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def tmp_files(self) -> int:
        return len(list(self.tmp.iterdir()))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, path: Path, timeout: float = 300) -> httpx.Response:
    with httpx.Client(timeout=timeout) as c, open(path, "rb") as f:
        return c.post(url, files={"file": (path.name, f, "application/octet-stream")})


def _status(fn: Callable[[], httpx.Response]) -> int | str:
    try:
        return fn().status_code
    except httpx.HTTPError as exc:
        return type(exc).__name__


class SmallTraffic:
    """One small /classify every 0.5 s while a bomb runs: what everyone else sees."""

    def __init__(self, srv: Server, clip: Path, row: Row) -> None:
        self.srv, self.clip, self.row = srv, clip, row
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SmallTraffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=120)

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.perf_counter()
            status = _status(lambda: post(self.srv.url + "/classify", self.clip, timeout=60))
            self.row.small_ms.append((time.perf_counter() - t) * 1000)
            self.row.small_statuses[status] += 1
            self._stop.wait(0.5)


def bomb_probe(srv: Server, name: str, files: list[Path], endpoint: str, clip: Path) -> Row:
    """Send `files` at once, then measure what the server spends after answering them."""
    row = Row(name)
    rss0, hwm0 = srv.rss_mb(), srv.rss_mb("VmHWM")
    t = time.perf_counter()
    with SmallTraffic(srv, clip, row), ThreadPoolExecutor(len(files)) as pool:
        for status in pool.map(lambda p: _status(lambda: post(srv.url + endpoint, p)), files):
            row.statuses[status] += 1
        row.wall_s = time.perf_counter() - t
        cpu = srv.cpu_s()
        time.sleep(10)  # the small requests keep coming: their CPU is in this too (tens of ms each)
        row.cpu_after_s = srv.cpu_s() - cpu
    row.rss_growth_mb = srv.rss_mb() - rss0
    row.peak_growth_mb = srv.rss_mb("VmHWM") - hwm0
    row.fds_after, row.tmp_after = srv.fds(), srv.tmp_files()
    return row


def stalled_probe(srv: Server, clients: int, wait_s: float) -> Row:
    row = Row(f"{clients} stalled uploads")
    socks = []
    for _ in range(clients):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.sendall(b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                  b"Content-Length: 1000000\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n"
                  + b"\0" * 4096)
        socks.append(s)
    time.sleep(wait_s)
    row.fds_after, row.tmp_after = srv.fds(), srv.tmp_files()
    for s in socks:
        s.settimeout(0.2)
        try:
            head = s.recv(64)
            row.statuses[head.split(b" ")[1].decode() if head else "closed"] += 1
        except (TimeoutError, OSError):
            row.statuses["no answer"] += 1
        s.close()
    row.note = f"fds/temp files counted {wait_s:g} s after the stall"
    return row


def header_probe(srv: Server, clip: Path) -> Row:
    row = Row("100 MB header")
    t = time.perf_counter()
    with SmallTraffic(srv, clip, row):
        try:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=60) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
                chunk = b"a" * (1 << 20)
                for _ in range(100):
                    s.sendall(chunk)
                s.sendall(b"\r\n\r\n")
                head = s.recv(64)
                row.statuses[head.split(b" ")[1].decode() if head else "closed"] += 1
        except OSError as exc:
            row.statuses[f"closed ({type(exc).__name__})"] += 1
    row.wall_s = time.perf_counter() - t
    return row


def burst_probe(srv: Server, clip: Path, n: int) -> Row:
    row = Row(f"burst of {n} /classify")
    t = time.perf_counter()
    with ThreadPoolExecutor(50) as pool:
        for status in pool.map(lambda _: _status(lambda: post(srv.url + "/classify", clip, 120)), range(n)):
            row.statuses[status] += 1
    row.wall_s = time.perf_counter() - t
    row.fds_after, row.tmp_after = srv.fds(), srv.tmp_files()
    return row


def soak_probe(srv: Server, clip: Path, seconds: float) -> Row:
    row = Row(f"soak {seconds:g} s (4 clients)")
    fds0 = srv.fds()
    end = time.monotonic() + seconds

    def client() -> None:
        while time.monotonic() < end:
            t = time.perf_counter()
            row.statuses[_status(lambda: post(srv.url + "/classify", clip, 60))] += 1
            row.small_ms.append((time.perf_counter() - t) * 1000)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    row.fds_after, row.tmp_after = srv.fds(), srv.tmp_files()
    row.note = f"fds before {fds0}"
    return row


def drain_probe(repo: Path, tmp: Path, slow: Path) -> Row:
    row = Row("SIGTERM, grace 2 s, 2 in flight")
    srv = Server(repo, tmp / "drain", drain_grace_s=2, request_timeout_s=120, decode_budget_mpx=1e9)
    answers: list[httpx.Response | str] = []

    def call() -> None:
        try:
            answers.append(post(srv.url + "/summarize", slow, 120))
        except httpx.HTTPError as exc:
            answers.append(type(exc).__name__)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for th in threads:
        th.start()
    time.sleep(3)
    srv.proc.send_signal(signal.SIGTERM)
    for th in threads:
        th.join(timeout=120)
    for a in answers:
        if isinstance(a, str):
            row.statuses[a] += 1
        else:
            kind = a.headers.get("content-type", "").split(";")[0]
            retry = " Retry-After" if "retry-after" in a.headers else ""
            row.statuses[f"{a.status_code} {kind}{retry}"] += 1
    srv.proc.wait(timeout=60)
    return row


def make_bombs(d: Path, scale: dict, clip_dir: Path, only: set[str] | None = None) -> dict[str, Path]:
    """Write the bombs once (kept in `d` and reused); `only` those probes' (and the clip)."""
    w, h, fps, secs, gop = scale["solid"]
    hw, hh = scale["hevc"]
    base = d / "base.mkv"
    plan: dict[str, tuple[Path, Callable[[Path], Path]]] = {
        # HEVC first: x265 after x264 in one process once failed to mux ("patches welcome").
        "hevc": (d / f"hevc_{hw}x{hh}.mp4", lambda p: bombs.header_bomb(p, hw, hh, "libx265")),
        "solid": (d / f"solid_{w}x{h}_{fps}_{secs}.mp4", lambda p: bombs.solid_bomb(p, w, h, fps, secs, gop)),
        "streams": (d / f"streams_{scale['streams']}.mkv", lambda p: bombs.stream_bomb(p, scale["streams"])),
        "tags": (d / f"tags_{scale['tags']}.mkv",
                 lambda p: bombs.tag_bomb(p, scale["tags"], bombs.small_mkv(base))),
        "clip": (clip_dir / "small.mp4", _short_clip),
    }
    out = {}
    for k, (path, make) in plan.items():
        if only and k not in only and k != "clip" and not (k == "solid" and "drain" in only):
            continue
        if not path.exists() or path.stat().st_size < 1000:
            print(f"making {path.name} ...", flush=True)
            tmp = path.with_name("tmp-" + path.name)
            make(tmp)
            tmp.rename(path)
        out[k] = path
        print(f"  {k}: {path.name} {path.stat().st_size / 1e6:.2f} MB", flush=True)
    return out


def _short_clip(path: Path) -> Path:
    from models import synthetic

    spec = synthetic.draw_spec(11, "move_right")
    synthetic.write_video(str(path), spec, max_side=128)
    return path


def table(rows: list[Row]) -> str:
    lines = ["| probe | statuses | wall s | CPU s in 10 s after | RSS growth MB | peak RSS growth MB | fds after "
             "| temp files after | small /classify during (statuses; median / max ms) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        small = ""
        if r.small_ms:
            small = (", ".join(f"{k}x{v}" for k, v in r.small_statuses.items())
                     + f"; {statistics.median(r.small_ms):.0f} / {max(r.small_ms):.0f}")
        fmt = lambda v, f="{:.1f}": "" if v is None else f.format(v)  # noqa: E731
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(r.statuses.items(), key=str))
        lines.append(f"| {r.probe} | {statuses} | {fmt(r.wall_s)} | {fmt(r.cpu_after_s)} | "
                     f"{fmt(r.rss_growth_mb, '{:.0f}')} | {fmt(r.peak_growth_mb, '{:.0f}')} | "
                     f"{fmt(r.fds_after, '{}')} | {fmt(r.tmp_after, '{}')} "
                     f"| {small} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", type=Path, default=REPO, help="checkout whose service is probed")
    ap.add_argument("--scale", choices=sorted(SCALES), default="reduced")
    ap.add_argument("--bombs", type=Path, default=Path(tempfile.gettempdir()) / "motion-probe-bombs",
                    help="where bombs are written once and reused")
    ap.add_argument("--only", default="", help="comma-separated probe names to run (default all)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    scale = SCALES[args.scale]
    d = args.bombs / args.scale
    d.mkdir(parents=True, exist_ok=True)
    only = set(filter(None, args.only.split(",")))
    b = make_bombs(d, scale, d, only)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="probe-") as t:
        tmp = Path(t)
        srv = Server(args.repo.resolve(), tmp / "main", request_timeout_s=10, max_duration_s=600)
        try:
            steps: list[tuple[str, Callable[[], Row]]] = [
                ("burst", lambda: burst_probe(srv, b["clip"], scale["burst"])),
                ("solid", lambda: bomb_probe(srv, f"2x /summarize {b['solid'].name}", [b["solid"]] * 2,
                                             "/summarize", b["clip"])),
                ("hevc", lambda: bomb_probe(srv, f"4x {b['hevc'].name}", [b["hevc"]] * 4, "/classify", b["clip"])),
                ("streams", lambda: bomb_probe(srv, f"2x {b['streams'].name}", [b["streams"]] * 2, "/classify",
                                               b["clip"])),
                ("tags", lambda: bomb_probe(srv, f"1x {b['tags'].name}", [b["tags"]], "/classify", b["clip"])),
                ("stalled", lambda: stalled_probe(srv, scale["stalled"], 20)),
                ("header", lambda: header_probe(srv, b["clip"])),
                ("soak", lambda: soak_probe(srv, b["clip"], scale["soak_s"])),
            ]
            for name, step in steps:
                if only and name not in only:
                    continue
                print(f"probe {name} ...", flush=True)
                rows.append(step())
                print(table(rows[-1:]).splitlines()[-1], flush=True)
        finally:
            srv.stop()
        if not only or "drain" in only:
            print("probe drain ...", flush=True)
            rows.append(drain_probe(args.repo.resolve(), tmp, b["solid"]))
    print()
    print(f"repo {args.repo} ({_head(args.repo)}), scale {args.scale}")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in rows], default=str, indent=1))


def _head(repo: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


if __name__ == "__main__":
    main()
