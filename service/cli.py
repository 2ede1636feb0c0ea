"""`motion-serve`: start the service (no subcommand, or `serve`), or use a running one.

    motion-serve                       # serve on $HOST:$PORT (settings: environment variables)
    motion-serve classify clip.mp4     # labels, keyframes, timeline as a table (--json: the answer)
    motion-serve summarize clip.mp4 --thumbnails-dir shots/
    motion-serve transcribe talk.mp4 --format srt > talk.srt

The client shows upload progress on stderr and exits 1 with the server's problem detail
when a request fails (2 for a usage error), so scripts can rely on the exit status.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx

from service.settings import Settings

DEFAULT_URL = "http://127.0.0.1:8000"


# ------------------------------------------------------------------ settings in --help


def _default(name: str) -> str:
    field = Settings.model_fields[name]
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, Path):
        return str(value)
    return json.dumps(value) if isinstance(value, bool) else str(value)


def settings_table() -> str:
    """The settings as a plain-text table, generated from service/settings.py's fields."""
    rows = [(name.upper(), _default(name), field.description or "")
            for name, field in Settings.model_fields.items()]
    w1 = max(len(r[0]) for r in rows)
    w2 = min(max(len(r[1]) for r in rows), 28)
    lines = [f"  {'variable':<{w1}}  {'default':<{w2}}  meaning"]
    for var, default, meaning in rows:
        if len(default) > w2:  # a long path: on its own line
            lines.append(f"  {var:<{w1}}  {default}")
            default = ""
        lines.append(f"  {var:<{w1}}  {default:<{w2}}  {meaning}")
    return "\n".join(lines)


def _settings_epilog() -> str:
    return ("settings (environment variables, no prefix; defaults as on this machine):\n"
            + settings_table())


# ------------------------------------------------------------------ upload with progress


class ProgressReader:
    """A binary file that reports how much of it httpx has read (= handed to the socket)."""

    def __init__(self, fh: IO[bytes], size: int, out: IO[str], label: str) -> None:
        self.fh, self.size, self.out, self.label = fh, size, out, label
        self.sent = 0
        self.tty = out.isatty()
        self.start = time.perf_counter()
        self._shown = -1

    def read(self, n: int = -1) -> bytes:
        chunk = self.fh.read(n)
        self.sent += len(chunk)
        percent = 100 if not self.size else int(100 * self.sent / self.size)
        # A terminal gets a live line; a log gets the finished upload only.
        if self.tty and percent != self._shown:
            self._shown = percent
            self.out.write(f"\ruploading {self.label}: {percent:3d}% of {self.size / 1e6:.2f} MB")
            self.out.flush()
        if not chunk or self.sent >= self.size:
            self.done()
        return chunk

    def done(self) -> None:
        if self._shown == 1000:
            return
        self._shown = 1000
        seconds = time.perf_counter() - self.start
        prefix = "\r" if self.tty else ""
        self.out.write(f"{prefix}uploaded {self.label}: {self.size / 1e6:.2f} MB in {seconds:.2f} s; "
                       "waiting for the answer\n")
        self.out.flush()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.fh.seek(offset, whence)

    def tell(self) -> int:
        return self.fh.tell()

    def fileno(self) -> int:
        return self.fh.fileno()


class ClientError(Exception):
    """A failed request: the message is what the user reads, the exit status is 1."""


def _problem(response: httpx.Response) -> str:
    try:
        body = response.json()
        detail = body.get("detail") or response.text
        title = body.get("title") or response.reason_phrase
    except (ValueError, AttributeError):
        detail, title = response.text.strip()[:500] or "no detail", response.reason_phrase
    return f"{response.status_code} {title}: {detail}"


def _server_paths(client_url: str, headers: dict[str, str]) -> set[str]:
    """The endpoints the server offers (its OpenAPI document), to tell 'no such endpoint' from
    'no such model'; empty when it cannot be read."""
    try:
        spec = httpx.get(client_url.rstrip("/") + "/openapi.json", headers=headers, timeout=10).json()
        return set(spec.get("paths", {}))
    except (httpx.HTTPError, ValueError, AttributeError):
        return set()


