"""Training, export and the shipped default model, with real data, torch and ONNX Runtime."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from models import frames as F
from models import synthetic
from models.export import ExportError, check_parity, export, export_onnx
from models.manifest import ModelManifest
from models.network import NetworkConfig, VideoTransformer
from models.train import build_parser, standardize, to_input, train

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "models" / "motion"
TINY = ["--frames", "8", "--size", "32", "--dim", "32", "--depth", "1", "--heads", "2"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (tiny) run of the training CLI on freshly generated synthetic clips."""
    out = tmp_path_factory.mktemp("run")
    args = build_parser().parse_args([
        "--out", str(out), "--train-size", "40", "--val-size", "20", "--epochs", "2",
        "--batch-size", "8", "--workers", "1", "--quiet", "--encoded-share", "0.2", *TINY,
    ])
    train(args)
    return out


def test_training_cli_writes_checkpoints_and_metrics(tiny_run: Path) -> None:
    assert (tiny_run / "last.pt").exists() and (tiny_run / "best.pt").exists()
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["train_clips"] == 40
    best = metrics["best_val"]
    assert len(best["confusion"]) == len(synthetic.LABELS)
    assert sum(map(sum, best["confusion"])) == 20
    assert set(best["per_class"]) == set(synthetic.LABELS)


