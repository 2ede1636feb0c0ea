"""Convert a Hugging Face video classifier into a model directory (model.onnx + model.json).

    python -m models.export --hf MCG-NJU/videomae-base-finetuned-kinetics --out models/repo/videomae-k400

Supported: VideoMAE, TimeSformer and ViViT video classifiers (models.hf_network). The graph
follows the model contract (frames float32 [B, T, 3, H, W] with a dynamic batch axis ->
logits, per-frame attention, per-frame embeddings). model.json is filled from the
checkpoint's config (labels from id2label, T = num_frames) and its processor config
(input size, resize policy, rescale, mean/std; models.hf_source).

Nothing is written unless, on the machine that exports:
- ONNX Runtime agrees with torch on random inputs at batch 1 and 2 (logits within 1e-4 of
  the logits' scale in fp32, 3e-2 in fp16; attention rows sum to 1), and the wrapped
  model's logits are exactly transformers' own;
- preprocessing parity (models.hf_parity): a real encoded clip decoded by models.frames and
  preprocessed as model.json says is close to the HF processor's output on the same
  decoded frames (mean absolute difference below 0.25 in normalised units; the maximum
  and what the resize kernels' difference does to the probabilities are recorded).
"""

from __future__ import annotations

import re
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from models.export import IR_VERSION, OPSET, OUTPUT_NAMES, ExportError, _to_fp16
from models.hf_network import HFVideoClassifier
from models.hf_source import HFSourceError, labels_of, load_config, load_model, load_processor, preprocessing_from
from models.manifest import ModelManifest, SamplingPolicy, file_sha256

# The dynamo exporter starts at opset 18; both give the same numbers (measured on all three
# architectures), the legacy tracer in a tenth of the time, so it is the default.
DYNAMO_OPSET = 18
FP32_LIMIT = 1e-4
FP16_LIMIT = 3e-2
ONNX_PROTO_LIMIT = 2 * 1024**3  # a single protobuf file; larger models need external data


def default_name(source: str) -> str:
    """A model name from SOURCE: its last path component, made safe for model.json and URLs."""
    tail = str(source).rstrip("/").split("/")[-1]
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", tail).strip("-._").lower() or "hf-model"


def parse_sampling(text: str) -> SamplingPolicy:
    """'uniform', 'stride:N' or 'fps:F'."""
    kind, _, value = text.partition(":")
    try:
        if kind == "uniform" and not value:
            return SamplingPolicy()
        if kind == "stride":
            return SamplingPolicy(policy="stride", stride=int(value))
        if kind == "fps":
            return SamplingPolicy(policy="fps", fps=float(value))
    except ValueError as exc:
        raise ExportError(f"bad --sampling {text!r}: {exc}") from exc
    raise ExportError(f"bad --sampling {text!r}: use uniform, stride:N or fps:F")


def _fp16_graph(graph: onnx.ModelProto) -> onnx.ModelProto:
    """fp16, with the patch embedding (a Conv over tubelets or patches) kept fp32 where the
    converter manages it: in fp16, cuDNN 9.19's frontend found no engine for VideoMAE's 3D one
    on an H200 (HEURISTIC_QUERY_FAILED) and ONNX Runtime ran the call on the CPU (BENCHMARKS.md,
    "GPU"); one conv, so its cost is nil. onnxconverter-common 1.16 mistypes a Cast in ViViT's
    attention when given a block list: there the whole graph is converted, as before."""
    mixed = onnx.ModelProto()
    mixed.CopyFrom(graph)
    try:
        mixed = _to_fp16(mixed, keep_fp32=("Conv",))
        ort.InferenceSession(mixed.SerializeToString(), providers=["CPUExecutionProvider"])
        return mixed
    except Exception:  # the converter's typing error: ONNX Runtime refuses the graph
        return _to_fp16(graph)


def export_module(model: HFVideoClassifier, path: Path, fp16: bool = False, exporter: str = "legacy") -> None:
    """Write the wrapped model as ONNX (IR version 10) with a dynamic batch axis."""
    dummy = torch.zeros(2, model.num_frames, 3, model.height, model.width)
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        raw = Path(tmp) / "raw.onnx"
        if exporter == "dynamo":
            torch.onnx.export(
                model, (dummy,), str(raw), input_names=["frames"], output_names=list(OUTPUT_NAMES),
                dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},),
                opset_version=DYNAMO_OPSET, dynamo=True, verbose=False,
            )
        elif exporter == "legacy":
            torch.onnx.export(
                model, (dummy,), str(raw), input_names=["frames"], output_names=list(OUTPUT_NAMES),
                dynamic_axes={"frames": {0: "batch"}, **{n: {0: "batch"} for n in OUTPUT_NAMES}},
                opset_version=OPSET, dynamo=False,
            )
        else:
            raise ExportError(f"unknown exporter {exporter!r} (legacy or dynamo)")
        graph = onnx.load(str(raw))
    if fp16:
        graph = _fp16_graph(graph)
    graph.ir_version = IR_VERSION
    if graph.ByteSize() >= ONNX_PROTO_LIMIT:
        raise ExportError(f"the graph is {graph.ByteSize() / 2**30:.1f} GiB, over ONNX's 2 GiB single-file limit: "
                          "export with --fp16, or a smaller model")
    onnx.checker.check_model(graph)
    onnx.save(graph, str(path))