def post_file(args: argparse.Namespace, path: str, params: dict[str, Any]) -> httpx.Response:
    file = Path(args.file)
    if not file.is_file():
        raise ClientError(f"{file}: no such file")
    url = args.url.rstrip("/") + path
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    params = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in params.items() if v is not None}
    err = open(os.devnull, "w") if args.quiet else sys.stderr  # noqa: SIM115
    try:
        with file.open("rb") as fh, httpx.Client(timeout=httpx.Timeout(args.timeout, connect=10)) as client:
            reader = ProgressReader(fh, file.stat().st_size, err, file.name)
            response = client.post(url, params=params, headers=headers,
                                   files={"file": (file.name, reader, "application/octet-stream")})
    except httpx.TimeoutException:
        raise ClientError(f"no answer from {url} within {args.timeout:g} s (--timeout)") from None
    except httpx.TransportError as exc:
        raise ClientError(f"cannot reach {url}: {exc}; is the server running? (--url)") from None
    finally:
        if args.quiet:
            err.close()
    if response.status_code == 404 and "json" not in response.headers.get("content-type", ""):
        raise ClientError(f"{url}: 404, not a motion-serve endpoint")
    if response.status_code == 404 and path not in _server_paths(client_url=args.url, headers=headers):
        raise ClientError(f"404: this server has no {path} endpoint (see {args.url.rstrip('/')}/docs)")
    if response.status_code >= 400:
        raise ClientError(_problem(response))
    return response


# ------------------------------------------------------------------ tables


def _bar(score: float, width: int = 30) -> str:
    return "█" * round(score * width)


def _video_line(name: str, answer: dict) -> str:
    v, m = answer["video"], answer["model"]
    return (f"{name}: {v['duration_s']:.2f} s, {v['width']}x{v['height']}, {v['fps']:.2f} fps, {v['codec']}"
            f" | model {m['name']} v{m['version']} | {answer['timings_ms']['total']:.0f} ms on the server")


def _labels(labels: list[dict], indent: str = "") -> list[str]:
    w = max(len(x["label"]) for x in labels)
    return [f"{indent}{x['label']:<{w}}  {x['score']:.3f}  {_bar(x['score'])}".rstrip() for x in labels]


def format_classify(name: str, a: dict) -> str:
    lines = [_video_line(name, a), "", *_labels(a["labels"])]
    if "domain" in a:
        d = a["domain"]
        verdict = "in the model's domain" if d["in_domain"] else "OUTSIDE the model's domain: do not trust the labels"
        lines += ["", f"domain: {verdict} (distance {d['distance']:.2f}, threshold {d['threshold']:.2f})"]
    keys = set(a["keyframes"])
    lines += ["", "attention over the frames the model saw (* = keyframe):"]
    top = max(f["attention"] for f in a["frames"])
    for f in a["frames"]:
        mark = "*" if f["index"] in keys else " "
        lines.append(f" {mark} frame {f['index']:>6}  {f['timestamp_s']:8.2f} s  {f['attention']:.4f}  "
                     f"{'▇' * max(1, round(20 * f['attention'] / top))}")
    if "segments" in a:
        lines += ["", "timeline:"]
        for s in a["segments"]:
            tops = ", ".join(f"{x['label']} {x['score']:.2f}" for x in s["labels"])
            lines.append(f"  {s['start_s']:8.2f} - {s['end_s']:8.2f} s  {tops}")
    return "\n".join(lines)


def format_summarize(name: str, a: dict) -> str:
    lines = [_video_line(name, a), "", f"shots ({len(a['segments'])}):"]
    for i, s in enumerate(a["segments"]):
        extra = ""
        if s.get("labels"):
            extra = "  " + ", ".join(f"{x['label']} {x['score']:.2f}" for x in s["labels"])
        lines.append(f"  {i + 1:>3}  {s['start_s']:8.2f} - {s['end_s']:8.2f} s  frames {s['start_index']}-"
                     f"{s['end_index']}{extra}")
    lines += ["", f"keyframes ({len(a['keyframes'])}):"]
    for k in a["keyframes"]:
        text = ""
        if k.get("text"):
            text = "  text: " + " | ".join(t["text"] for t in k["text"])
        saved = f"  -> {k['saved']}" if k.get("saved") else ""
        lines.append(f"  shot {k['segment'] + 1:>3}  frame {k['index']:>6}  {k['timestamp_s']:8.2f} s  "
                     f"score {k['score']:.2f}{saved}{text}")
    return "\n".join(lines)


def format_transcribe(name: str, a: dict) -> str:
    media = a.get("media", {})
    head = f"{name}: {media.get('duration_s', 0):.2f} s"
    if not media.get("has_audio", True):
        return head + ", no audio track: nothing to transcribe"
    if a.get("language"):
        head += f", language {a['language']} ({a.get('language_probability', 0):.2f})"
    lines = [head, ""]
    lines += [f"  [{s['start_s']:7.2f} - {s['end_s']:7.2f}]  {s['text']}" for s in a.get("segments", [])]
    return "\n".join(lines)


