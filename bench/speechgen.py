"""Real speech and real on-screen text for the speech and OCR tests and bench.speech.

Speech is spoken by espeak-ng (an independent formant synthesizer, nothing like the voices
Whisper was trained on), laid out with known pauses, and muxed under a video by PyAV in
several containers and codecs. Text is drawn into video frames with PIL's TrueType renderer.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import wave
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import httpx
import numpy as np

RATE = 16000


def have_espeak() -> bool:
    return shutil.which("espeak-ng") is not None


def speak(text: str, voice: str = "en", speed: int = 150) -> np.ndarray:
    """espeak-ng's rendering of `text` as float32 mono at 16 kHz, its own silences trimmed."""
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "s.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(out), text], check=True,
                       capture_output=True)
        with wave.open(str(out)) as w:
            rate = w.getframerate()
            pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768.0
    # Resample to 16 kHz by linear interpolation (good enough for speech; the service resamples
    # with FFmpeg on its side anyway).
    n = round(len(pcm) * RATE / rate)
    pcm = np.interp(np.arange(n) * rate / RATE, np.arange(len(pcm)), pcm).astype(np.float32)
    loud = np.nonzero(np.abs(pcm) > 0.01)[0]
    return pcm[loud[0] : loud[-1] + 1] if len(loud) else pcm


@dataclass
class SpokenClip:
    audio: np.ndarray  # float32 mono 16 kHz
    spans: list[tuple[float, float]]  # where each sentence is, seconds
    text: str


def compose(sentences: list[str], voice: str = "en", pauses: tuple[float, ...] = (1.0, 1.5, 1.0)) -> SpokenClip:
    """silence, sentence, silence, sentence, ..., silence: pauses[i] before sentence i, last after."""
    parts: list[np.ndarray] = []
    spans = []
    t = 0
    for i, sentence in enumerate(sentences):
        gap = np.zeros(round(pauses[min(i, len(pauses) - 1)] * RATE), np.float32)
        voice_pcm = speak(sentence, voice)
        parts += [gap, voice_pcm]
        t += len(gap)
        spans.append((t / RATE, (t + len(voice_pcm)) / RATE))
        t += len(voice_pcm)
    parts.append(np.zeros(round(pauses[-1] * RATE), np.float32))
    return SpokenClip(np.concatenate(parts) * 0.8, spans, " ".join(sentences))


