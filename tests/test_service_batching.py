"""Dynamic batching: concurrent requests share batches; full queue -> 429; slow batch -> 504."""

from __future__ import annotations

import asyncio
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import ThreadServer, post_video

from service.batcher import BatchingWorker, DeadlineExceededError, QueueFullError
from service.metrics import Metrics


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


def test_concurrent_requests_share_batches(
    server: ThreadServer, client: httpx.Client, media: dict[str, Path]
) -> None:
    before = client.get(server.url + "/metrics").text
    count, total = 'batcher_batch_size_count{model="motion"}', 'batcher_batch_size_sum{model="motion"}'
    n0, s0 = metric(before, count), metric(before, total)
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: post_video(client, server.url + "/classify", media["short"]),
                                range(16)))
    assert [r.status_code for r in answers] == [200] * 16
    labels = {r.json()["labels"][0]["label"] for r in answers}
    assert len(labels) == 1  # the same video gets the same answer, whatever batch it rode in
    after = client.get(server.url + "/metrics").text
    batches = metric(after, count) - n0
    clips = metric(after, total) - s0
    assert clips == 16
    assert batches < 16, "no batch held more than one clip"
    assert 'http_requests_total{endpoint="/classify",method="POST",status="200"}' in after
    for name in ("batcher_queue_depth", "batcher_queue_wait_seconds_count", "inference_seconds_count",
                 'decode_seconds_count{endpoint="/classify"}', "http_request_duration_seconds_bucket"):
        assert name in after


@pytest.fixture
def slow_server(upload_dir: Path) -> ThreadServer:
    srv = ThreadServer(upload_dir, inference_delay_ms=1500, max_batch_size=1, max_queue_size=1,
                       max_queue_delay_ms=0, retry_after_s=2)
    yield srv
    srv.stop()


def test_full_queue_is_429_with_retry_after(
    slow_server: ThreadServer, client: httpx.Client, media: dict[str, Path]
) -> None:
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: post_video(client, slow_server.url + "/classify", media["short"]),
                                range(6)))
    codes = sorted(r.status_code for r in answers)
    assert 200 in codes and 429 in codes, codes
    assert set(codes) <= {200, 429}
    refused = next(r for r in answers if r.status_code == 429)
    assert refused.headers["retry-after"] == "2"
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "queue" in refused.json()["detail"]


def test_slow_batch_is_504_and_the_worker_goes_on(upload_dir: Path, media: dict[str, Path]) -> None:
    srv = ThreadServer(upload_dir, inference_delay_ms=2000, request_timeout_s=1.0)
    try:
        with httpx.Client(timeout=60) as client:
            r = post_video(client, srv.url + "/classify", media["short"])
            assert r.status_code == 504, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            time.sleep(1.5)  # the slow batch finishes in the background
            assert client.get(srv.url + "/readyz").status_code == 200
    finally:
        srv.stop()


# ------------------------------------------------------------- the worker on its own


def _worker(infer, **kw) -> BatchingWorker:
    opts = {"max_batch_size": 4, "max_queue_delay_ms": 20, "max_queue_size": 8} | kw
    return BatchingWorker(infer, metrics=Metrics(), **opts)


def _double(x: np.ndarray) -> dict[str, np.ndarray]:
    if (x < 0).any():
        raise RuntimeError("negative input")
    return {"y": x.reshape(len(x), -1).sum(axis=1) * 2}


def test_worker_batches_and_isolates_failures() -> None:
    async def scenario() -> None:
        sizes: list[int] = []

        def infer(x: np.ndarray) -> dict[str, np.ndarray]:
            sizes.append(len(x))
            return _double(x)

        worker = _worker(infer)
        worker.start()
        deadline = time.perf_counter() + 5
        clips = [np.full((1, 2, 2, 2), i, np.float32) for i in range(4)]
        results = await asyncio.gather(*(worker.infer(c, deadline) for c in clips))
        assert [float(r.outputs["y"][0]) for r in results] == [i * 16.0 for i in range(4)]
        assert sizes == [4]  # one batch for four concurrent requests
        # A batch that raises fails its requests only; the next batch runs.
        with pytest.raises(RuntimeError):
            await worker.infer(np.full((1, 2, 2, 2), -1, np.float32), deadline)
        good = await worker.infer(np.ones((2, 2, 2, 2), np.float32), deadline)
        assert good.outputs["y"].tolist() == [16.0, 16.0]
        await worker.stop()

    asyncio.run(scenario())


def test_worker_deadline_and_full_queue() -> None:
    async def scenario() -> None:
        def slow(x: np.ndarray) -> dict[str, np.ndarray]:
            time.sleep(0.3)
            return _double(x)

        worker = _worker(slow, max_batch_size=1, max_queue_size=2, max_queue_delay_ms=0)
        worker.start()
        clip = np.ones((1, 1), np.float32)
        with pytest.raises(DeadlineExceededError):
            await worker.infer(clip, time.perf_counter() + 0.1)
        # The worker still runs the timed-out clip's batch, so two more fill the queue.
        busy = [asyncio.create_task(worker.infer(clip, time.perf_counter() + 5)) for _ in range(2)]
        await asyncio.sleep(0.05)
        with pytest.raises(QueueFullError):
            await worker.infer(clip, time.perf_counter() + 5)
        assert len(await asyncio.gather(*busy)) == 2
        await worker.stop()

    asyncio.run(scenario())


def test_lone_request_does_not_wait_for_company() -> None:
    async def scenario() -> None:
        coming = {"value": False}
        worker = BatchingWorker(_double, max_batch_size=8, max_queue_delay_ms=400, max_queue_size=64,
                                metrics=Metrics(), more_coming=lambda: coming["value"])
        worker.start()
        deadline = time.perf_counter() + 5
        x = np.ones((1, 2, 2, 2), np.float32)
        # Nothing else is being decoded: no reason to hold the batch for 400 ms.
        t0 = time.perf_counter()
        await worker.infer(x, deadline)
        assert time.perf_counter() - t0 < 0.2
        # A decode is running: the batch waits for it (up to the delay), and goes once told.
        coming["value"] = True
        t0 = time.perf_counter()
        task = asyncio.ensure_future(worker.infer(x, deadline))
        await asyncio.sleep(0.1)
        assert not task.done()
        coming["value"] = False
        worker.notify()
        await task
        assert time.perf_counter() - t0 < 0.35
        await worker.stop()

    asyncio.run(scenario())
