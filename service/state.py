"""What one running app holds: settings, the served models and their workers, the decode pool,
readiness. No globals."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from av.codec.hwaccel import HWAccel

from models.frames import DecodeOptions, hardware_decoder
from models.preprocess import Preprocessing
from service.batcher import BatchingWorker
from service.decoding import DecodePool, decode_options
from service.errors import ApiError
from service.metrics import Metrics
from service.pipelines import PipelineModel, Pipelines
from service.probe_pool import ProbePool
from service.repository import ServedModel, default_name, discover, load_runtime
from service.runtime import OnnxModel
from service.settings import Settings
from service.upload import sweep_leftovers

log = logging.getLogger("service")

__all__ = ["ServiceState", "decode_options"]  # decode_options: its home is service.decoding


@dataclass
class ServiceState:
    settings: Settings
    metrics: Metrics = field(default_factory=Metrics)
    models: dict[str, ServedModel] = field(default_factory=dict)
    default_model: str | None = None
    decode_pool: DecodePool | None = None
    draining: bool = False
    inflight: set = field(default_factory=set)  # service.guard.Inflight of running HTTP requests
    loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------ lookups

    def served(self, name: str | None = None) -> ServedModel:
        """The model called `name` (the default one for None); unknown: 404."""
        key = self.default_model if name is None else name
        if key not in self.models:
            served = ", ".join(self.models) or "none"
            raise ApiError(404, f"no model named '{name}' is served (served: {served}); GET /v1/models lists them")
        return self.models[key]

    @property
    def model(self) -> OnnxModel | None:
        """The default model's runtime (kept for callers that serve one model)."""
        return self.models[self.default_model].runtime if self.default_model in self.models else None

    @property
    def worker(self) -> BatchingWorker | None:
        return self.models[self.default_model].worker if self.default_model in self.models else None

    @property
    def hwaccel(self) -> HWAccel | None:
        return self.decode_pool.hwaccel if self.decode_pool is not None else None

    @property
    def active_decodes(self) -> int:
        return self.decode_pool.active if self.decode_pool is not None else 0

    def decode_options(self, exact: bool = False) -> DecodeOptions:
        assert self.decode_pool is not None
        return self.decode_pool.options(exact)

    @property
    def warmed_up(self) -> bool:
        return bool(self.models) and all(m.warmed_up for m in self.models.values())

    @property
    def ready(self) -> bool:
        """Every model loaded, warmed up and its worker running, and not draining."""
        return self.warmed_up and not self.draining and all(m.worker.running for m in self.models.values())

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Load every model; raises ModelLoadError (naming the directory) if any fails."""
        s = self.settings
        self.loop = asyncio.get_running_loop()
        sweep_leftovers(s.tmp_dir)  # uploads of a killed predecessor
        found = discover(s)
        self.default_model = default_name(s, list(found))
        hwaccel = None
        if s.hwaccel != "none":
            hwaccel = await asyncio.to_thread(hardware_decoder, s.hwaccel)
            if hwaccel is None:
                log.warning("hardware decoder %r unavailable (no usable device); decoding in software", s.hwaccel)
            else:
                log.info("decoding with hardware decoder %r", s.hwaccel)
        pool = self.decode_pool = DecodePool(s, hwaccel)
        if s.probe_workers:
            self.decode_pool.probe_pool = await asyncio.to_thread(ProbePool, s.probe_workers)
        for name, directory in found.items():
            # Load in a thread: hashing and parsing a large graph should not block the loop.
            runtime = await asyncio.to_thread(load_runtime, directory, s)
            worker = BatchingWorker(
                runtime.run,
                max_batch_size=s.max_batch_size,
                max_queue_delay_ms=s.max_queue_delay_ms,
                max_queue_size=s.max_queue_size,
                metrics=self.metrics,
                more_coming=lambda: pool.busy,  # a decode may still hand this worker a clip
                model=name,
            )
            pool.on_idle(worker.notify)
            prep = Preprocessing.from_manifest(runtime.manifest)
            model = PipelineModel(name, runtime.manifest, prep, worker.infer, runtime.domain)
            pipelines = Pipelines.build(model, s, pool, self.metrics)
            self.models[name] = ServedModel(name, directory, runtime, worker, prep, pipelines)
            worker.start()
        log.info("serving %d model(s): %s; default: %s", len(self.models), ", ".join(self.models),
                 self.default_model)

    async def warm_up(self) -> None:
        """Runs after startup, so liveness answers while readiness still says no."""
        started = asyncio.get_running_loop().time()
        for served in self.models.values():
            try:
                took = await asyncio.to_thread(served.runtime.warm_up, (1, self.settings.max_batch_size))
            except Exception:
                log.exception("warm-up of model %s failed; the service stays not ready", served.name)
                return
            log.info("model %s warmed up in %.0f ms", served.name, took * 1000)
        if self.settings.warmup_delay_s:
            await asyncio.sleep(self.settings.warmup_delay_s)
        for served in self.models.values():
            served.warmed_up = True
        log.info("all %d model(s) warm in %.0f ms; ready", len(self.models),
                 (asyncio.get_running_loop().time() - started) * 1000)

    async def stop(self) -> None:
        for served in self.models.values():
            await served.worker.stop()
        if self.decode_pool is not None:
            self.decode_pool.shutdown()
