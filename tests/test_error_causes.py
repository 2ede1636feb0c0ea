"""Errors map to their cause: only the upload's probe or decode failing is a 400; a bug of ours
(postprocess, summary) is a 500 with its traceback in the log. And the service imports no torch."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REAL_MODEL, ThreadServer, post_video


def _model_dir(root: Path, name: str, **changes: object) -> Path:
    d = root / name
    # The whole directory: model.json may name more files (e.g. domain statistics).
    shutil.copytree(REAL_MODEL, d, ignore=shutil.ignore_patterns("__*", "*.py"))
    manifest = json.loads((REAL_MODEL / "model.json").read_text())
    manifest.update(name=name, **changes)
    (d / "model.json").write_text(json.dumps(manifest))
    return d


@pytest.fixture(scope="module")
def miswired(tmp_path_factory: pytest.TempPathFactory, upload_dir: Path) -> Iterator[ThreadServer]:
    """A real model whose model.json names the logits as its attention: postprocess gets a tensor of the wrong
    shapes, as it would after a bad conversion. The service still loads it (both names exist)."""
    d = _model_dir(tmp_path_factory.mktemp("miswired"), "miswired",
                   outputs={"logits": "logits", "attention": "logits", "embeddings": "embeddings"})
    srv = ThreadServer(upload_dir, model_dir=d)
    yield srv
    srv.stop()


def _logged_traceback(caplog: pytest.LogCaptureFixture) -> str:
    logged = [rec for rec in caplog.records if rec.exc_info is not None]
    assert logged, "the 500 left no traceback in the log"
    return "".join(logging.Formatter().formatException(logged[-1].exc_info))


def test_a_bug_in_postprocess_is_a_500_with_its_traceback_logged(
    miswired: ThreadServer, client: httpx.Client, media: dict[str, Path], caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="service"):
        r = post_video(client, miswired.url + "/classify", media["short"])
    assert r.status_code == 500, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert "internal error" in r.json()["detail"]
    trace = _logged_traceback(caplog)
    assert "frame_attention" in trace and "ValueError" in trace


def test_a_bug_in_the_summary_is_a_500_not_a_400(
    server: ThreadServer, client: httpx.Client, media: dict[str, Path], caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The detection itself guards every model output it reads, so no real input makes it fail:
    a fault is injected there (a ValueError, which the old handler turned into a 400)."""
    from service import summarize

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("a bug in the summary")

    monkeypatch.setattr(summarize, "summarize", broken)
    with caplog.at_level(logging.ERROR, logger="service"):
        r = post_video(client, server.url + "/summarize", media["short"])
    assert r.status_code == 500, r.text
    assert "a bug in the summary" in _logged_traceback(caplog)
    monkeypatch.undo()
    # A new connection: uvicorn closes the one a 500 went out on (Starlette re-raises the error).
    with httpx.Client(timeout=120) as fresh:
        assert post_video(fresh, server.url + "/summarize", media["short"]).status_code == 200


@pytest.mark.parametrize("name", ["garbage", "truncated", "png"])
def test_an_upload_that_does_not_probe_or_decode_is_a_400(
    miswired: ThreadServer, client: httpx.Client, media: dict[str, Path], name: str,
) -> None:
    r = post_video(client, miswired.url + "/summarize", media[name])
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"


def test_a_graph_that_disagrees_with_its_manifest_does_not_load(tmp_path: Path) -> None:
    from service.repository import ModelLoadError, load_runtime
    from service.settings import Settings

    three = _model_dir(tmp_path, "three", labels=["a", "b", "c"])
    with pytest.raises(ModelLoadError, match=r"returns 10 class scores but model\.json lists 3 labels"):
        load_runtime(three, Settings())
    renamed = _model_dir(tmp_path, "renamed", outputs={"logits": "scores"})
    with pytest.raises(ModelLoadError, match=r"renamed .*no output scores"):
        load_runtime(renamed, Settings())


def test_importing_and_starting_the_service_loads_no_torch(tmp_path: Path) -> None:
    """A fresh interpreter: import service.app, start the app (load, warm up), answer /classify."""
    code = textwrap.dedent(f"""
        import asyncio, sys
        import av, httpx, numpy as np
        from service.app import create_app
        from service.settings import Settings

        path = {str(tmp_path / "v.mp4")!r}
        with av.open(path, "w") as out:
            s = out.add_stream("libx264", rate=10)
            s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
            for i in range(20):
                img = np.full((64, 64, 3), i * 10, np.uint8)
                for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    out.mux(p)
            for p in s.encode(None):
                out.mux(p)

        app = create_app(Settings())
        async def main():
            async with app.router.lifespan_context(app):
                while not app.state.service.ready:
                    await asyncio.sleep(0.05)
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                    for endpoint in ("/classify", "/summarize"):
                        with open(path, "rb") as f:
                            r = await c.post(endpoint, files={{"file": ("v.mp4", f)}})
                        assert r.status_code == 200, r.text
        asyncio.run(main())
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in {{"torch", "onnx", "transformers"}})
        print("HEAVY", heavy)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180,
                          cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "HEAVY []" in proc.stdout, proc.stdout
