"""The model repository: every model directory served, each with its own session and batcher.

Layout (as Triton's model repository): MODEL_REPOSITORY/<name>/model.json + the ONNX file.
A subfolder with a model.json is a model, named after the folder; other subfolders (Python
sources, caches) are not, unless they hold an ONNX file without a model.json, which is an
error. MODEL_DIR instead serves one directory, named by its model.json. A model that fails
to load stops startup: never serve half a repository.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from models.manifest import MANIFEST_FILE, ModelManifest
from models.preprocess import Preprocessing
from service.batcher import BatchingWorker
from service.pipelines import Pipelines
from service.runtime import OnnxModel
from service.settings import Settings

log = logging.getLogger("service")


class ModelLoadError(RuntimeError):
    """A model directory cannot be served: the message names the directory and the reason."""


@dataclass
class ServedModel:
    name: str
    directory: Path
    runtime: OnnxModel
    worker: BatchingWorker
    preprocessing: Preprocessing
    pipelines: Pipelines
    warmed_up: bool = False

    @property
    def manifest(self) -> ModelManifest:
        return self.runtime.manifest

    @property
    def ready(self) -> bool:
        return self.warmed_up and self.worker.running


def discover(settings: Settings) -> dict[str, Path]:
    """{served name: model directory}, in name order."""
    if settings.model_dir is not None:
        directory = Path(settings.model_dir)
        try:
            manifest = ModelManifest.load(directory, verify=False)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"model directory {directory} cannot be loaded: {_reason(exc)}") from None
        return {manifest.name: directory}
    repo = Path(settings.model_repository)
    if not repo.is_dir():
        raise ModelLoadError(f"MODEL_REPOSITORY {repo} is not a directory")
    found: dict[str, Path] = {}
    for sub in sorted(repo.iterdir()):
        if not sub.is_dir() or sub.name.startswith((".", "_")):
            continue
        if (sub / MANIFEST_FILE).is_file():
            found[sub.name] = sub
        elif any(sub.glob("*.onnx")):
            raise ModelLoadError(
                f"model directory {sub} cannot be loaded: it holds an ONNX file but no {MANIFEST_FILE}"
            )
    if not found:
        raise ModelLoadError(f"MODEL_REPOSITORY {repo} holds no model directory (a subfolder with {MANIFEST_FILE})")
    return found


def default_name(settings: Settings, names: list[str]) -> str:
    if settings.default_model is not None:
        if settings.default_model not in names:
            raise ModelLoadError(
                f"DEFAULT_MODEL {settings.default_model!r} is not served; the models are: {', '.join(names)}"
            )
        return settings.default_model
    return "motion" if "motion" in names else names[0]


def load_runtime(directory: Path, settings: Settings) -> OnnxModel:
    s = settings
    try:
        return OnnxModel(
            directory,
            provider=s.execution_provider,
            intra_op_threads=s.intra_op_threads,
            cudnn_conv_algo_search=s.cudnn_conv_algo_search,
            io_binding=s.io_binding,
            inference_delay_s=s.inference_delay_ms / 1000.0,
        )
    except Exception as exc:  # any reason at all: say which directory and why, once
        raise ModelLoadError(f"model directory {directory} cannot be loaded: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    text = str(exc).strip().replace("\n", " ")
    return f"{type(exc).__name__}: {text[:500]}" if text else type(exc).__name__
