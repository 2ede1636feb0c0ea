"""The API.md contract against a real server: response shapes, errors as problem+json, limits."""

from __future__ import annotations

import itertools
import math
import socket
import time
from pathlib import Path

import httpx
import pytest
from conftest import MAX_UPLOAD_BYTES, ThreadServer, post_video

LABELS = 10


def assert_problem(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and body["title"] and body["type"]
    assert isinstance(body["detail"], str) and len(body["detail"]) > 10
    return body


def assert_finite(obj: object) -> None:
    if isinstance(obj, float):
        assert math.isfinite(obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            assert_finite(v)
    elif isinstance(obj, list):
        for v in obj:
            assert_finite(v)


def check_classify(body: dict, top_k: int) -> None:
    assert set(body) >= {"model", "video", "labels", "frames", "keyframes", "timings_ms"}
    assert set(body["model"]) == {"name", "version"}
    video = body["video"]
    assert set(video) == {"duration_s", "fps", "width", "height", "frame_count", "codec"}
    assert video["duration_s"] > 0 and video["fps"] > 0 and video["frame_count"] > 0
    labels = body["labels"]
    assert len(labels) == top_k
    scores = [x["score"] for x in labels]
    assert scores == sorted(scores, reverse=True)
    assert all(0 <= s <= 1 for s in scores)
    assert len({x["label"] for x in labels}) == top_k
    frames = body["frames"]
    indices = [f["index"] for f in frames]
    assert indices == sorted(indices) and len(set(indices)) == len(indices)
    assert all(0 <= i < video["frame_count"] for i in indices)
    assert all(f["attention"] >= 0 for f in frames)
    assert abs(sum(f["attention"] for f in frames) - 1) < 0.01
    stamps = [f["timestamp_s"] for f in frames]
    assert stamps == sorted(stamps) and stamps[-1] <= video["duration_s"]
    keys = body["keyframes"]
    assert keys and keys == sorted(set(keys)) and set(keys) <= set(indices)
    # Keyframes are the most attended frames.
    attention = {f["index"]: f["attention"] for f in frames}
    assert min(attention[k] for k in keys) >= max(v for i, v in attention.items() if i not in keys) - 1e-12 \
        if len(keys) < len(frames) else True
    timings = body["timings_ms"]
    assert set(timings) == {"decode", "queue", "inference", "total"}
    assert all(v >= 0 for v in timings.values())
    assert timings["total"] >= timings["decode"]
    assert_finite(body)


def test_classify_schema(
    server: ThreadServer, client: httpx.Client, media: dict[str, Path]
) -> None:
    r = post_video(client, server.url + "/classify", media["short"])
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    check_classify(body, top_k=5)
    assert "segments" not in body
    assert body["video"]["codec"] == "h264"
    assert len(body["frames"]) <= 16  # one clip for a short video


def test_classify_top_k_and_timeline(
    server: ThreadServer, client: httpx.Client, media: dict[str, Path]
) -> None:
    r = post_video(client, server.url + "/classify", media["webm"], top_k=LABELS, segments="true")
    assert r.status_code == 200, r.text
    body = r.json()
    check_classify(body, top_k=LABELS)
    assert abs(sum(x["score"] for x in body["labels"]) - 1) < 1e-3  # all labels: a softmax
    assert body["video"]["codec"] == "vp9"
    segments = body["segments"]
    assert segments and segments[0]["start_s"] == 0
    assert segments[-1]["end_s"] == pytest.approx(body["video"]["duration_s"])
    for a, b in itertools.pairwise(segments):
        assert a["end_s"] == pytest.approx(b["start_s"])
        assert a["labels"][0]["label"] != b["labels"][0]["label"]  # neighbours with one label merge
    for s in segments:
        assert s["end_s"] > s["start_s"] and s["labels"]


def test_long_video_is_several_clips(
    server: ThreadServer, client: httpx.Client, media: dict[str, Path]
) -> None:
    r = post_video(client, server.url + "/classify", media["long"], top_k=3, segments="true")
    assert r.status_code == 200, r.text
    body = r.json()
    check_classify(body, top_k=3)
    frames = body["frames"]
    # 25 s over 10 s windows: 3 clips of 16 frames, spread over the whole video.
    assert len(frames) > 16
    assert frames[0]["timestamp_s"] < 2 and frames[-1]["timestamp_s"] > 23
    assert len(body["segments"]) >= 1
    assert body["segments"][-1]["end_s"] == pytest.approx(25.0, abs=0.2)


def test_summarize_schema(
    server: ThreadServer, client: httpx.Client, media: dict[str, Path]
) -> None:
    r = post_video(client, server.url + "/summarize", media["long"], max_keyframes=4)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"model", "video", "segments", "keyframes", "timings_ms"}
    segments = body["segments"]
    assert segments[0]["start_s"] == 0 and segments[0]["start_index"] == 0
    assert segments[-1]["end_index"] == body["video"]["frame_count"] - 1
    assert segments[-1]["end_s"] == pytest.approx(body["video"]["duration_s"], abs=0.2)
    for a, b in itertools.pairwise(segments):
        assert b["start_index"] == a["end_index"] + 1
    keys = body["keyframes"]
    assert 1 <= len(keys) <= 4
    assert [k["index"] for k in keys] == sorted({k["index"] for k in keys})
    for k in keys:
        assert "thumbnail" not in k
        seg = segments[k["segment"]]
        assert seg["start_index"] <= k["index"] <= seg["end_index"]
    assert_finite(body)

    r = post_video(client, server.url + "/summarize", media["short"], max_keyframes=2, thumbnails="true")
    assert r.status_code == 200, r.text
    keys = r.json()["keyframes"]
    assert 1 <= len(keys) <= 2
    assert all(k["thumbnail"].startswith("data:image/jpeg;base64,") for k in keys)


@pytest.mark.parametrize("name", ["garbage", "png", "jpeg", "audio", "truncated"])
def test_not_a_video_is_400(
    server: ThreadServer, client: httpx.Client, media: dict[str, Path], name: str
) -> None:
    for endpoint in ("/classify", "/summarize"):
        body = assert_problem(post_video(client, server.url + endpoint, media[name]), 400)
        assert "video" in body["detail"]


def test_empty_file_is_400(server: ThreadServer, client: httpx.Client) -> None:
    r = client.post(server.url + "/classify", files={"file": ("x.mp4", b"", "video/mp4")})
    assert_problem(r, 400)


def test_pixel_and_duration_limits_are_413(
    server: ThreadServer, client: httpx.Client, media: dict[str, Path]
) -> None:
    body = assert_problem(post_video(client, server.url + "/classify", media["too_wide"]), 413)
    assert "pixels" in body["detail"]
    body = assert_problem(post_video(client, server.url + "/summarize", media["too_long"]), 413)
    assert "70.0 s" in body["detail"]


@pytest.mark.parametrize(
    ("endpoint", "params"),
    [
        ("/classify", {"top_k": 0}),
        ("/classify", {"top_k": LABELS + 1}),
        ("/classify", {"top_k": "many"}),
        ("/classify", {"segments": "perhaps"}),
        ("/summarize", {"max_keyframes": 0}),
        ("/summarize", {"max_keyframes": 65}),
        ("/summarize", {"thumbnails": "perhaps"}),
    ],
)
def test_bad_parameters_are_422(
    server: ThreadServer, client: httpx.Client, media: dict[str, Path], endpoint: str, params: dict
) -> None:
    assert_problem(post_video(client, server.url + endpoint, media["short"], **params), 422)


def test_missing_file_field_is_422(server: ThreadServer, client: httpx.Client) -> None:
    r = client.post(server.url + "/classify", files={"video": ("a.mp4", b"abc", "video/mp4")})
    body = assert_problem(r, 422)
    assert "'file'" in body["detail"]
    r = client.post(server.url + "/summarize", data={"x": "1"}, files={"other": ("a", b"1")})
    assert_problem(r, 422)


def test_not_multipart_is_415(
    server: ThreadServer, client: httpx.Client, media: dict[str, Path]
) -> None:
    r = client.post(server.url + "/classify", content=media["short"].read_bytes(),
                    headers={"content-type": "video/mp4"})
    assert_problem(r, 415)
    assert_problem(client.post(server.url + "/summarize", json={"file": "x"}), 415)


def test_unknown_route_and_method(server: ThreadServer, client: httpx.Client) -> None:
    assert_problem(client.get(server.url + "/nope"), 404)
    assert_problem(client.get(server.url + "/classify"), 405)
    assert_problem(client.get(server.url + "/v2/models/nope"), 404)


def _raw_request(port: int, head: str, body_parts: list[bytes]) -> bytes:
    """Send a request by hand (so the client controls how much body it sends) and read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode())
        try:
            for part in body_parts:
                sock.sendall(part)
                time.sleep(0.002)
        except OSError:
            pass  # the server answered and closed while the body was still coming: fine
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def test_oversize_upload_413_before_the_body_is_read(server: ThreadServer) -> None:
    # Declared too large: refused from the headers alone, while the client has sent almost nothing.
    head = (
        "POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=B\r\n"
        f"Content-Length: {50 * MAX_UPLOAD_BYTES}\r\n\r\n"
    )
    answer = _raw_request(server.port, head, [b"--B\r\n"])
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"application/problem+json" in answer


def test_oversize_chunked_upload_413_while_streaming(server: ThreadServer, upload_dir: Path) -> None:
    # No length declared: the limit is enforced while streaming; the client never sends the end.
    head = (
        "POST /summarize HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=B\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    preamble = b'--B\r\nContent-Disposition: form-data; name="file"; filename="../../etc/passwd"\r\n\r\n'
    block = b"\0" * 65536

    def chunk(data: bytes) -> bytes:
        return b"%x\r\n" % len(data) + data + b"\r\n"

    # Up to 3x the limit, and no terminating chunk: the answer must come before the body ends.
    parts = [chunk(preamble)] + [chunk(block)] * (3 * MAX_UPLOAD_BYTES // len(block))
    answer = _raw_request(server.port, head, parts)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert list(upload_dir.iterdir()) == []
