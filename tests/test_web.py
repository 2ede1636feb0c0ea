"""The web page at / and Swagger UI at /docs in a real browser.

Playwright drives Debian's chromium (`apt-get install -y chromium`; `make test` installs it
when it is missing): a real upload of a real encoded clip, the labels, the attention plot
with the frames under it, the timeline, the summary; no request may leave the server's
origin and the console must stay free of errors. The screenshot goes to runs/web/.
"""

from __future__ import annotations

import base64
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from bench.speechgen import compose, write_media
from models import synthetic
from tests.conftest import REPO, ThreadServer, write_clip

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("no chromium browser: apt-get install -y chromium (make test does)", allow_module_level=True)

# Flags of a quiet headless chromium: no sandbox (root in CI), and none of its background
# connections to Google's hosts, which this machine's closed network refuses.
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
        "--disable-default-apps", "--disable-extensions", "--mute-audio"]
SHOTS = REPO / "runs" / "web"


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


class Watch:
    """Every request the page makes and every console error it logs."""

    def __init__(self, page: sync_api.Page, origin: str) -> None:
        self.origin = origin
        self.requests: list[str] = []
        self.console_errors: list[str] = []
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.console_errors.append(f"uncaught: {e}"))

    def foreign(self) -> list[str]:
        def same(url: str) -> bool:
            parts = urlsplit(url)
            return parts.scheme in ("data", "blob") or f"{parts.scheme}://{parts.netloc}" == self.origin

        return [u for u in self.requests if not same(u)]


def open_page(browser: sync_api.Browser, url: str, path: str = "/") -> tuple[sync_api.Page, Watch]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    watch = Watch(page, url)
    page.goto(url + path)
    return page, watch


def drop_file(page: sync_api.Page, path: Path, mime: str) -> None:
    """A real drop event carrying the file, as a person dragging it onto the page makes."""
    page.evaluate(
        """([b64, name, mime]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const data = new DataTransfer();
            data.items.add(new File([bytes], name, {type: mime}));
            document.getElementById("drop").dispatchEvent(
                new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true}));
        }""",
        [base64.b64encode(path.read_bytes()).decode(), path.name, mime],
    )


@pytest.fixture(scope="module")
def ten_second_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("web")
    return write_clip(d / "move_right_10s.mp4", "move_right", seed=1501, duration_s=10.0, fps=15.0, max_side=320)


def test_page_classifies_a_dropped_video_and_draws_attention_with_frames(
    browser, server: ThreadServer, ten_second_clip: Path
) -> None:
    page, watch = open_page(browser, server.url)
    page.wait_for_selector("body[data-ready='1']")
    assert page.locator("#model option").count() >= 1
    assert page.locator("#auth").is_hidden(), "no API key is configured: the page must not ask for one"

    start = time.perf_counter()
    drop_file(page, ten_second_clip, "video/mp4")
    with page.expect_response(lambda r: "/classify" in r.url, timeout=60_000) as classified:
        page.click("#run")
    page.wait_for_selector("#labels li", timeout=60_000)
    drop_to_labels = time.perf_counter() - start
    page.wait_for_selector("body[data-state='done'], body[data-state='error']", timeout=120_000)
    drop_to_all = time.perf_counter() - start

    assert page.locator("#error").is_hidden(), page.locator("#error").inner_text()
    assert page.locator("#labels li .label-name").first.inner_text() == "move_right"
    scores = [float(s) for s in page.locator("#labels li .score").all_inner_texts()]
    assert scores == sorted(scores, reverse=True) and 0.5 < scores[0] <= 1.0

    # The plot: one bar per frame the model saw, the keyframes marked, a drawn thumbnail under each.
    answer = classified.value.json()  # the very answer the page drew
    bars = page.locator("#attention-plot g.bar")
    assert bars.count() == len(answer["frames"]) == 16
    marked = [int(i) for i in page.locator("#attention-plot g.bar.keyframe").evaluate_all(
        "gs => gs.map(g => g.dataset.index)")]
    assert marked == answer["keyframes"]
    thumbs = page.locator("#frames canvas")
    assert thumbs.count() == 16
    assert page.locator("#frames canvas[data-drawn='1']").count() == 16, "thumbnails were not drawn from the video"
    assert page.locator("#frames canvas.keyframe").count() == len(answer["keyframes"])
    # A drawn thumbnail holds a picture, not a flat fill.
    spread = page.evaluate("""() => {
        const c = document.querySelector('#frames canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let lo = 255, hi = 0;
        for (let i = 0; i < d.length; i += 4) { lo = Math.min(lo, d[i + 1]); hi = Math.max(hi, d[i + 1]); }
        return hi - lo;
    }""")
    assert spread > 20

    assert page.locator("#timeline g.span").count() >= 1
    assert page.locator("#shots g.span").count() >= 1
    assert page.locator("#keyframes figure img").count() >= 1
    # This server runs without a speech model: the page says so and never asks /transcribe.
    transcript = page.locator("#transcript-section")
    assert transcript.is_visible()
    speech = [a for a in httpx.get(server.url + "/v1/models").json().get("auxiliary", []) if a["kind"] == "speech"]
    if not speech or not speech[0]["ready"]:
        assert "not available" in transcript.inner_text() or "no /transcribe endpoint" in transcript.inner_text()
        assert not any("/transcribe" in u for u in watch.requests)

    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "page.png"), full_page=True)
    (SHOTS / "timing.txt").write_text(
        f"{answer['video']['duration_s']:.0f} s {answer['video']['width']}x{answer['video']['height']} "
        f"{answer['video']['codec']} clip ({ten_second_clip.stat().st_size / 1e6:.2f} MB), "
        f"drop to labels: {drop_to_labels:.2f} s; "
        f"drop to every section drawn: {drop_to_all:.2f} s\n"
    )
    assert watch.foreign() == [], f"requests left the origin: {watch.foreign()}"
    assert watch.console_errors == []
    page.close()


