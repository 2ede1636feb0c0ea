"""What one running app holds: settings, model, worker, pools, readiness. No globals."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from av.codec.hwaccel import HWAccel

from models.frames import hardware_decoder
from service.batcher import BatchingWorker
from service.metrics import Metrics
from service.probe_pool import ProbePool
from service.runtime import OnnxModel
from service.settings import Settings, usable_cores
from service.upload import sweep_leftovers

log = logging.getLogger("service")


def decode_options(settings: Settings, busy: bool, hwaccel: HWAccel | None = None, exact: bool = False) -> dict:
    """Keyword arguments of models.frames.read_frames for one decode.

    busy: another decode is running. DECODE_THREADS=-1: alone, the GOPs are split over one
    decoder per core when that beats frame threads (models.frames.split_by_gop); busy, one
    thread, because the pool already keeps every core busy and extra threads only add
    switching. exact: the frames asked for, fully filtered, whatever DECODE_MODE and
    DECODE_LOOP_FILTER say (/summarize reports cuts and keyframes to the frame).
    """
    s = settings
    auto = s.decode_threads == -1
    threads = (1 if busy else 0) if auto else s.decode_threads
    return {"threads": threads, "mode": "exact" if exact else s.decode_mode,
            "loop_filter": True if exact else s.decode_loop_filter, "hwaccel": hwaccel,
            "workers": usable_cores() if auto and not busy else 1}


@dataclass
class ServiceState:
    settings: Settings
    metrics: Metrics = field(default_factory=Metrics)
    model: OnnxModel | None = None
    worker: BatchingWorker | None = None
    decode_pool: ThreadPoolExecutor | None = None
    warmed_up: bool = False
    draining: bool = False
    active_decodes: int = 0
    hwaccel: HWAccel | None = None
    probe_pool: ProbePool | None = None
    inflight: set = field(default_factory=set)  # service.guard.Inflight of running HTTP requests
    loop: asyncio.AbstractEventLoop | None = None

    def decode_options(self, exact: bool = False) -> dict:
        """read_frames keywords for the next decode (called before it is counted as active)."""
        return decode_options(self.settings, self.active_decodes > 0, self.hwaccel, exact)

    @property
    def ready(self) -> bool:
        return self.warmed_up and not self.draining and self.worker is not None and self.worker.running

    async def start(self) -> None:
        s = self.settings
        self.loop = asyncio.get_running_loop()
        sweep_leftovers(s.tmp_dir)  # uploads of a killed predecessor
        # Load in a thread: hashing and parsing a large graph should not block the loop.
        self.model = await asyncio.to_thread(
            OnnxModel,
            s.model_dir,
            provider=s.execution_provider,
            intra_op_threads=s.intra_op_threads,
            cudnn_conv_algo_search=s.cudnn_conv_algo_search,
            io_binding=s.io_binding,
            inference_delay_s=s.inference_delay_ms / 1000.0,
        )
        if s.hwaccel != "none":
            self.hwaccel = await asyncio.to_thread(hardware_decoder, s.hwaccel)
            if self.hwaccel is None:
                log.warning("hardware decoder %r unavailable (no usable device); decoding in software", s.hwaccel)
            else:
                log.info("decoding with hardware decoder %r", s.hwaccel)
        self.decode_pool = ThreadPoolExecutor(max_workers=s.decode_workers, thread_name_prefix="decode")
        if s.probe_workers:
            self.probe_pool = await asyncio.to_thread(ProbePool, s.probe_workers)
        self.worker = BatchingWorker(
            self.model.run,
            max_batch_size=s.max_batch_size,
            max_queue_delay_ms=s.max_queue_delay_ms,
            max_queue_size=s.max_queue_size,
            metrics=self.metrics,
            more_coming=lambda: self.active_decodes > 0,
        )
        self.worker.start()

    async def warm_up(self) -> None:
        """Runs after startup, so liveness answers while readiness still says no."""
        assert self.model is not None
        try:
            took = await asyncio.to_thread(self.model.warm_up, (1, self.settings.max_batch_size))
            if self.settings.warmup_delay_s:
                await asyncio.sleep(self.settings.warmup_delay_s)
        except Exception:
            log.exception("warm-up failed; the service stays not ready")
            return
        self.warmed_up = True
        log.info("warm-up done in %.0f ms; ready", took * 1000)

    async def stop(self) -> None:
        if self.worker is not None:
            await self.worker.stop()
        if self.decode_pool is not None:
            self.decode_pool.shutdown(wait=False, cancel_futures=True)
        if self.probe_pool is not None:
            await asyncio.to_thread(self.probe_pool.close)