def music_like(seconds: float = 6.0, seed: int = 0) -> np.ndarray:
    """Chords of harmonic tones, a new chord every 0.5 s with attack/decay: music, no voice."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * RATE)) / RATE
    out = np.zeros_like(t)
    note = 0.5
    for k in range(int(seconds / note)):
        sl = slice(int(k * note * RATE), int((k + 1) * note * RATE))
        tt = t[sl] - k * note
        env = np.minimum(1.0, tt / 0.02) * np.exp(-3.0 * tt)
        for semis in rng.choice([0, 3, 4, 7, 10, 12], 3, replace=False):
            f = 220.0 * 2 ** ((rng.integers(0, 12) + semis) / 12)
            out[sl] += env * sum(np.sin(2 * np.pi * f * h * tt) / h for h in (1, 2, 3))
    return (0.2 * out / max(1e-6, np.abs(out).max())).astype(np.float32)


def _frames(seconds: float, fps: int, width: int, height: int):
    for i in range(max(1, round(seconds * fps))):
        img = np.zeros((height, width, 3), np.uint8)
        img[..., 0] = (i * 5) % 255
        img[:, : (i * 3) % width, 1] = 180
        yield av.VideoFrame.from_ndarray(img, format="rgb24")


_VIDEO = {"mp4": ("libx264", "yuv420p"), "mkv": ("libx264", "yuv420p"), "webm": ("libvpx-vp9", "yuv420p"),
          "mov": ("mpeg4", "yuv420p")}


def write_media(path: Path, audio: np.ndarray | None, audio_codec: str | None = None, video: bool = True,
                fps: int = 10, width: int = 160, height: int = 96) -> Path:
    """`audio` (16 kHz mono float32) encoded with `audio_codec` (its own rate: 48 kHz for Opus,
    44.1 kHz for AAC/MP3, 22.05 kHz PCM), under a small moving video when `video`."""
    fmt = {"mkv": "matroska", "m4a": "mp4"}.get(path.suffix[1:], path.suffix[1:])
    seconds = len(audio) / RATE if audio is not None else 3.0
    with av.open(str(path), "w", format=fmt) as out:
        vs = None
        if video:
            codec, pix = _VIDEO[path.suffix[1:]]
            vs = out.add_stream(codec, rate=fps)
            vs.width, vs.height, vs.pix_fmt = width, height, pix
            if codec == "libx264":
                vs.options = {"preset": "ultrafast"}
        a_stream = None
        if audio is not None:
            rate = {"libopus": 48000, "pcm_s16le": 22050}.get(audio_codec or "", 44100)
            a_stream = out.add_stream(audio_codec, rate=rate)
            a_stream.layout = "mono"
            n = round(len(audio) * rate / RATE)
            pcm = np.interp(np.arange(n) * RATE / rate, np.arange(len(audio)), audio).astype(np.float32)
        if vs is not None:
            for frame in _frames(seconds, fps, width, height):
                for p in vs.encode(frame.reformat(format=vs.pix_fmt)):
                    out.mux(p)
            for p in vs.encode(None):
                out.mux(p)
        if a_stream is not None:
            # PyAV's encoder converts float planar to the codec's own sample format and frame size.
            for i in range(0, len(pcm), 1024):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[None, i : i + 1024]), format="fltp",
                                                   layout="mono")
                frame.sample_rate = rate
                frame.pts = i
                frame.time_base = Fraction(1, rate)
                for p in a_stream.encode(frame):
                    out.mux(p)
            for p in a_stream.encode(None):
                out.mux(p)
    return path


def span_iou(found: list[tuple[float, float]], true: list[tuple[float, float]], step: float = 0.01) -> float:
    """Intersection over union of two sets of time spans, on a 10 ms grid."""
    end = max([b for _, b in found + true] + [0.0])
    grid = np.arange(0, end + step, step)

    def mask(spans: list[tuple[float, float]]) -> np.ndarray:
        m = np.zeros(len(grid), bool)
        for a, b in spans:
            m |= (grid >= a) & (grid < b)
        return m

    f, t = mask(found), mask(true)
    return float((f & t).sum() / max(1, (f | t).sum()))


def wait_aux(url: str, timeout: float = 120, headers: dict | None = None) -> dict:
    """Until the speech and OCR models have finished loading (or failed to)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            r = httpx.get(url + "/v1/models", headers=headers, timeout=5)
        except httpx.TransportError:  # not listening yet
            r = None
        if r is not None and r.status_code == 200:
            body = r.json()
            if not any("still loading" in (a.get("error") or "") for a in body["auxiliary"]):
                return body
        time.sleep(0.2)
    raise TimeoutError("speech/OCR models did not load")


# ----------------------------------------------------------------------------------------- text


def font(size: int):
    from PIL import ImageFont

    for path in ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
                 "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                 "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf"):
        if Path(path).is_file():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


@dataclass
class DrawnText:
    text: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the displayed frame


def text_shots(path: Path, shots: list[list[tuple[str, int, int, int]]], width: int = 640, height: int = 360,
               seconds: float = 2.0, fps: int = 10, rotation: int = 0) -> list[list[DrawnText]]:
    """One shot per entry (a hard cut between them, each with its own background colour), each
    with lines (text, size px, x, y) drawn by PIL on the displayed picture. With `rotation`
    the coded picture is turned so that a player that honours the metadata shows it upright."""
    from PIL import Image, ImageDraw

    truth: list[list[DrawnText]] = []
    colours = [(20, 40, 90), (90, 30, 30), (30, 80, 40), (70, 70, 20)]
    with av.open(str(path), "w", format="mp4") as out:
        turned = rotation in (90, 270)
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height = (height, width) if turned else (width, height)
        vs.pix_fmt = "yuv420p"
        vs.options = {"preset": "ultrafast", "crf": "18"}
        if rotation:
            vs.set_display_rotation(rotation)
        for si, lines in enumerate(shots):
            img = Image.new("RGB", (width, height), colours[si % len(colours)])
            draw = ImageDraw.Draw(img)
            drawn = []
            for text, size, x, y in lines:
                f = font(size)
                draw.text((x, y), text, fill=(255, 255, 240), font=f)
                x0, y0, x1, y1 = draw.textbbox((x, y), text, font=f)
                drawn.append(DrawnText(text, (x0, y0, x1, y1)))
            truth.append(drawn)
            base = np.asarray(img)
            # Display rotation r (counter-clockwise) turns the coded picture for display, so
            # the coded picture is the displayed one turned the other way.
            coded = np.rot90(base, k=-rotation // 90) if rotation else base
            for i in range(round(seconds * fps)):
                frame = np.ascontiguousarray(coded).copy()
                frame[-4:, : (i * 7) % frame.shape[1]] = 255  # a little motion at the edge
                for p in vs.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
    return truth
