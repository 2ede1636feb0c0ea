"""A bounded worker for heavy, unbatched models (speech, OCR): at most `concurrency` jobs run,
at most `max_queue` wait, and anything beyond is refused at once (429), as the batcher does.

A job is a function of a threading.Event; it checks the event between steps and stops when it
is set. The event is set when the request is answered (deadline, 504), its client goes away,
or the request task is cancelled, so an abandoned request frees its thread within one step.
A job counts against the bound until its thread really finishes, not when its request returns.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

T = TypeVar("T")
_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class BusyError(Exception):
    """Every slot and every queue place is taken."""


class DeadlineError(Exception):
    """The job did not finish before the request's deadline (it has been told to stop)."""


class GoneError(Exception):
    """The client went away (the job has been told to stop)."""


class BoundedRunner:
    def __init__(self, name: str, concurrency: int, max_queue: int,
                 registry: CollectorRegistry | None = None) -> None:
        self.name = name
        self.concurrency = concurrency
        self.capacity = concurrency + max_queue
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._pending = 0
        self._running = 0
        self._queued = Gauge(f"{name}_queue_depth", f"{name} jobs waiting", registry=registry) if registry else None
        self._active = Gauge(f"{name}_running", f"{name} jobs running", registry=registry) if registry else None
        self._wait = (Histogram(f"{name}_queue_wait_seconds", f"time a {name} job waited", buckets=_BUCKETS,
                                registry=registry) if registry else None)
        self._work = (Histogram(f"{name}_job_seconds", f"time a {name} job ran", buckets=_BUCKETS,
                                registry=registry) if registry else None)
        self.rejected = (Counter(f"{name}_rejected", f"{name} jobs refused (queue full)", registry=registry)
                         if registry else None)

    @property
    def pending(self) -> int:
        return self._pending

    def has_room(self) -> bool:
        return self._pending < self.capacity

    def _update(self) -> None:
        if self._queued is not None and self._active is not None:
            self._queued.set(self._pending - self._running)
            self._active.set(self._running)

    async def run(self, job: Callable[[threading.Event], T], deadline: float,
                  gone: Callable[[], Awaitable[bool]] | None = None, poll_s: float = 0.25) -> tuple[T, float]:
        """Run `job` on a worker thread; return its result and how long it waited (ms)."""
        with self._lock:
            if self._pending >= self.capacity:
                if self.rejected is not None:
                    self.rejected.inc()
                raise BusyError
            self._pending += 1
            self._update()
        stop = threading.Event()
        queued_at = time.perf_counter()
        waited: list[float] = [0.0]

        def work() -> T:
            started = time.perf_counter()
            waited[0] = (started - queued_at) * 1000
            with self._lock:
                self._running += 1
                self._update()
            try:
                if self._wait is not None:
                    self._wait.observe(started - queued_at)
                if stop.is_set():
                    raise GoneError  # answered while it waited: never start it
                return job(stop)
            finally:
                if self._work is not None:
                    self._work.observe(time.perf_counter() - started)
                with self._lock:
                    self._running -= 1

        def done(_: object) -> None:
            with self._lock:
                self._pending -= 1
                self._update()

        loop = asyncio.get_running_loop()
        try:
            fut = loop.run_in_executor(self._pool, work)
        except RuntimeError:  # the pool is shut down
            with self._lock:
                self._pending -= 1
            raise
        fut.add_done_callback(done)
        try:
            while True:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    stop.set()
                    raise DeadlineError
                finished, _ = await asyncio.wait({fut}, timeout=min(remaining, poll_s))
                if finished:
                    return fut.result(), waited[0]
                if gone is not None and await gone():
                    stop.set()
                    raise GoneError
        except BaseException:
            stop.set()
            if fut.done() and not fut.cancelled():
                fut.exception()  # retrieved: no "exception was never retrieved" warning
            else:
                fut.add_done_callback(lambda f: f.cancelled() or f.exception())
            raise

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
