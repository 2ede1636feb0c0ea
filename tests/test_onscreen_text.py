"""/summarize?text=true: text drawn into real H.264 videos by PIL's TrueType renderer at several
sizes and positions, read back by the real OCR model; character error rate and box placement."""

from __future__ import annotations

from pathlib import Path

import httpx
import jiwer
import pytest
from conftest import ThreadServer, post_video

from bench.speechgen import text_shots, wait_aux
from models.frames import probe_video
from service.ocr import OcrModel, TextBox, merge_repeats
from service.onscreen import keyframe_text, shot_frames

# Three shots (hard cuts between them): big and small lines, top/bottom/centre, a corner tag.
SHOTS = [
    [("Breaking News 2025", 40, 30, 30)],
    [("Goal scored at 87:12", 28, 250, 290), ("LIVE", 22, 560, 20)],
    [("Weather: sunny", 56, 60, 150)],
]
CER_MAX = 0.1


def _area(b: list[int] | tuple[int, ...]) -> int:
    return max(0, b[2] - b[0]) * max(0, b[3] - b[1])


def _covered(found: list[int], drawn: tuple[int, ...]) -> float:
    """Share of the drawn text's ink box inside the found box."""
    inter = (max(found[0], drawn[0]), max(found[1], drawn[1]), min(found[2], drawn[2]), min(found[3], drawn[3]))
    return _area(inter) / max(1, _area(drawn))


@pytest.fixture(scope="module")
def ocr_server(aux_server: ThreadServer) -> ThreadServer:
    body = wait_aux(aux_server.url)
    assert next(a for a in body["auxiliary"] if a["kind"] == "ocr")["ready"], body["auxiliary"]
    return aux_server


@pytest.mark.parametrize("rotation", [0, 90])
def test_keyframe_text(ocr_server: ThreadServer, client: httpx.Client, tmp_path: Path, rotation: int) -> None:
    """Every drawn line is read with CER <= 0.1, its box where it was drawn in the displayed frame
    (also when the coded picture is turned and the container says how to show it)."""
    path = tmp_path / f"text{rotation}.mp4"
    truth = text_shots(path, SHOTS, rotation=rotation)
    r = post_video(client, ocr_server.url + "/summarize", path, text="true")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["video"]["width"], body["video"]["height"]) == (640, 360)
    keys = body["keyframes"]
    assert [k["segment"] for k in keys] == [0, 1, 2]
    for key, drawn in zip(keys, truth):
        found = key["text"]
        assert len(found) == len(drawn), found
        for line in drawn:
            # The detector's box is the ink box plus a margin (its unclip ratio): it must hold
            # the ink and not be much larger than it.
            best = max(found, key=lambda f: _covered(f["box"], line.box))
            assert _covered(best["box"], line.box) >= 0.9, (best, line)
            assert _area(best["box"]) <= 3 * _area(line.box), (best, line)
            assert jiwer.cer(line.text, best["text"]) <= CER_MAX, (best, line)
            assert 0.5 <= best["score"] <= 1.0


def test_no_text_unless_asked(ocr_server: ThreadServer, client: httpx.Client, media: dict[str, Path]) -> None:
    body = post_video(client, ocr_server.url + "/summarize", media["short"]).json()
    assert all("text" not in k for k in body["keyframes"])
    body = post_video(client, ocr_server.url + "/summarize", media["short"], text="true").json()
    assert all(k["text"] == [] for k in body["keyframes"]), body["keyframes"]  # bars and blobs: no text


def test_shot_frames_find_text_missing_from_the_keyframe(tmp_path: Path) -> None:
    """With extra frames of the shot, text that shows only later in the shot is found, and the
    title seen in every frame is reported once."""
    path = tmp_path / "late.mp4"
    text_shots(path, [[("Title Card", 48, 40, 40)], [("Title Card", 48, 40, 40), ("Score 3:1", 36, 300, 250)]],
               seconds=1.0)
    info = probe_video(path)
    ocr = OcrModel()
    # One "shot" over both halves; keyframe in the first half (no score line there).
    plan = [(5, 0, info.frame_count - 1)]
    alone = keyframe_text(ocr, path, info, plan, extra=0, max_side=1280)[0]
    more = keyframe_text(ocr, path, info, plan, extra=2, max_side=1280)[0]
    assert [t["text"] for t in alone] == ["Title Card"]
    assert sorted(t["text"] for t in more) == ["Score 3:1", "Title Card"], more


def test_merge_and_plan() -> None:
    a = TextBox("LIVE", 0.9, (10, 10, 60, 30))
    b = TextBox("live", 0.99, (12, 11, 61, 31))  # the same text a frame later
    c = TextBox("LIVE", 0.95, (400, 10, 450, 30))  # the same word elsewhere on screen
    merged = merge_repeats([[a], [b, c]])
    assert merged == [b, c]
    assert shot_frames(50, 0, 100, 2) == [50, 33, 67]
    assert shot_frames(5, 5, 5, 3) == [5]
