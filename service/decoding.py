"""The decode threads of one app, and the "decodes running" signal the batching workers read."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from av.codec.hwaccel import HWAccel

from models.frames import DecodeOptions
from service.settings import Settings, usable_cores

T = TypeVar("T")


class DecodeTimeoutError(Exception):
    """The decode did not finish before the request's deadline."""


def decode_options(
    settings: Settings, busy: bool, hwaccel: HWAccel | None = None, exact: bool = False
) -> DecodeOptions:
    """How the next decode runs.

    busy: another decode is running. DECODE_THREADS=-1: alone, the GOPs are split over one
    decoder per core when that beats frame threads (models.frames.split_by_gop); busy, one
    thread, because the pool already keeps every core busy and extra threads only add
    switching. exact: the frames asked for, fully filtered, whatever DECODE_MODE and
    DECODE_LOOP_FILTER say (/summarize reports cuts and keyframes to the frame).
    """
    s = settings
    auto = s.decode_threads == -1
    return DecodeOptions(
        threads=(1 if busy else 0) if auto else s.decode_threads,
        mode="exact" if exact else s.decode_mode,
        loop_filter=True if exact else s.decode_loop_filter,
        hwaccel=hwaccel,
        workers=usable_cores() if auto and not busy else 1,
    )


class DecodePool:
    """A bounded pool of decode threads shared by every model of the app.

    It counts the decodes running: a batching worker waits for a fuller batch only while a
    decode may still deliver a clip, and is told (`on_idle` callbacks) when the last one ends.
    """

    def __init__(self, settings: Settings, hwaccel: HWAccel | None = None) -> None:
        self.settings = settings
        self.hwaccel = hwaccel
        self.active = 0
        # service.probe_pool.ProbePool: where uploads are first opened and indexed, if anywhere.
        self.probe_pool: Any = None
        self._idle: list[Callable[[], None]] = []
        self._executor = ThreadPoolExecutor(max_workers=settings.decode_workers, thread_name_prefix="decode")

    @property
    def busy(self) -> bool:
        """Whether a decode is running (one may be about to hand a clip to a batcher)."""
        return self.active > 0

    def on_idle(self, callback: Callable[[], None]) -> None:
        self._idle.append(callback)

    def options(self, exact: bool = False) -> DecodeOptions:
        """Options for the next decode (asked before it is counted as running)."""
        return decode_options(self.settings, self.busy, self.hwaccel, exact)

    async def run(self, deadline: float, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args) on a decode thread, before `deadline` (time.perf_counter seconds).

        Exceptions of `fn` propagate unchanged: which of them are the upload's fault is for
        the caller to say. A timeout raises DecodeTimeoutError.
        """
        loop = asyncio.get_running_loop()
        self.active += 1
        try:
            return await asyncio.wait_for(
                loop.run_in_executor(self._executor, functools.partial(fn, *args)),
                timeout=max(0.0, deadline - time.perf_counter()),
            )
        except TimeoutError:
            raise DecodeTimeoutError("the decode did not finish before the deadline") from None
        finally:
            self.active -= 1
            if self.active == 0:
                for callback in self._idle:
                    callback()  # no clip is on its way: a waiting batch can go now

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self.probe_pool is not None:
            self.probe_pool.close()


class InlineDecoder:
    """Decode on the caller's thread, as an idle service would: benchmarks, evaluation, tests.

    The same interface as DecodePool, without threads or a deadline.
    """

    def __init__(self, settings: Settings, hwaccel: HWAccel | None = None) -> None:
        self.settings = settings
        self.hwaccel = hwaccel

    def options(self, exact: bool = False) -> DecodeOptions:
        return decode_options(self.settings, False, self.hwaccel, exact)

    async def run(self, deadline: float, fn: Callable[..., T], *args: Any) -> T:
        return fn(*args)
