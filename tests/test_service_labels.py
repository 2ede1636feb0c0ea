"""The shipped model through the whole service: generated clips get their class."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from conftest import REAL_MODEL, ThreadServer, post_video, write_clip

CLASSES = ["move_left", "move_right", "move_up", "move_down", "grow", "shrink", "fade_in", "static"]


@pytest.fixture(scope="module")
def real_server(server: ThreadServer) -> ThreadServer:
    assert server.settings.model_dir == REAL_MODEL
    return server


@pytest.mark.parametrize("label", CLASSES)
def test_generated_clip_gets_its_label(
    real_server: ThreadServer, client: httpx.Client, tmp_path: Path, label: str
) -> None:
    clip = write_clip(tmp_path / f"{label}.mp4", label, seed=1000 + CLASSES.index(label), duration_s=4.0,
                      fps=20.0, max_side=192)
    r = post_video(client, real_server.url + "/classify", clip, top_k=3)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["labels"][0]["label"] == label, body["labels"]