def _save_thumbnails(answer: dict, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for k in answer["keyframes"]:
        uri = k.pop("thumbnail", None)
        if not uri:
            continue
        target = directory / f"keyframe-{k['index']:06d}.jpg"
        target.write_bytes(base64.b64decode(uri.split(",", 1)[1]))
        k["saved"] = str(target)


# ------------------------------------------------------------------ commands


def cmd_classify(args: argparse.Namespace) -> str:
    answer = post_file(args, "/classify", {"top_k": args.top_k, "segments": args.segments,
                                           "model": args.model}).json()
    return json.dumps(answer, indent=2) if args.json else format_classify(Path(args.file).name, answer)


def cmd_summarize(args: argparse.Namespace) -> str:
    params = {"max_keyframes": args.max_keyframes, "thumbnails": bool(args.thumbnails_dir) or None,
              "labels": args.labels or None, "text": args.text or None, "model": args.model}
    answer = post_file(args, "/summarize", params).json()
    if args.thumbnails_dir:
        _save_thumbnails(answer, Path(args.thumbnails_dir))
    return json.dumps(answer, indent=2) if args.json else format_summarize(Path(args.file).name, answer)


def cmd_transcribe(args: argparse.Namespace) -> str:
    fmt = "json" if args.json else args.format
    response = post_file(args, "/transcribe", {"language": args.language, "format": fmt})
    if fmt in ("vtt", "srt"):
        return response.text.rstrip("\n")
    answer = response.json()
    return json.dumps(answer, indent=2) if args.json else format_transcribe(Path(args.file).name, answer)


def _client_options(p: argparse.ArgumentParser, model: bool = True) -> None:
    p.add_argument("file", help="the video (or audio) file to upload")
    p.add_argument("--url", default=os.environ.get("MOTION_SERVE_URL", DEFAULT_URL),
                   help=f"the service's base URL (default: $MOTION_SERVE_URL or {DEFAULT_URL})")
    if model:
        p.add_argument("--model", help="which served model answers (default: the server's default model)")
    p.add_argument("--api-key", default=os.environ.get("MOTION_SERVE_API_KEY") or os.environ.get("API_KEY"),
                   help="sent as 'Authorization: Bearer <key>' (default: $MOTION_SERVE_API_KEY, else $API_KEY)")
    p.add_argument("--json", action="store_true", help="print the server's JSON answer instead of a table")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the answer (default 300)")
    p.add_argument("-q", "--quiet", action="store_true", help="no upload progress on stderr")


def build_parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="motion-serve", formatter_class=raw,
        description="Video understanding over HTTP. Without a command: start the service "
                    "(as `motion-serve serve`). With one: upload a file to a running service.",
        epilog=_settings_epilog(),
    )
    sub = parser.add_subparsers(dest="command", metavar="{serve,classify,summarize,transcribe}")
    sub.add_parser("serve", help="start the service on $HOST:$PORT (the default)", formatter_class=raw,
                   description="Start the service. Every setting is an environment variable.",
                   epilog=_settings_epilog())

    p = sub.add_parser("classify", help="labels, attention over frames, keyframes, timeline")
    _client_options(p)
    p.add_argument("--top-k", type=int, default=5, help="how many labels (default 5)")
    p.add_argument("--no-segments", dest="segments", action="store_false",
                   help="skip the timeline (segments=true is asked for by default)")
    p.set_defaults(run=cmd_classify)

    p = sub.add_parser("summarize", help="shots/scenes with one keyframe each")
    _client_options(p)
    p.add_argument("--max-keyframes", type=int, default=8, help="at most this many keyframes (default 8)")
    p.add_argument("--thumbnails-dir", help="save each keyframe's JPEG in this folder")
    p.add_argument("--labels", action="store_true", help="classify each shot too")
    p.add_argument("--text", action="store_true", help="read on-screen text of each keyframe (if the server can)")
    p.set_defaults(run=cmd_summarize)

    p = sub.add_parser("transcribe", help="speech to text (if the server offers /transcribe)")
    _client_options(p, model=False)
    p.add_argument("--language", help="ISO 639-1 code; default: detected")
    p.add_argument("--format", choices=("json", "vtt", "srt"), default="json",
                   help="json (shown as a table), or subtitles printed as they come")
    p.set_defaults(run=cmd_transcribe)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in (None, "serve"):
        from service.__main__ import serve

        serve()
        return 0
    try:
        out = args.run(args)
    except ClientError as exc:
        print(f"motion-serve {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    sys.stdout.write(out + "\n")
    return 0