def test_resume_continues_from_the_last_epoch(tiny_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args([
        "--out", str(tiny_run), "--train-size", "40", "--val-size", "20", "--epochs", "3",
        "--batch-size", "8", "--workers", "1", "--quiet", "--encoded-share", "0.2", "--resume", *TINY,
    ])
    metrics = train(args)
    assert "resumed from" in capsys.readouterr().out
    assert [h["epoch"] for h in metrics["history"]] == [1, 2, 3]


def test_eval_every_validates_every_nth_epoch_and_the_last(tiny_run: Path, tmp_path: Path) -> None:
    args = build_parser().parse_args([
        "--out", str(tmp_path), "--cache", str(tiny_run / "cache"), "--train-size", "40", "--val-size", "20",
        "--epochs", "3", "--eval-every", "2", "--batch-size", "8", "--workers", "1", "--quiet",
        "--encoded-share", "0.2", *TINY,
    ])
    metrics = train(args)
    assert [h["epoch"] for h in metrics["history"]] == [2, 3]
    assert metrics["epochs"] == 3 and metrics["final_val_top1"] == metrics["history"][-1]["val_top1"]
    assert (tmp_path / "best.pt").exists()


def test_a_few_steps_lower_the_loss() -> None:
    torch.manual_seed(0)
    clips, labels = zip(*(synthetic.make_clip(seed, 8, (32, 32), 0.0) for seed in range(10)))
    x = standardize(to_input(np.stack(clips)))
    y = torch.tensor(labels)
    model = VideoTransformer(NetworkConfig(num_frames=8, height=32, width=32, dim=32, depth=1, heads=2,
                                           dropout=0.0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss = torch.nn.functional.cross_entropy(model(x)[0], y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_network_outputs_follow_the_model_contract() -> None:
    model = VideoTransformer(NetworkConfig(num_frames=8, height=32, width=32, dim=32, depth=2, heads=4)).eval()
    logits, attention, embeddings = model(torch.randn(3, 8, 3, 32, 32))
    assert logits.shape == (3, 10) and attention.shape == (3, 8) and embeddings.shape == (3, 8, 32)
    assert torch.allclose(attention.sum(1), torch.ones(3), atol=1e-5)
    assert (attention >= 0).all()


def test_export_writes_a_model_onnx_runtime_loads(tiny_run: Path, tmp_path: Path) -> None:
    manifest = export(tiny_run / "best.pt", tmp_path, "tiny", "3")
    graph = onnx.load(str(tmp_path / "model.onnx"))
    assert graph.ir_version <= 10  # onnxruntime-gpu 1.31 refuses IR 14
    # Manifest round trip (JSON turns the tuples of the network config into lists).
    loaded = ModelManifest.load(tmp_path)  # sha256 verified
    assert loaded.model_dump(mode="json") == json.loads(manifest.model_dump_json())
    assert (loaded.num_frames, loaded.size, loaded.labels) == (8, (32, 32), list(synthetic.LABELS))
    # The architecture is looked up by name (models.registry), stored in the checkpoint and model.json.
    assert torch.load(tiny_run / "best.pt", weights_only=False)["architecture"] == "video_transformer"
    assert loaded.architecture == "video_transformer"
    assert manifest.metrics["parity_max_abs_diff"]["logits"] < 1e-4
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["logits", "attention", "embeddings"]
    for batch in (1, 5):  # the batch axis is dynamic
        x = np.random.default_rng(batch).standard_normal((batch, 8, 3, 32, 32)).astype(np.float32)
        logits, attention, embeddings = session.run(None, {"frames": x})
        assert logits.shape == (batch, 10) and embeddings.shape == (batch, 8, 32)
        assert np.allclose(attention.sum(1), 1, atol=1e-5)


def test_export_refuses_a_checkpoint_of_an_unknown_architecture(tiny_run: Path, tmp_path: Path) -> None:
    state = torch.load(tiny_run / "best.pt", weights_only=False)
    state["architecture"] = "no_such_net"
    torch.save(state, tmp_path / "other.pt")
    with pytest.raises(KeyError, match=r"unknown architecture .no_such_net.; registered: .*video_transformer"):
        export(tmp_path / "other.pt", tmp_path / "out", "x", "1")


def test_export_refuses_a_graph_that_disagrees_with_torch(tmp_path: Path) -> None:
    cfg = NetworkConfig(num_frames=8, height=32, width=32, dim=32, depth=1, heads=2)
    torch.manual_seed(1)
    exported = VideoTransformer(cfg).eval()
    export_onnx(exported, tmp_path / "model.onnx")
    check_parity(exported, tmp_path / "model.onnx", fp16=False)
    torch.manual_seed(2)
    other = VideoTransformer(cfg).eval()
    with pytest.raises(ExportError, match="logits differ"):
        check_parity(other, tmp_path / "model.onnx", fp16=False)


def test_manifest_rejects_a_tampered_model(tiny_run: Path, tmp_path: Path) -> None:
    export(tiny_run / "best.pt", tmp_path, "tiny", "1")
    with open(tmp_path / "model.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match="sha256"):
        ModelManifest.load(tmp_path)


# ---------------------------------------------------------------- the shipped default

@pytest.fixture(scope="module")
def shipped() -> tuple[ModelManifest, ort.InferenceSession]:
    manifest = ModelManifest.load(SHIPPED)
    session = ort.InferenceSession(str(SHIPPED / manifest.onnx_file), providers=["CPUExecutionProvider"])
    return manifest, session


@pytest.mark.parametrize("label", synthetic.LABELS)
def test_shipped_model_classifies_fresh_clips(shipped, label: str, tmp_path: Path) -> None:
    """Encoded files at sizes, rates and codecs of the task, never seen in training."""
    manifest, session = shipped
    codecs = [("libx264", "mp4"), ("mpeg4", "avi"), ("libx265", "matroska")]
    right = 0
    for k, (codec, container) in enumerate(codecs):
        seed = 900_000 + 97 * synthetic.LABELS.index(label) + k
        spec = synthetic.draw_spec(seed, label)
        path = tmp_path / f"{k}.{ {'mp4': 'mp4', 'avi': 'avi', 'matroska': 'mkv'}[container]}"
        synthetic.write_video(str(path), spec, codec, container, max_side=480)
        clip = F.sample_frames(path, manifest.num_frames, manifest.size, policy=manifest.resize)
        x = F.normalize(clip.frames, manifest.mean, manifest.std)[None]
        logits = session.run(["logits"], {"frames": x})[0][0]
        right += manifest.labels[int(np.argmax(logits))] == label
    assert right >= 2, f"{label}: {right}/3 right"


def test_export_recover_round_trip_keeps_the_graph(tiny_run: Path, tmp_path: Path) -> None:
    """models.from_onnx reads an export's weights back (folded BatchNorms included) and the network
    answers as the graph does; a network that does not fit the graph is refused."""
    from models.from_onnx import RecoveryError, recover

    export(tiny_run / "best.pt", tmp_path / "out", "tiny", "1")
    net, _ = recover(tmp_path / "out")  # raises when the logits differ by 1e-4 or more
    x = np.random.default_rng(5).standard_normal((2, 8, 3, 32, 32)).astype(np.float32)
    session = ort.InferenceSession(str(tmp_path / "out" / "model.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        got = [t.numpy() for t in net(torch.from_numpy(x))]
    for want, have in zip(session.run(None, {"frames": x}), got, strict=True):
        assert np.abs(want - have).max() < 1e-4
    doc = json.loads((tmp_path / "out" / "model.json").read_text())
    doc["network"]["dim"] = 48
    (tmp_path / "out" / "model.json").write_text(json.dumps(doc))
    with pytest.raises(RecoveryError, match="does not fit the network"):
        recover(tmp_path / "out")


def test_change_clips_train_on_both_labels_from_an_export(tiny_run: Path, tmp_path: Path) -> None:
    """--init fine-tunes an exported model; --change-share adds clips whose behaviour changes
    part-way, stored with both labels and the first one's share."""
    export(tiny_run / "best.pt", tmp_path / "init", "tiny", "1")
    args = build_parser().parse_args([
        "--out", str(tmp_path / "run"), "--train-size", "24", "--val-size", "8", "--epochs", "1",
        "--batch-size", "8", "--workers", "1", "--quiet", "--encoded-share", "0.3", "--change-share", "0.5",
        "--init", str(tmp_path / "init"), "--frames", "8", "--size", "32",
    ])
    metrics = train(args)
    assert metrics["steps"] == 3 and np.isfinite(metrics["history"][-1]["train_loss"])
    data = np.load(next((tmp_path / "run" / "cache").glob("synthetic-v3-*-0.5-0.0.npz")))
    changed = data["labels"] != data["labels2"]
    assert 4 <= changed.sum() <= 20  # about half of 24
    assert np.all((data["share"][changed] >= 0.1) & (data["share"][changed] <= 0.9))
    assert np.all(data["share"][~changed] == 1.0)
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert state["config"]["dim"] == 32  # the init's network, not the CLI's default 128


def test_a_change_clip_plays_its_two_behaviours_in_order() -> None:
    clip, first, second, share = synthetic.make_change_clip(11, 16, (64, 64), 0.0)
    assert first != second and 0.1 <= share <= 0.9
    # The two parts share the background and object, so they draw the same frame where the
    # first ends as a plain render of the first behaviour does there.
    a = replace(synthetic.draw_spec(11, synthetic.LABELS[first]), noise_sigma=0.0)  # no per-frame noise draws
    b = synthetic.second_spec(a, 12, synthetic.LABELS[second])
    seq = synthetic.Sequence([synthetic.Renderer(a), synthetic.Renderer(b)], [share, 1 - share])
    assert np.array_equal(seq.frame(0.0), synthetic.Renderer(a).frame(0.0))
    assert np.array_equal(seq.frame(share * 0.999), synthetic.Renderer(a).frame(0.999))
    assert np.array_equal(seq.frame(1.0), synthetic.Renderer(b).frame(1.0))
    assert (b.width, b.height, b.background, b.color) == (a.width, a.height, a.background, a.color)
    assert clip.shape == (16, 64, 64, 3)


def test_a_cropped_clip_shows_part_of_its_behaviour() -> None:
    """--crop-share clips: the behaviour's time from somewhere inside it, at least half of it."""
    spec = replace(synthetic.draw_spec(21, "move_right"), noise_sigma=0.0)
    whole = synthetic.Renderer(spec)
    part = synthetic.Sequence([synthetic.Renderer(spec)], [1.0], [(0.25, 0.75)])
    assert np.array_equal(part.frame(0.0), whole.frame(0.25))
    assert np.array_equal(part.frame(0.5), whole.frame(0.5))
    assert np.array_equal(part.frame(1.0), whole.frame(0.75))
    kinds = [synthetic.clip_kind(seed, 0.4, 0.5) for seed in range(400)]
    assert 0.3 < kinds.count("change") / 400 < 0.5 and 0.2 < kinds.count("crop") / 400 < 0.4
    clip, label = synthetic.make_cropped_clip(21, 16, (64, 64), 0.0)
    assert clip.shape == (16, 64, 64, 3) and synthetic.LABELS[label] == synthetic.LABELS[21 % 10]
