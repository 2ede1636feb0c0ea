"""The `motion-serve` command line: help, and the client commands against a real server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from bench.speechgen import compose, write_media
from service.settings import Settings
from tests.conftest import ThreadServer, free_port, wait_for

SCRIPT = Path(sys.executable).parent / "motion-serve"


def run(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """The CLI as a person runs it: its own process, its exit status, its stdout and stderr."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("API_KEY", "MOTION_SERVE_API_KEY")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "service", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


def test_help_prints_usage_and_every_setting_without_starting_a_server() -> None:
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "service"]
    result = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("usage: motion-serve")
    for sub in ("serve", "classify", "summarize", "transcribe"):
        assert sub in out
    for name, field in Settings.model_fields.items():
        line = next((ln for ln in out.splitlines() if ln.strip().startswith(name.upper() + " ")), None)
        assert line is not None, f"{name.upper()} missing from --help"
        assert field.description and field.description in line
    assert "Uvicorn running" not in result.stderr


def test_classify_prints_a_table_and_upload_progress(server: ThreadServer, media) -> None:
    result = run("classify", str(media["short"]), "--url", server.url)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("short.mp4: 3.00 s") and "model motion v2" in lines[0]
    assert lines[2].split()[0] == "move_right"
    assert "timeline:" in result.stdout and "attention over the frames" in result.stdout
    assert result.stdout.count(" frame ") == 16
    assert "uploaded short.mp4:" in result.stderr


def test_classify_json_is_the_servers_answer(server: ThreadServer, media) -> None:
    result = run("classify", str(media["webm"]), "--url", server.url, "--json", "--top-k", "3", "--quiet")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["labels"][0]["label"] == "grow" and len(answer["labels"]) == 3
    assert answer["segments"] and len(answer["frames"]) == 16
    assert result.stderr == ""


def test_summarize_saves_the_keyframes(server: ThreadServer, media, tmp_path: Path) -> None:
    out = tmp_path / "shots"
    result = run("summarize", str(media["short"]), "--url", server.url, "--thumbnails-dir", str(out))
    assert result.returncode == 0, result.stderr
    assert "shots (" in result.stdout and "keyframes (" in result.stdout
    saved = sorted(out.glob("keyframe-*.jpg"))
    assert saved and all(p.read_bytes()[:2] == b"\xff\xd8" for p in saved)
    assert str(saved[0]) in result.stdout


def test_errors_exit_1_with_the_problem_detail(server: ThreadServer, media) -> None:
    bad = run("classify", str(media["png"]), "--url", server.url)
    assert bad.returncode == 1
    assert "400 Bad Request" in bad.stderr and "upload a video file" in bad.stderr
    assert bad.stdout == ""

    too_many = run("classify", str(media["short"]), "--url", server.url, "--top-k", "99")
    assert too_many.returncode == 1 and "422" in too_many.stderr and "top_k" in too_many.stderr

    unknown = run("classify", str(media["short"]), "--url", server.url, "--model", "no-such-model", "-q")
    assert unknown.returncode == 1 and "404" in unknown.stderr and "no-such-model" in unknown.stderr

    missing = run("classify", "/nonexistent/clip.mp4", "--url", server.url)
    assert missing.returncode == 1 and "no such file" in missing.stderr

    down = run("classify", str(media["short"]), "--url", f"http://127.0.0.1:{free_port()}")
    assert down.returncode == 1 and "cannot reach" in down.stderr

    usage = run("classify")
    assert usage.returncode == 2 and "usage:" in usage.stderr


def test_transcribe_without_a_speech_model_exits_1_with_the_reason(server: ThreadServer, media) -> None:
    result = run("transcribe", str(media["short"]), "--url", server.url, "-q")
    assert result.returncode == 1
    assert "503" in result.stderr and "speech" in result.stderr, result.stderr


def test_transcribe_prints_what_was_said(speech_server: ThreadServer, tmp_path: Path) -> None:
    clip = compose(["Please send the report before Friday."])
    audio = write_media(tmp_path / "speech.wav", clip.audio, "pcm_s16le", video=False)
    result = run("transcribe", str(audio), "--url", speech_server.url, "--language", "en")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("speech.wav:") and "report" in result.stdout.lower(), result.stdout
    srt = run("transcribe", str(audio), "--url", speech_server.url, "--format", "srt", "-q")
    assert srt.returncode == 0 and srt.stdout.startswith("1\n") and " --> " in srt.stdout


def test_api_key_from_the_option_or_the_environment(tmp_path: Path, media) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    srv = ThreadServer(uploads, api_key="cli-key-5678")
    try:
        refused = run("classify", str(media["short"]), "--url", srv.url, "--api-key", "nope")
        assert refused.returncode == 1 and "401" in refused.stderr and "Bearer" in refused.stderr
        ok = run("classify", str(media["short"]), "--url", srv.url, "--json",
                 env={"MOTION_SERVE_API_KEY": "cli-key-5678"})
        assert ok.returncode == 0, ok.stderr
        assert json.loads(ok.stdout)["labels"][0]["label"] == "move_right"
    finally:
        srv.stop()


def test_serve_subcommand_starts_the_service(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "TMP_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "service", "serve"], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz", timeout=60)
    finally:
        proc.terminate()
        # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly.
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
