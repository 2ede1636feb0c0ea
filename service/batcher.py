"""Dynamic batching: clips from concurrent requests share one ONNX Runtime call.

One worker per model and device. A request submits its clips (one or many) with a
deadline; the worker takes up to `max_batch_size` clips, waiting at most
`max_queue_delay_ms` after the oldest one arrived, and runs the batch in a thread so the
event loop keeps serving. A failing batch fails only its own requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from service.metrics import Metrics, ModelMetrics

log = logging.getLogger("service")

InferFn = Callable[[np.ndarray], dict[str, np.ndarray]]


class QueueFullError(Exception):
    """The queue has no room for the request's clips: answer 429."""


class DeadlineExceededError(Exception):
    """The request's deadline passed before its clips were inferred: answer 504."""


class WorkerStoppedError(Exception):
    """The worker is not running (not started yet, or shut down): answer 503."""


@dataclass
class _Item:
    clip: np.ndarray  # float32 [T, 3, H, W]
    future: asyncio.Future[tuple[dict[str, np.ndarray], float, float, int]]
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass
class InferResult:
    outputs: dict[str, np.ndarray]  # each stacked over the request's clips, in submission order
    queue_ms: float  # longest wait of any of the request's clips
    inference_ms: float  # summed time of the batches that carried them


class BatchingWorker:
    def __init__(
        self,
        infer: InferFn,
        *,
        max_batch_size: int,
        max_queue_delay_ms: float,
        max_queue_size: int,
        metrics: Metrics | ModelMetrics,
        more_coming: Callable[[], bool] | None = None,
        model: str = "default",
    ) -> None:
        self._infer = infer
        self.model = model
        # Whether another clip may arrive soon (a decode is running). When not, waiting up to
        # max_queue_delay_ms for company only adds latency: a lone request goes at once.
        self._more_coming = more_coming
        self.max_batch_size = max_batch_size
        self.max_delay_s = max_queue_delay_ms / 1000.0
        self.max_queue_size = max_queue_size
        self.metrics = metrics.for_model(model) if isinstance(metrics, Metrics) else metrics
        self._pending: deque[_Item] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._batches = 0
        # One thread: a session is one device; batches run back to back, not interleaved.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def depth(self) -> int:
        return len(self._pending)

    def has_room(self, clips: int = 1) -> bool:
        # A request bigger than the whole queue is still admitted into an empty queue.
        return not self._pending or len(self._pending) + clips <= self.max_queue_size

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"batching-worker-{self.model}")

    def notify(self) -> None:
        """Something changed that may end the wait for a fuller batch (e.g. decodes finished)."""
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for item in self._pending:
            if not item.future.done():
                item.future.set_exception(WorkerStoppedError("the service is shutting down"))
        self._pending.clear()
        self.metrics.queue_depth.set(0)
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def infer(self, clips: np.ndarray, deadline: float) -> InferResult:
        """Infer clips float32 [N, T, 3, H, W] before `deadline` (time.perf_counter seconds)."""
        if not self.running:
            raise WorkerStoppedError("the inference worker is not running")
        n = len(clips)
        if not self.has_room(n):
            self.metrics.rejected.inc(n)
            raise QueueFullError(f"{len(self._pending)} clips are waiting")
        loop = asyncio.get_running_loop()
        items = [_Item(np.ascontiguousarray(c), loop.create_future()) for c in clips]
        self._pending.extend(items)
        self.metrics.queue_depth.set(len(self._pending))
        self._wake.set()
        futures = [i.future for i in items]
        try:
            results = await asyncio.wait_for(
                asyncio.gather(*futures), timeout=max(0.0, deadline - time.perf_counter())
            )
        except TimeoutError:
            raise DeadlineExceededError("the request's deadline passed") from None
        finally:
            # Anything still queued for this request is skipped by the worker.
            for f in futures:
                if not f.done():
                    f.cancel()
        outputs = {k: np.stack([r[0][k] for r in results]) for k in results[0][0]}
        inference_s = sum({r[3]: r[2] for r in results}.values())  # once per batch, not per clip
        return InferResult(outputs, max(r[1] for r in results) * 1000, inference_s * 1000)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                self._wake.clear()
                await self._wake.wait()
            fill_until = self._pending[0].enqueued + self.max_delay_s
            while len(self._pending) < self.max_batch_size:
                remaining = fill_until - time.perf_counter()
                if remaining <= 0 or (self._more_coming is not None and not self._more_coming()):
                    break
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), remaining)
                except TimeoutError:
                    break
            batch: list[_Item] = []
            while self._pending and len(batch) < self.max_batch_size:
                item = self._pending.popleft()
                if not item.future.done():  # skip clips whose request timed out or went away
                    batch.append(item)
            self.metrics.queue_depth.set(len(self._pending))
            if batch:
                await self._run_batch(loop, batch)

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, batch: list[_Item]) -> None:
        started = time.perf_counter()
        for item in batch:
            self.metrics.queue_wait.observe(started - item.enqueued)
        self.metrics.batch_size.observe(len(batch))
        try:
            stacked = np.stack([i.clip for i in batch])
            outputs = await loop.run_in_executor(self._executor, self._infer, stacked)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the batch fails, the worker goes on
            self.metrics.batch_failures.inc()
            log.exception("inference failed for a batch of %d clips", len(batch))
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        elapsed = time.perf_counter() - started
        self.metrics.inference.observe(elapsed)
        self._batches += 1
        for j, item in enumerate(batch):
            if not item.future.done():
                per_clip = {k: v[j] for k, v in outputs.items()}
                item.future.set_result((per_clip, started - item.enqueued, elapsed, self._batches))
