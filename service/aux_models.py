"""The speech and OCR models of one app: loaded in the background at startup, each behind its
own bounded worker. A model that is missing or fails its sha256 check is logged once and
its endpoint answers 503 with the reason; everything else keeps serving."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from service.bounded import BoundedRunner
from service.ocr import OcrModel
from service.settings import Settings, usable_cores
from service.speech import SpeechModel, load_speech_model

log = logging.getLogger("service")


@dataclass
class Slot:
    """One optional model: loaded, still loading, or unavailable with a reason."""

    what: str
    model: object | None = None
    error: str | None = None
    loading: bool = True
    runner: BoundedRunner | None = None
    info: dict = field(default_factory=dict)

    def unavailable(self) -> str | None:
        """Why the endpoint cannot serve now (None: it can)."""
        if self.model is not None:
            return None
        if self.loading:
            return f"the {self.what} model is still loading; retry in a few seconds"
        return f"the {self.what} model is unavailable: {self.error}"


class AuxModels:
    def __init__(self, settings: Settings, registry: CollectorRegistry) -> None:
        self.settings = settings
        s = settings
        self.speech = Slot("speech", runner=BoundedRunner("speech", s.speech_concurrency, s.speech_max_queue, registry))
        self.ocr = Slot("OCR", runner=BoundedRunner("ocr", s.ocr_concurrency, s.ocr_max_queue, registry))
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Load both models in the background (the video model's readiness does not wait)."""
        self._task = asyncio.create_task(self._load_all())

    async def _load_all(self) -> None:
        await asyncio.gather(self._load(self.speech, self._load_speech), self._load(self.ocr, self._load_ocr))

    async def _load(self, slot: Slot, loader) -> None:
        try:
            slot.model = await asyncio.to_thread(loader)
        except Exception as exc:
            slot.error = str(exc) or type(exc).__name__
            log.error("%s model not loaded, its endpoint answers 503: %s", slot.what, slot.error)
        else:
            log.info("%s model loaded in %.1f s", slot.what, slot.model.load_s)  # type: ignore[attr-defined]
        finally:
            slot.loading = False

    def _load_speech(self) -> SpeechModel:
        s = self.settings
        if s.whisper_model.strip().lower() == "none":
            raise RuntimeError("turned off (WHISPER_MODEL=none)")
        threads = s.speech_threads or usable_cores()
        model = load_speech_model(s.whisper_model.strip(), s.model_cache_dir, s.whisper_device,
                                  s.whisper_compute_type, threads, s.speech_concurrency)
        self.speech.info = {
            "name": model.name, "version": model.version, "kind": "speech",
            "provider": f"ctranslate2-{model.device}", "compute_type": model.compute_type,
            "languages": model.languages, "vad": "silero-vad-v6 (onnxruntime, CPU)",
        }
        return model

    def _load_ocr(self) -> OcrModel:
        s = self.settings
        if not s.ocr_enabled:
            raise RuntimeError("turned off (OCR_ENABLED=false)")
        model = OcrModel(min_score=s.ocr_min_score)
        self.ocr.info = {"name": model.name, "version": model.version, "kind": "ocr",
                         "provider": "onnxruntime-CPUExecutionProvider"}
        return model

    def describe(self) -> list[dict]:
        """/v1/models entries (beside the video models, under their own key)."""
        out = []
        for slot in (self.speech, self.ocr):
            entry = dict(slot.info) if slot.info else {"kind": "speech" if slot is self.speech else "ocr"}
            entry["ready"] = slot.model is not None
            if slot.model is None:
                entry["error"] = slot.unavailable()
            out.append(entry)
        return out

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        for slot in (self.speech, self.ocr):
            if slot.runner is not None:
                slot.runner.shutdown()