def test_page_shows_the_problem_detail_of_a_refused_upload(browser, server: ThreadServer, media) -> None:
    page, watch = open_page(browser, server.url)
    page.wait_for_selector("body[data-ready='1']")
    page.set_input_files("#file", str(media["png"]))
    page.click("#run")
    page.wait_for_selector("body[data-state='error']", timeout=30_000)
    text = page.locator("#error").inner_text()
    assert "(400)" in text and "upload a video file" in text, text
    assert page.locator("#labels-section").is_hidden()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "error.png"))
    # The browser logs the 400 itself; nothing else may be logged.
    assert [e for e in watch.console_errors if "status of 400" not in e] == []
    assert watch.foreign() == []
    page.close()


def test_page_asks_for_the_api_key_and_sends_it(browser, tmp_path: Path, media) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    srv = ThreadServer(uploads, api_key="page-key-1234")
    try:
        # The page and its assets are public; the API behind them is not.
        assert httpx.get(srv.url + "/").status_code == 200
        assert "script-src 'self'" in httpx.get(srv.url + "/").headers["content-security-policy"]
        assert httpx.get(srv.url + "/static/app.js").status_code == 200
        assert httpx.get(srv.url + "/v1/models").status_code == 401

        page, watch = open_page(browser, srv.url)
        page.wait_for_selector("#auth:not([hidden])")
        assert page.locator("#input").is_hidden()
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "api-key.png"))
        page.fill("#api-key", "wrong-key")
        page.click("#auth-submit")
        page.wait_for_selector("#error:not([hidden])")
        assert "(401)" in page.locator("#error").inner_text()
        page.fill("#api-key", "page-key-1234")
        page.click("#auth-submit")
        page.wait_for_selector("#input:not([hidden])")
        assert page.locator("#model option").count() >= 1
        page.set_input_files("#file", str(media["short"]))
        page.click("#run")
        page.wait_for_selector("body[data-state='done'], body[data-state='error']", timeout=60_000)
        assert page.locator("#labels li .label-name").first.inner_text() == "move_right"
        assert [e for e in watch.console_errors if "status of 401" not in e] == []
        assert watch.foreign() == []
        page.close()
    finally:
        srv.stop()
    assert list(uploads.iterdir()) == []


def test_docs_render_offline_from_packaged_assets(browser, server: ThreadServer) -> None:
    page, watch = open_page(browser, server.url, "/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
    assert "motion-serve" in page.locator(".swagger-ui .info .title").inner_text()
    page.wait_for_selector(".opblock-summary-path[data-path='/classify']")
    assert watch.foreign() == [], f"/docs fetched from other sites: {watch.foreign()}"
    assert watch.console_errors == []
    assert any("/static/swagger-ui/swagger-ui-bundle.js" in u for u in watch.requests)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "docs.png"))
    page.close()


def test_a_format_the_browser_cannot_play_still_gets_its_answer(browser, server: ThreadServer, tmp_path: Path) -> None:
    """MJPEG in AVI: the service reads it, chromium cannot; the plot stands, frames say so."""
    spec = synthetic.draw_spec(1502, "grow")
    clip = tmp_path / "grow.avi"
    synthetic.write_video(str(clip), spec, codec="mjpeg", container="avi", pix_fmt="yuvj420p", max_side=160)
    page, watch = open_page(browser, server.url)
    page.wait_for_selector("body[data-ready='1']")
    page.set_input_files("#file", str(clip))
    page.click("#run")
    page.wait_for_selector("body[data-state='done'], body[data-state='error']", timeout=60_000)
    assert page.locator("#labels li .label-name").first.inner_text() == "grow"
    assert page.locator("#attention-plot g.bar").count() == 16
    assert page.locator("#frames canvas").count() == 16
    assert page.locator("#frames canvas[data-drawn='1']").count() == 0
    assert watch.console_errors == [] and watch.foreign() == []
    page.close()


def test_page_shows_the_transcript_of_real_speech(browser, speech_server: ThreadServer, tmp_path: Path) -> None:
    """With the speech model loaded: a video whose sound track is espeak-ng speaking."""
    clip = compose(["The quick brown fox jumps over the lazy dog."])
    video = write_media(tmp_path / "speech.mp4", clip.audio, "aac", video=True)
    page, watch = open_page(browser, speech_server.url)
    page.wait_for_selector("body[data-ready='1']")
    page.set_input_files("#file", str(video))
    page.click("#run")
    page.wait_for_selector("body[data-state='done'], body[data-state='error']", timeout=120_000)
    assert page.locator("#error").is_hidden(), page.locator("#error").inner_text()
    text = page.locator("#transcript dd").all_inner_texts()
    assert text and "fox" in " ".join(text).lower(), text
    assert watch.console_errors == [] and watch.foreign() == []
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "transcript.png"), full_page=True)
    page.close()
