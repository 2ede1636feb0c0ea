"""Speech and on-screen text: quality and cost (`python -m bench.speech`).

1. Quality through the service: WER, detected language and speech-span overlap on espeak-ng
   sentences (English in six containers, Spanish, German, French).
2. /transcribe's real-time factor against faster-whisper called directly on the same file, same
   model, beam, compute type and threads, in the same script (interleaved rounds): the
   service's overhead.
3. What voice activity saves: a clip with long silences, Whisper on the speech spans (ours)
   against Whisper on the whole audio.
4. OCR milliseconds per keyframe at two frame sizes, with our detector setting and rapidocr's
   default, and the character error rate of each.
5. Memory: the RSS the speech and OCR models add to a fresh process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import jiwer

from bench.common import interleaved_medians, machine_note, table
from bench.e2e import default_model_dir, free_port, start_service, stop_service
from bench.speechgen import RATE, compose, music_like, span_iou, text_shots, wait_aux, write_media

ENGLISH = [
    ("mp4", "aac", ["The quick brown fox jumps over the lazy dog.", "Please send the report before Friday."]),
    ("mkv", "libmp3lame", ["It is raining in the north today.", "The train leaves at seven in the evening."]),
    ("webm", "libopus", ["My sister plays the piano every morning.", "We should paint the kitchen blue."]),
    ("mov", "pcm_s16le", ["Open the window and let the fresh air in.", "The museum closes at five."]),
    ("wav", "pcm_s16le", ["Turn left at the next corner.", "Coffee is ready in the kitchen."]),
    ("mp3", "libmp3lame", ["The children are playing in the garden.", "Call me when you get home."]),
    ("m4a", "aac", ["Our flight was delayed by two hours.", "She bought fresh bread at the market."]),
    ("mp4", "aac", ["Remember to water the plants on Sunday.", "The meeting starts at half past nine."]),
]
OTHER = [
    ("es", ["El tren sale de la estación a las ocho.", "Mi hermana vive en una casa grande."]),
    ("es", ["Buenos días, ¿cómo estás? Hoy hace mucho calor en la ciudad.", "Vamos a comer con mis amigos."]),
    ("de", ["Der Zug fährt um acht Uhr ab.", "Meine Schwester wohnt in einem großen Haus."]),
    ("de", ["Guten Morgen, wie geht es dir heute?", "Wir gehen am Wochenende in den Park."]),
    ("fr", ["Le train part de la gare à huit heures.", "Ma soeur habite dans une grande maison."]),
    ("fr", ["Bonjour, comment allez-vous aujourd'hui?", "Nous allons au cinéma ce soir."]),
]


def normalize(text: str) -> str:
    import re

    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", text.lower())).strip()


def wer(ref: str, hyp: str) -> float:
    return jiwer.wer(normalize(ref), normalize(hyp)) if normalize(hyp) else 1.0


def post(client: httpx.Client, url: str, path: Path, **params: str) -> dict:
    with open(path, "rb") as f:
        r = client.post(url + "/transcribe", params=params, files={"file": (path.name, f)})
    r.raise_for_status()
    return r.json()


def quality(url: str, work: Path) -> str:
    rows = []
    en_wers, other_ok, other_wer_forced = [], [], []
    with httpx.Client(timeout=300) as c:
        for i, (ext, codec, sentences) in enumerate(ENGLISH):
            clip = compose(sentences)
            path = write_media(work / f"en{i}.{ext}", clip.audio, codec, video=ext not in ("wav", "mp3", "m4a"))
            body = post(c, url, path)
            found = [(s["start_s"], s["end_s"]) for s in body["speech"]]
            w = wer(clip.text, body["text"])
            en_wers.append(w)
            rows.append([f"en {ext}/{codec}", "en", body["language"], w, span_iou(found, clip.spans)])
        for i, (lang, sentences) in enumerate(OTHER):
            clip = compose(sentences, voice=lang)
            path = write_media(work / f"{lang}{i}.wav", clip.audio, "pcm_s16le", video=False)
            body = post(c, url, path)
            forced = post(c, url, path, language=lang)
            found = [(s["start_s"], s["end_s"]) for s in body["speech"]]
            other_ok.append(body["language"] == lang)
            other_wer_forced.append(wer(clip.text, forced["text"]))
            rows.append([f"{lang} wav #{i % 2 + 1}", lang, body["language"],
                         wer(clip.text, body["text"]), span_iou(found, clip.spans), other_wer_forced[-1]])
        for r in rows:
            r += [float("nan")] * (6 - len(r))
        tones = post(c, url, write_media(work / "tones.mp4", music_like(8.0), "aac"))
    summary = (f"English: mean WER {statistics.mean(en_wers):.3f}, language right {len(en_wers)}/{len(en_wers)}"
               if all(r[2] == "en" for r in rows[: len(ENGLISH)]) else
               f"English: mean WER {statistics.mean(en_wers):.3f}")
    summary += (f"; es/de/fr: language detected right {sum(other_ok)}/{len(other_ok)}, mean WER with the "
                f"language given {statistics.mean(other_wer_forced):.3f}; 8 s of music: "
                f"{len(tones['segments'])} segments, text {tones['text']!r}")
    return table(["clip", "spoken", "detected", "WER", "span IoU", "WER (language given)"], rows) + "\n\n" + summary


def rtf(url: str, work: Path, repeat: int, beam: int, threads: int) -> str:
    from service._vendor.faster_whisper import WhisperModel
    from service.model_files import prepare_whisper_base

    clip = compose(["The quick brown fox jumps over the lazy dog.", "Please send the report before Friday.",
                    "It is raining in the north today.", "The train leaves at seven in the evening.",
                    "My sister plays the piano every morning.", "We should paint the kitchen blue."],
                   pauses=(0.8, 1.2, 0.8))
    path = write_media(work / "rtf.mp4", clip.audio, "aac")
    seconds = len(clip.audio) / RATE
    model = WhisperModel(str(prepare_whisper_base().path), device="cpu", compute_type="int8", cpu_threads=threads)
    client = httpx.Client(timeout=300)
    texts: dict[str, str] = {}

    def direct() -> None:
        segs, _ = model.transcribe(str(path), beam_size=beam, vad_filter=True, condition_on_previous_text=False,
                                   vad_parameters={"min_silence_duration_ms": 500, "speech_pad_ms": 200,
                                                   "min_speech_duration_ms": 250})
        texts["direct"] = " ".join(s.text.strip() for s in segs)

    def service() -> None:
        texts["service"] = post(client, url, path)["text"]

    med = interleaved_medians([("faster-whisper direct", direct), ("/transcribe (HTTP)", service)], repeat)
    client.close()
    d, s = med["faster-whisper direct"], med["/transcribe (HTTP)"]
    rows = [["faster-whisper direct (decode_audio + VAD + transcribe)", d, d / seconds,
             wer(clip.text, texts["direct"])],
            ["/transcribe over HTTP (upload + probe + decode + VAD + Whisper)", s, s / seconds,
             wer(clip.text, texts["service"])]]
    return (f"{seconds:.1f} s clip (MP4, AAC under H.264), median of {repeat} interleaved rounds, beam {beam}, "
            f"int8, {threads} threads\n\n" + table(["path", "s", "RTF", "WER"], rows)
            + f"\n\nservice / direct = {s / d:.3f} (overhead {100 * (s / d - 1):+.1f}%)")


def vad_savings(work: Path, repeat: int, beam: int, threads: int) -> str:
    from service.speech import SpeechOptions, decode_audio, load_speech_model

    clip = compose(["Good morning, this is the first announcement.", "The second message comes after a long pause.",
                    "And this is the last one, thank you."], pauses=(6.0, 25.0, 25.0, 6.0))
    path = write_media(work / "silences.wav", clip.audio, "pcm_s16le", video=False)
    audio, _ = decode_audio(path, 600)
    sm = load_speech_model("", None, "cpu", "int8", threads, 1)
    out: dict[str, str] = {}

    def ours() -> None:
        r = sm.transcribe(audio, 0.0, SpeechOptions(beam_size=beam))
        out["vad"] = " ".join(t for *_, t in r.segments)

    def whole() -> None:
        segs, _ = sm.model.transcribe(audio, beam_size=beam, vad_filter=False, condition_on_previous_text=False)
        out["whole"] = " ".join(s.text.strip() for s in segs)

    med = interleaved_medians([("VAD", ours), ("whole", whole)], repeat)
    speech_s = sum(b - a for a, b in clip.spans)
    rows = [["VAD, then Whisper on the speech spans (ours)", med["VAD"], wer(clip.text, out["vad"]), out["vad"]],
            ["Whisper on the whole audio", med["whole"], wer(clip.text, out["whole"]), out["whole"]]]
    return (f"{len(audio) / RATE:.1f} s of audio, {speech_s:.1f} s of it speech (3 sentences between 6-25 s "
            f"silences), median of {repeat}\n\n" + table(["path", "s", "WER", "text"], rows)
            + f"\n\nVAD saves {100 * (1 - med['VAD'] / med['whole']):.0f}% of the time")


def ocr_cost(work: Path, repeat: int) -> str:
    from models.frames import probe_video, read_frames
    from service.ocr import OcrModel

    lines = [("Breaking News 2025", 40, 30, 30), ("Goal scored at 87:12", 28, 250, 290), ("LIVE", 22, 560, 20)]
    rows = []
    ours = OcrModel()
    from rapidocr import RapidOCR

    default = OcrModel()
    default.engine = RapidOCR(params={"Global.log_level": "warning"})  # rapidocr's own settings
    for w, h in ((640, 360), (1280, 720)):
        k = w / 640
        path = work / f"ocr{w}.mp4"
        truth = text_shots(path, [[(t, round(s * k), round(x * k), round(y * k)) for t, s, x, y in lines]],
                           width=w, height=h, seconds=0.5)
        info = probe_video(path)
        frame = read_frames(path, info, [2], size=(h, w))[0]
        ref = " ".join(t.text for t in truth[0])
        for name, model in (("ours (shrink only, longest side <= 960)", ours),
                            ("rapidocr default (shorter side >= 736)", default)):
            times = []
            for _ in range(repeat + 1):
                t = time.perf_counter()
                found = model.read(frame)
                times.append(time.perf_counter() - t)
            hyp = " ".join(x.text for x in found)
            cer = min(jiwer.cer(ref, hyp), jiwer.cer(ref, " ".join(sorted(x.text for x in found))))
            rows.append([f"{w}x{h}", name, statistics.median(times[1:]) * 1000, cer])
    return table(["frame", "detector input", "ms per keyframe", "CER"], rows)


_MEMORY = r"""
import json, sys
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"): return int(line.split()[1]) / 1024
out = {}
import numpy as np, av, onnxruntime, service.app  # what the service imports anyway
out["service imported"] = rss()
from service.speech import load_speech_model, SpeechOptions
m = load_speech_model("", None, "cpu", "int8", int(sys.argv[1]), 1)
out["+ speech model loaded"] = rss()
from bench.speechgen import compose
c = compose(["The quick brown fox jumps over the lazy dog.", "Please send the report before Friday."])
m.transcribe(c.audio, 0.0, SpeechOptions())
out["+ one transcription"] = rss()
from service.ocr import OcrModel
o = OcrModel()
out["+ OCR model loaded"] = rss()
o.read(np.full((720, 1280, 3), 60, np.uint8))
out["+ one OCR read (1280x720)"] = rss()
print(json.dumps(out))
"""


def memory(threads: int) -> str:
    res = subprocess.run([sys.executable, "-c", _MEMORY, str(threads)], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    values = json.loads(res.stdout.strip().splitlines()[-1])
    rows, prev = [], None
    for k, v in values.items():
        rows.append([k, v, v - prev if prev is not None else float("nan")])
        prev = v
    return table(["step (fresh process)", "RSS MiB", "added MiB"], rows)


def _in_process_service(work: Path, threads: int, beam: int):
    import threading

    import uvicorn

    from service.app import create_app
    from service.settings import Settings

    port = free_port()
    settings = Settings(model_dir=default_model_dir(), port=port, tmp_dir=work, speech_threads=threads,
                        whisper_beam_size=beam, ocr_enabled=False, transcribe_timeout_s=600)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=30)

    return f"http://127.0.0.1:{port}", stop


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--only", default="quality,rtf,vad,ocr,memory")
    args = ap.parse_args(argv)
    only = set(args.only.split(","))
    print(f"bench.speech, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {machine_note()}\n", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "rtf" in only:
            # In this process (uvicorn in a thread, HTTP over loopback), so that both paths get the
            # same share of a shared machine's CPU (with the service in a second process, at load
            # average 35, the service took 1.59x direct's time).
            url, stop = _in_process_service(work, args.threads, args.beam)
            try:
                wait_aux(url, timeout=300)
                print("## Real-time factor\n\n" + rtf(url, work, args.repeat, args.beam, args.threads) + "\n",
                      flush=True)
            finally:
                stop()
        if "quality" in only:
            port = free_port()
            proc = start_service(default_model_dir(), port, work / "service.log",
                                 {"SPEECH_THREADS": str(args.threads), "WHISPER_BEAM_SIZE": str(args.beam),
                                  "OCR_ENABLED": "false", "TRANSCRIBE_TIMEOUT_S": "600"})
            url = f"http://127.0.0.1:{port}"
            try:
                wait_aux(url, timeout=300)
                print("## Quality (through /transcribe)\n\n" + quality(url, work) + "\n", flush=True)
            finally:
                stop_service(proc)
        if "vad" in only:
            print("## Voice activity\n\n" + vad_savings(work, args.repeat, args.beam, args.threads) + "\n", flush=True)
        if "ocr" in only:
            print("## OCR per keyframe\n\n" + ocr_cost(work, args.repeat) + "\n", flush=True)
        if "memory" in only:
            print("## Memory\n\n" + memory(args.threads) + "\n", flush=True)


if __name__ == "__main__":
    main()
