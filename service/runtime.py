"""The ONNX Runtime session: CUDA when it works, CPU otherwise, warmed up before serving."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from models.domain import ENSEMBLE, Scorer, load_scorer
from models.manifest import ModelManifest

log = logging.getLogger("service")

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


class OnnxModel:
    """One model on one device; `run` is called from the batching worker's single thread."""

    def __init__(
        self,
        model_dir: Path,
        *,
        provider: str = "auto",
        intra_op_threads: int = 0,
        cudnn_conv_algo_search: str = "HEURISTIC",
        io_binding: str = "auto",
        inference_delay_s: float = 0.0,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.manifest = ModelManifest.load(self.model_dir)
        self.domain = self._domain_statistics()
        self.inference_delay_s = inference_delay_s
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        wanted = self._providers(provider, cudnn_conv_algo_search)
        # Without a GPU, asking for CUDA makes ORT print pages of native errors; silence it
        # during creation and say it once, clearly, below.
        ort.set_default_logger_severity(4)
        options.log_severity_level = 4
        try:
            self.session = ort.InferenceSession(
                str(self.model_dir / self.manifest.onnx_file), sess_options=options, providers=wanted
            )
        finally:
            ort.set_default_logger_severity(3)
        self.providers: list[str] = list(self.session.get_providers())
        asked_cuda = any((p[0] if isinstance(p, tuple) else p) == CUDA for p in wanted)
        if asked_cuda and CUDA not in self.providers:
            log.warning("CUDA execution provider unavailable (no usable GPU/CUDA libraries); running on CPU")
        log.info(
            "model %s v%s loaded from %s; execution providers in use: %s",
            self.manifest.name, self.manifest.version, self.model_dir, ", ".join(self.providers),
        )
        self.output_names = [
            self.manifest.outputs.logits, self.manifest.outputs.attention, self.manifest.outputs.embeddings
        ]
        self.output_keys = ["logits", "attention", "embeddings"]
        if self.manifest.outputs.features:  # optional: what `domain` reads (models/features_output.py)
            self.output_names.append(self.manifest.outputs.features)
            self.output_keys.append("features")
        self._check_contract()
        # On the GPU, IO binding copies the batch to the device once and the outputs straight
        # into host memory, without ORT's per-run staging; on the CPU there is nothing to save.
        self.io_binding = io_binding == "on" or (io_binding == "auto" and self.providers[0] == CUDA)

    def _check_contract(self) -> None:
        """The graph has the input and outputs model.json names, and as many scores as labels."""
        m = self.manifest
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = {o.name: o for o in self.session.get_outputs()}
        if m.input_name not in inputs:
            raise ValueError(f"the graph has no input '{m.input_name}' (model.json input_name); its inputs: "
                             f"{', '.join(inputs)}")
        missing = [n for n in self.output_names if n not in outputs]
        if missing:
            raise ValueError(f"the graph has no output {', '.join(missing)} (model.json outputs); its outputs: "
                             f"{', '.join(outputs)}")
        classes = outputs[m.outputs.logits].shape[-1]
        if isinstance(classes, int) and classes != len(m.labels):
            raise ValueError(f"the graph returns {classes} class scores but model.json lists {len(m.labels)} labels")

    def _domain_statistics(self) -> Scorer | None:
        """Training-data statistics for the `domain` answer, when the model directory has them.

        They are optional: a directory copied without its statistics file still serves its
        labels (without `domain`), and says so once.
        """
        spec = self.manifest.domain
        if spec is None:
            return None
        if spec.method == ENSEMBLE and not self.manifest.outputs.features:
            log.warning("model %s: domain method %s reads the graph's `features` output, which model.json "
                        "does not name; answering without `domain`", self.manifest.name, spec.method)
            return None
        try:
            return load_scorer(self.model_dir, spec.method, spec.file, spec.threshold)
        except (OSError, KeyError, ValueError) as exc:
            log.warning("model %s: domain statistics %s unreadable (%s); answering without `domain`",
                        self.manifest.name, self.model_dir / spec.file, exc)
            return None

    @staticmethod
    def _providers(provider: str, algo: str) -> list[str | tuple[str, dict]]:
        if provider == "cpu" or CUDA not in ort.get_available_providers():
            return [CPU]
        return [(CUDA, {"cudnn_conv_algo_search": algo}), CPU]

    @property
    def clip_shape(self) -> tuple[int, int, int, int]:
        m = self.manifest
        return m.num_frames, 3, m.height, m.width

    def run(self, clips: np.ndarray) -> dict[str, np.ndarray]:
        """clips float32 [B, T, 3, H, W] -> logits [B, C], attention [B, T], embeddings [B, T, D]."""
        if self.inference_delay_s:
            time.sleep(self.inference_delay_s)
        return self._infer(clips)

    def _infer(self, clips: np.ndarray) -> dict[str, np.ndarray]:
        if self.io_binding:
            binding = self.session.io_binding()
            binding.bind_cpu_input(self.manifest.input_name, np.ascontiguousarray(clips, np.float32))
            for name in self.output_names:
                binding.bind_output(name, "cpu")
            self.session.run_with_iobinding(binding)
            outputs = binding.copy_outputs_to_cpu()
        else:
            outputs = self.session.run(self.output_names, {self.manifest.input_name: clips})
        return dict(zip(self.output_keys, outputs, strict=True))

    def warm_up(self, batch_sizes: tuple[int, ...] = (1, 2)) -> float:
        """Run dummy batches so the first real request does not pay for lazy initialization."""
        start = time.perf_counter()
        for b in batch_sizes:
            self._infer(np.zeros((b, *self.clip_shape), np.float32))
        return time.perf_counter() - start
