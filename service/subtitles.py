"""Transcript segments as WebVTT or SubRip subtitles."""

from __future__ import annotations

from collections.abc import Sequence

VTT_MEDIA_TYPE = "text/vtt"
SRT_MEDIA_TYPE = "application/x-subrip"


def _clock(seconds: float, sep: str) -> str:
    ms = max(0, round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _cue_text(text: str) -> str:
    # A blank line ends a cue in both formats, and "-->" inside a cue confuses VTT parsers.
    lines = [ln.strip() for ln in text.replace("-->", "->").splitlines() if ln.strip()]
    return "\n".join(lines) or "..."


def _cues(segments: Sequence[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    out = []
    for start, end, text in segments:
        end = max(end, start + 0.001)  # a cue must not end before it starts
        out.append((start, end, text))
    return out


def to_vtt(segments: Sequence[tuple[float, float, str]]) -> str:
    body = ["WEBVTT", ""]
    for start, end, text in _cues(segments):
        vtt_text = _cue_text(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        body += [f"{_clock(start, '.')} --> {_clock(end, '.')}", vtt_text, ""]
    return "\n".join(body)


def to_srt(segments: Sequence[tuple[float, float, str]]) -> str:
    body = []
    for i, (start, end, text) in enumerate(_cues(segments), 1):
        body += [str(i), f"{_clock(start, ',')} --> {_clock(end, ',')}", _cue_text(text), ""]
    return "\n".join(body)
