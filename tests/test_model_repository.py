"""A model repository served at once: two real models side by side, picked per request."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REAL_MODEL, ThreadServer, free_port, post_video, wait_for

PROBLEM = "application/problem+json"


def make_repository(root: Path, second: dict | None = None) -> Path:
    """motion (as shipped) and `second`: the same network, preprocessed as `second` says."""
    repo = root / "repository"
    for name, changes in (("motion", {}), ("second", second or {})):
        d = repo / name
        # The whole directory: model.json may name more files (e.g. domain statistics).
        shutil.copytree(REAL_MODEL, d, ignore=shutil.ignore_patterns("__*", "*.py"))
        manifest = json.loads((REAL_MODEL / "model.json").read_text())
        manifest.update(changes)
        (d / "model.json").write_text(json.dumps(manifest))
    (repo / "__pycache__").mkdir()  # not a model: skipped
    return repo


SECOND = {"name": "second", "version": "7", "resize": "shorter_side_crop", "resize_shorter": 72,
          "sampling": {"policy": "stride", "stride": 2}}


@pytest.fixture(scope="module")
def repo_server(tmp_path_factory: pytest.TempPathFactory, upload_dir: Path) -> Iterator[ThreadServer]:
    repo = make_repository(tmp_path_factory.mktemp("repo"), SECOND)
    srv = ThreadServer(upload_dir, model_dir=None, model_repository=repo, max_queue_delay_ms=20)
    yield srv
    srv.stop()


def test_every_model_is_listed_with_its_policy_and_the_default_flag(repo_server: ThreadServer,
                                                                    client: httpx.Client) -> None:
    models = {m["name"]: m for m in client.get(repo_server.url + "/v1/models").json()["models"]}
    assert set(models) == {"motion", "second"}
    assert models["motion"]["default"] is True and models["second"]["default"] is False
    assert models["motion"]["resize"] == "stretch" and models["second"]["resize"] == "shorter_side_crop"
    assert models["second"]["version"] == "7"
    assert all(m["ready"] and "CPUExecutionProvider" in m["providers"] for m in models.values())
    for name in models:
        meta = client.get(f"{repo_server.url}/v2/models/{name}").json()
        assert meta["name"] == name and meta["inputs"][0]["shape"] == [-1, 16, 3, 64, 64]
        assert client.get(f"{repo_server.url}/v2/models/{name}/ready").json() == {"name": name, "ready": True}
    r = client.get(repo_server.url + "/v2/models/nope/ready")
    assert r.status_code == 404 and r.headers["content-type"] == PROBLEM and "second" in r.json()["detail"]


def test_a_request_is_answered_by_the_model_it_names(repo_server: ThreadServer, client: httpx.Client,
                                                     media: dict[str, Path]) -> None:
    url = repo_server.url
    default = post_video(client, url + "/classify", media["short"])
    second = post_video(client, url + "/classify", media["short"], model="second")
    assert default.status_code == 200 and second.status_code == 200, (default.text, second.text)
    assert default.json()["model"] == {"name": "motion", "version": "2"}
    assert second.json()["model"] == {"name": "second", "version": "7"}
    # stride 2, centred: the second model saw 16 frames two apart; motion saw them spread uniformly.
    seen = [f["index"] for f in second.json()["frames"]]
    assert len(seen) == 16 and {b - a for a, b in itertools.pairwise(seen)} == {2}
    summary = post_video(client, url + "/summarize", media["short"], model="second")
    assert summary.status_code == 200 and summary.json()["model"]["name"] == "second"

    missing = post_video(client, url + "/classify", media["short"], model="nope")
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
    assert "nope" in missing.json()["detail"] and "/v1/models" in missing.json()["detail"]
    assert post_video(client, url + "/summarize", media["short"], model="nope").status_code == 404

    metrics = client.get(url + "/metrics").text
    for name in ("motion", "second"):
        assert f'batcher_batch_size_count{{model="{name}"}}' in metrics
        assert f'model_requests_total{{endpoint="/classify",model="{name}",status="200"}}' in metrics


def test_a_model_that_fails_to_load_stops_startup_naming_it(tmp_path: Path) -> None:
    repo = make_repository(tmp_path)
    broken = repo / "broken"
    broken.mkdir()
    shutil.copy(REAL_MODEL / "model.onnx", broken / "model.onnx")
    (broken / "model.json").write_text('{"name": "broken", "labels": []}')
    env = {**os.environ, "MODEL_REPOSITORY": str(repo), "PORT": str(free_port()), "LOG_LEVEL": "warning"}
    env.pop("MODEL_DIR", None)
    proc = subprocess.run([sys.executable, "-m", "service"], env=env, capture_output=True, text=True, timeout=240,
                          cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr[-2000:]
    line = next(x for x in proc.stderr.splitlines() if "startup stopped" in x)
    assert str(broken) in line and "labels" in line


def test_default_model_must_be_served(tmp_path: Path) -> None:
    from service.repository import ModelLoadError, default_name, discover
    from service.settings import Settings

    repo = make_repository(tmp_path)
    names = list(discover(Settings(model_repository=repo)))
    assert names == ["motion", "second"]
    assert default_name(Settings(model_repository=repo, default_model="second"), names) == "second"
    with pytest.raises(ModelLoadError, match="DEFAULT_MODEL 'other' is not served"):
        default_name(Settings(model_repository=repo, default_model="other"), names)
    (repo / "stray").mkdir()
    (repo / "stray" / "net.onnx").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match=r"stray.*no model\.json"):
        discover(Settings(model_repository=repo))


def test_the_shipped_repository_serves_motion_by_default() -> None:
    from service.repository import default_name, discover
    from service.settings import Settings

    settings = Settings()
    found = discover(settings)
    assert "motion" in found and default_name(settings, list(found)) == "motion"


def test_ready_only_once_every_model_is_warm(tmp_path: Path, upload_dir: Path, client: httpx.Client) -> None:
    repo = make_repository(tmp_path)
    srv = ThreadServer(upload_dir, wait_ready=False, model_dir=None, model_repository=repo, warmup_delay_s=1.5)
    try:
        assert client.get(srv.url + "/readyz").status_code == 503
        assert client.get(srv.url + "/v2/models/second/ready").status_code == 503
        assert not any(m["ready"] for m in client.get(srv.url + "/v1/models").json()["models"])
        wait_for(srv.url + "/readyz", timeout=60)
        assert all(m["ready"] for m in client.get(srv.url + "/v1/models").json()["models"])
        assert client.get(srv.url + "/v2/models/second/ready").status_code == 200
    finally:
        srv.stop()
