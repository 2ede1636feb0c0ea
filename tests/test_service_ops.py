"""Operations: health, readiness during warm-up and drain, model metadata, API key, SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import REPO, ThreadServer, free_port, model_dir, post_video, wait_for


def test_health_and_models(server: ThreadServer, client: httpx.Client) -> None:
    assert client.get(server.url + "/healthz").json() == {"status": "ok"}
    assert client.get(server.url + "/readyz").status_code == 200
    assert client.get(server.url + "/v2/health/live").status_code == 200
    assert client.get(server.url + "/v2/health/ready").json()["ready"] is True
    models = client.get(server.url + "/v1/models").json()["models"]
    assert len(models) == 1
    m = models[0]
    assert m["num_frames"] == 16 and m["input_size"] == [64, 64] and len(m["labels"]) == 10
    # The providers the session really uses: CPU here; never just "available" ones.
    assert m["providers"] and m["providers"][-1] == "CPUExecutionProvider"
    meta = client.get(server.url + f"/v2/models/{m['name']}").json()
    assert meta["inputs"][0]["name"] == "frames" and meta["inputs"][0]["shape"][1:] == [16, 3, 64, 64]
    assert {o["name"] for o in meta["outputs"]} == {"logits", "attention", "embeddings", "features"}
    ready = client.get(server.url + f"/v2/models/{m['name']}/ready").json()
    assert ready == {"name": m["name"], "ready": True}
    assert client.get(server.url + "/openapi.json").json()["paths"]["/classify"]
    assert client.get(server.url + "/docs").status_code == 200


def test_not_ready_until_warm_up_is_done(upload_dir: Path, media: dict[str, Path]) -> None:
    srv = ThreadServer(upload_dir, wait_ready=False, warmup_delay_s=3)
    try:
        with httpx.Client(timeout=30) as client:
            assert client.get(srv.url + "/healthz").status_code == 200
            r = client.get(srv.url + "/readyz")
            assert r.status_code == 503 and "retry-after" in r.headers
            assert client.get(srv.url + "/v2/health/ready").status_code == 503
            r = post_video(client, srv.url + "/classify", media["short"])
            assert r.status_code == 503 and "retry-after" in r.headers
            wait_for(srv.url + "/readyz", timeout=30)
            assert post_video(client, srv.url + "/classify", media["short"]).status_code == 200
    finally:
        srv.stop()


def test_api_key(upload_dir: Path, media: dict[str, Path]) -> None:
    srv = ThreadServer(upload_dir, api_key="s3cret-key")
    good = {"Authorization": "Bearer s3cret-key"}
    try:
        with httpx.Client(timeout=30) as client:
            for path in ("/healthz", "/readyz", "/v2/health/live", "/v2/health/ready"):
                assert client.get(srv.url + path).status_code == 200
            for path in ("/v1/models", "/metrics", "/v2/models/motion"):
                r = client.get(srv.url + path)
                assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
                for wrong in ("Bearer wrong", "s3cret-key", "Basic s3cret-key"):
                    assert client.get(srv.url + path, headers={"Authorization": wrong}).status_code == 401
                assert client.get(srv.url + path, headers=good).status_code == 200
            assert post_video(client, srv.url + "/classify", media["short"]).status_code == 401
            with open(media["short"], "rb") as f:
                r = client.post(srv.url + "/classify", files={"file": f}, headers=good)
            assert r.status_code == 200
    finally:
        srv.stop()


def test_api_key_off_by_default(server: ThreadServer, client: httpx.Client) -> None:
    assert server.settings.api_key is None
    assert client.get(server.url + "/v1/models").status_code == 200
    assert client.get(server.url + "/metrics").status_code == 200


@pytest.mark.timeout(120)
def test_sigterm_drains_in_flight_requests(upload_dir: Path, media: dict[str, Path], tmp_path: Path) -> None:
    port = free_port()
    env = os.environ | {
        "PYTHONPATH": str(REPO),
        "PORT": str(port),
        "MODEL_DIR": str(model_dir()),
        "TMP_DIR": str(upload_dir),
        "INFERENCE_DELAY_MS": "2500",
        "DRAIN_DELAY_S": "1",
        "DRAIN_GRACE_S": "15",
        "LOG_LEVEL": "warning",
    }
    # From another directory: `python -m service` must not depend on the working directory.
    proc = subprocess.Popen([sys.executable, "-m", "service"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url + "/readyz", timeout=60)
        result: dict[str, httpx.Response] = {}

        def call() -> None:
            with httpx.Client(timeout=60) as c:
                result["r"] = post_video(c, url + "/classify", media["short"])

        thread = threading.Thread(target=call)
        thread.start()
        time.sleep(1.0)  # the request is now in its (slow) batch
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        # Draining: still listening for DRAIN_DELAY_S, but no longer ready.
        assert httpx.get(url + "/readyz", timeout=5).status_code == 503
        assert httpx.get(url + "/healthz", timeout=5).status_code == 200
        thread.join(timeout=60)
        assert result["r"].status_code == 200, result["r"].text
        assert result["r"].json()["labels"]
        proc.wait(timeout=30)
        assert proc.returncode in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