def check_parity(model: HFVideoClassifier, path: Path, fp16: bool, seed: int = 1234) -> dict[str, float]:
    """ONNX Runtime vs torch (and the wrapper vs transformers' own logits) on fresh random inputs."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    worst = {"logits": 0.0, "attention": 0.0, "embeddings": 0.0, "attention_row_sum": 0.0,
             "probabilities": 0.0, "logit_scale": 0.0, "wrapper_vs_transformers": 0.0, "top1_agree": 1.0}
    # Batch 1 and 2 prove the dynamic batch axis; a base-size clip costs seconds on a CPU, so no more.
    for batch in (1, 2):
        x = rng.standard_normal((batch, model.num_frames, 3, model.height, model.width)).astype(np.float32)
        with torch.no_grad():
            expected = [t.numpy() for t in model(torch.from_numpy(x))]
            if batch == 1:  # the hooks only read: transformers' own forward gives the same logits
                own = model.hf(pixel_values=torch.from_numpy(x)).logits.numpy()
                worst["wrapper_vs_transformers"] = float(np.abs(own - expected[0]).max())
        got = session.run(list(OUTPUT_NAMES), {"frames": x})
        for name, e, g in zip(OUTPUT_NAMES, expected, got):
            if g.shape != e.shape:
                raise ExportError(f"{name}: ONNX shape {g.shape} != torch shape {e.shape}")
            worst[name] = max(worst[name], float(np.abs(g - e).max()))
        worst["logit_scale"] = max(worst["logit_scale"], float(np.abs(expected[0]).max()))
        prob_diff = float(np.abs(_softmax(got[0]) - _softmax(expected[0])).max())
        worst["probabilities"] = max(worst["probabilities"], prob_diff)
        worst["top1_agree"] = min(worst["top1_agree"], float(np.mean(got[0].argmax(1) == expected[0].argmax(1))))
        worst["attention_row_sum"] = max(worst["attention_row_sum"], float(np.abs(got[1].sum(1) - 1).max()))
    limit = (FP16_LIMIT if fp16 else FP32_LIMIT) * max(1.0, worst["logit_scale"])
    if worst["wrapper_vs_transformers"] != 0.0:
        raise ExportError(f"the wrapped model's logits differ from transformers' by {worst['wrapper_vs_transformers']}")
    if not worst["logits"] < limit:
        raise ExportError(f"logits differ from torch by {worst['logits']:.2e} (limit {limit:.1e})")
    if not worst["attention_row_sum"] < 1e-3:
        raise ExportError(f"attention rows do not sum to 1 (off by {worst['attention_row_sum']:.2e})")
    return worst


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def _network_record(config: Any) -> dict[str, Any]:
    """The transformers config, without the label maps (model.json has the labels)."""
    record = config.to_diff_dict()
    for key in ("id2label", "label2id", "_name_or_path", "transformers_version"):
        record.pop(key, None)
    return record


def export_hf(
    source: str,
    out: Path,
    name: str | None = None,
    version: str = "1",
    fp16: bool = False,
    sampling: SamplingPolicy | None = None,
    exporter: str = "legacy",
    check_video: Path | None = None,
) -> ModelManifest:
    import transformers

    from models import hf_parity

    # Loading bars and per-layer tracer warnings say nothing the checks below do not.
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    started = time.perf_counter()
    try:
        config, class_name = load_config(source)
        processor, settings = load_processor(source)
        prep = preprocessing_from(settings, config, class_name)
        labels = labels_of(config)
    except HFSourceError as exc:
        raise ExportError(str(exc)) from exc
    model = HFVideoClassifier(load_model(source, class_name))
    name = name or default_name(source)
    out.mkdir(parents=True, exist_ok=True)
    manifest_fields: dict[str, Any] = dict(
        name=name, version=version, labels=labels, num_frames=model.num_frames,
        height=prep.height, width=prep.width, mean=prep.mean, std=prep.std, resize=prep.resize,
        resize_shorter=prep.resize_shorter, rescale=prep.rescale, sampling=sampling or SamplingPolicy(),
        architecture=model.kind, input_name="frames", onnx_file="model.onnx",
        precision="fp16" if fp16 else "fp32",
    )
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        candidate = Path(tmp) / "model.onnx"
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fp16 conversion warns once per clamped weight
            export_module(model, candidate, fp16, exporter)
        export_s = time.perf_counter() - t0
        parity = check_parity(model, candidate, fp16)
        draft = ModelManifest(**manifest_fields, sha256=file_sha256(candidate))
        pre = hf_parity.preprocessing_parity(draft, candidate, model, processor, check_video)
        if pre.get("mean_abs_diff", 0.0) >= hf_parity.MEAN_LIMIT:
            raise ExportError(
                f"frames preprocessed as model.json says differ from the HF processor's by "
                f"{pre['mean_abs_diff']:.3f} on average (limit {hf_parity.MEAN_LIMIT}): {pre}"
            )
        onnx_path = out / "model.onnx"
        candidate.replace(onnx_path)
    manifest = ModelManifest(
        **manifest_fields, sha256=file_sha256(onnx_path),
        metrics={"parity_max_abs_diff": parity, "preprocessing_parity": pre},
        network=_network_record(config),
        training={
            "converted_from": source, "transformers_class": class_name,
            "transformers_version": transformers.__version__, "torch_version": torch.__version__,
            "exporter": exporter, "opset": DYNAMO_OPSET if exporter == "dynamo" else OPSET,
            "processor": prep.processor, "processor_resample": prep.resample,
            "export_s": round(export_s, 2), "convert_s": round(time.perf_counter() - started, 2),
            "onnx_bytes": onnx_path.stat().st_size,
        },
    )
    manifest.save(out)
    return manifest
