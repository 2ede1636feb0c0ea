"""Train the video Transformer on synthetic motion clips or on a folder of videos.

    python -m models.train --out runs/motion                       # synthetic (the default model)
    python -m models.train --data /path/UCF101 --out runs/ucf --split-dir /path/ucfTrainTestlist

Clips are decoded once into a cache of uint8 arrays (`<out>/cache` by default), so epochs
after the first are not decode-bound. Validation runs every epoch; the last and the best
checkpoints are kept and `--resume` continues from the last. Metrics (loss, top-1,
per-class accuracy, confusion matrix) are printed and written to `<out>/metrics.json`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import multiprocessing as mp
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as nnf
from tqdm import tqdm

from models import jobs as workers_jobs
from models import synthetic
from models.backbone import backbone_normalization
from models.registry import build_network

MEAN = [0.45, 0.45, 0.45]
STD = [0.25, 0.25, 0.25]
CLIP_TIMEOUT_S = 30
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"}


@dataclass
class Dataset:
    clips: np.ndarray  # uint8 [N, T, H, W, 3]
    labels: np.ndarray  # int64 [N]
    # Clips that change behaviour part-way: the second label and the first one's share of the
    # clip (a one-behaviour clip: labels2 == labels, share 1). None: every clip is one behaviour.
    labels2: np.ndarray | None = None  # int64 [N]
    share: np.ndarray | None = None  # float32 [N]

    def targets(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """int64 [B, 2] labels and float32 [B] first-label weights of clips `idx`."""
        if self.labels2 is None or self.share is None:
            y = self.labels[idx]
            return np.stack([y, y], 1), np.ones(len(idx), np.float32)
        return np.stack([self.labels[idx], self.labels2[idx]], 1), self.share[idx].astype(np.float32)


# ---------------------------------------------------------------- synthetic data

def synthetic_cache_path(cache: Path, seed: int, count: int, frames: int, size: int, encoded_share: float,
                         change_share: float = 0.0, crop_share: float = 0.0) -> Path:
    """Where `synthetic_dataset` keeps one set; clip i of a set depends on (seed, i) alone."""
    if change_share or crop_share:
        return cache / (f"synthetic-v3-{seed}-{count}-{frames}-{size}-{encoded_share}-{change_share}"
                        f"-{crop_share}.npz")
    return cache / f"synthetic-v1-{seed}-{count}-{frames}-{size}-{encoded_share}.npz"


def synthetic_dataset(seed: int, count: int, frames: int, size: int, encoded_share: float,
                      workers: int, cache: Path, desc: str, change_share: float = 0.0,
                      crop_share: float = 0.0) -> Dataset:
    path = synthetic_cache_path(cache, seed, count, frames, size, encoded_share, change_share, crop_share)
    if path.exists():
        data = np.load(path)
        if "labels2" in data:
            return Dataset(data["clips"], data["labels"], data["labels2"], data["share"])
        return Dataset(data["clips"], data["labels"])
    jobs = [(seed * 1_000_003 + i, frames, size, encoded_share, change_share, crop_share) for i in range(count)]
    clips = np.empty((count, frames, size, size, 3), np.uint8)
    labels = np.empty(count, np.int64)
    labels2 = np.empty(count, np.int64)
    share = np.empty(count, np.float32)
    pool = mp.get_context("spawn").Pool(workers, initializer=workers_jobs.quiet_av)
    try:
        pending = [pool.apply_async(workers_jobs.synthetic_clip, (job,)) for job in jobs]
        for i, result in enumerate(tqdm(pending, desc=desc)):
            try:
                clips[i], labels[i], labels2[i], share[i] = result.get(timeout=CLIP_TIMEOUT_S)
            except mp.TimeoutError:
                # A codec library that stalls (seen rarely under load) must not stall the
                # whole run: render this clip without the codec instead.
                print(f"clip {i} timed out in its codec; rendering it unencoded", flush=True)
                clips[i], labels[i], labels2[i], share[i] = workers_jobs.synthetic_clip(
                    (*jobs[i][:3], 0.0, change_share, crop_share))
    finally:
        pool.terminate()
    cache.mkdir(parents=True, exist_ok=True)
    if not (change_share or crop_share):
        np.savez(path, clips=clips, labels=labels)
        return Dataset(clips, labels)
    np.savez(path, clips=clips, labels=labels, labels2=labels2, share=share)
    return Dataset(clips, labels, labels2, share)


# ---------------------------------------------------------------- folder (UCF101 layout)

def _group(path: Path) -> str:
    """UCF101 names clips v_<Class>_g<group>_c<clip>: clips of a group share a source video."""
    m = re.search(r"_g(\d+)_", path.name)
    return f"{path.parent.name}/{m.group(1)}" if m else str(path)


def folder_splits(root: Path, split_dir: Path | None, split: int, val_fraction: float,
                  seed: int) -> tuple[list[str], list[tuple[Path, int]], list[tuple[Path, int]]]:
    """(labels, train, val) from one subfolder per class, with optional UCF101 split lists."""
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not classes:
        raise SystemExit(f"{root} has no class subfolders (expected <root>/<class>/<video>)")
    index = {c: i for i, c in enumerate(classes)}
    videos = [(p, index[p.parent.name]) for c in classes for p in sorted((root / c).iterdir())
              if p.suffix.lower() in VIDEO_SUFFIXES]
    if split_dir is not None:
        def listed(name: str) -> set[str]:
            lines = (split_dir / name).read_text().split("\n")
            return {ln.split()[0].replace("\\", "/") for ln in lines if ln.strip()}
        train_names = listed(f"trainlist{split:02d}.txt")
        test_names = listed(f"testlist{split:02d}.txt")
        rel = {v: f"{v[0].parent.name}/{v[0].name}" for v in videos}
        return (classes, [v for v in videos if rel[v] in train_names],
                [v for v in videos if rel[v] in test_names])
    # No split lists: hold out whole groups so no source video is on both sides.
    groups = sorted({_group(p) for p, _ in videos})
    random.Random(seed).shuffle(groups)
    held = set(groups[: max(1, int(len(groups) * val_fraction))])
    return (classes, [v for v in videos if _group(v[0]) not in held],
            [v for v in videos if _group(v[0]) in held])


def folder_dataset(videos: list[tuple[Path, int]], frames: int, size: int, policy: str,
                   workers: int, cache: Path, desc: str) -> Dataset:
    stamp = "|".join(f"{p}:{p.stat().st_mtime_ns}:{y}" for p, y in videos)
    # v2: each video gives the clips /classify takes from it (models.sampling.plan_training_clips).
    key = hashlib.sha256(f"v2|{stamp}|{frames}|{size}|{policy}".encode()).hexdigest()[:16]
    path = cache / f"folder-{key}.npz"
    if path.exists():
        data = np.load(path)
        return Dataset(data["clips"], data["labels"])
    jobs = [(str(p), frames, size, policy) for p, _ in videos]
    clips, labels = [], []
    with mp.get_context("spawn").Pool(workers, initializer=workers_jobs.quiet_av) as pool:
        for (_, y), video_clips in tqdm(zip(videos, pool.imap(workers_jobs.folder_clip, jobs, chunksize=4)),
                                        total=len(jobs), desc=desc):
            if video_clips is not None:
                clips.extend(video_clips)
                labels.extend([y] * len(video_clips))
    if not clips:
        raise SystemExit("no video in the folder could be decoded")
    cache.mkdir(parents=True, exist_ok=True)
    data = Dataset(np.stack(clips), np.asarray(labels, np.int64))
    np.savez(path, clips=data.clips, labels=data.labels)
    return data


# ---------------------------------------------------------------- augmentation

def _swap_table(labels: list[str], pairs: list[tuple[str, str]]) -> torch.Tensor | None:
    if not all(a in labels and b in labels for a, b in pairs):
        return None
    table = torch.arange(len(labels))
    for a, b in pairs:
        table[labels.index(a)], table[labels.index(b)] = labels.index(b), labels.index(a)
    return table


class Augment:
    """Label-aware flips and time reversal (when the labels say how they change), colors.

    Mirroring a move_left clip makes a move_right clip; playing a grow clip backwards makes
    a shrink clip. For other label sets only label-preserving changes are applied.
    """

    def __init__(self, labels: list[str], motion: bool) -> None:
        self.hflip = _swap_table(labels, [("move_left", "move_right")]) if motion else None
        self.vflip = _swap_table(labels, [("move_up", "move_down")]) if motion else None
        self.reverse = _swap_table(labels, [("move_left", "move_right"), ("move_up", "move_down"),
                                            ("grow", "shrink"), ("fade_in", "fade_out")]) if motion else None

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x float [B, T, 3, H, W] in [0, 1]."""
        b, dev = x.shape[0], x.device
        x, y = x.clone(), y.clone()

        def pick(p: float) -> torch.Tensor:
            return torch.rand(b, device=dev) < p

        def swap(table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            return table.to(dev)[idx]

        m = pick(0.5)
        x[m] = x[m].flip(-1)
        if self.hflip is not None:
            y[m] = swap(self.hflip, y[m])
        if self.vflip is not None:
            m = pick(0.5)
            x[m] = x[m].flip(-2)
            y[m] = swap(self.vflip, y[m])
        if self.reverse is not None:
            m = pick(0.5)
            x[m] = x[m].flip(1)
            y[m] = swap(self.reverse, y[m])
        m = pick(0.5)  # channel permutation: colors carry no class
        if m.any():
            x[m] = x[m][:, :, torch.randperm(3, device=dev)]
        m = pick(0.15)
        x[m] = 1 - x[m]
        gain = torch.empty(b, 1, 1, 1, 1, device=dev).uniform_(0.7, 1.3)
        bias = torch.empty(b, 1, 1, 1, 1, device=dev).uniform_(-0.15, 0.15)
        x = (x - 0.5) * gain + 0.5 + bias
        x = x + torch.randn_like(x) * torch.empty(b, 1, 1, 1, 1, device=dev).uniform_(0, 0.03)
        return x.clamp(0, 1), y


def to_input(clips: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 [B, T, H, W, 3] -> float [B, T, 3, H, W] in [0, 1] (converted on `device`)."""
    return torch.from_numpy(clips).to(device).permute(0, 1, 4, 2, 3).float().div_(255)


def standardize(x: torch.Tensor, mean_: list[float] = MEAN, std_: list[float] = STD) -> torch.Tensor:
    mean = torch.tensor(mean_, device=x.device).view(1, 1, 3, 1, 1)
    std = torch.tensor(std_, device=x.device).view(1, 1, 3, 1, 1)
    return (x - mean) / std


# ---------------------------------------------------------------- evaluation

@torch.no_grad()
def evaluate(model: torch.nn.Module, data: Dataset, labels: list[str], batch_size: int = 128,
             mean: list[float] = MEAN, std: list[float] = STD) -> dict:
    model.eval()
    device = next(model.parameters()).device
    n = len(data.labels)
    confusion = np.zeros((len(labels), len(labels)), np.int64)
    total_loss = 0.0
    for i in range(0, n, batch_size):
        x = standardize(to_input(data.clips[i : i + batch_size], device), mean, std)
        y = torch.from_numpy(data.labels[i : i + batch_size]).to(device)
        logits = model(x)[0]
        total_loss += float(nnf.cross_entropy(logits, y, reduction="sum"))
        for t, p in zip(y.tolist(), logits.argmax(1).tolist()):
            confusion[t, p] += 1
    per_class = {labels[c]: float(confusion[c, c] / max(1, confusion[c].sum())) for c in range(len(labels))}
    return {
        "loss": total_loss / max(1, n),
        "top1": float(np.trace(confusion) / max(1, n)),
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "count": n,
    }


# ---------------------------------------------------------------- training

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="synthetic", help="'synthetic' or a folder: <root>/<class>/<video>")
    p.add_argument("--split-dir", type=Path, help="folder with UCF101 trainlistNN.txt/testlistNN.txt")
    p.add_argument("--split", type=int, default=1)
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--out", type=Path, required=True, help="run folder: checkpoints, metrics, cache")
    p.add_argument("--cache", type=Path, help="decoded-clip cache folder (default <out>/cache)")
    p.add_argument("--train-size", type=int, default=12000, help="synthetic training clips")
    p.add_argument("--val-size", type=int, default=1000, help="synthetic validation clips")
    p.add_argument("--encoded-share", type=float, default=0.15, help="synthetic clips passed through a codec")
    p.add_argument("--change-share", type=float, default=0.0,
                   help="synthetic training clips whose behaviour changes part-way (target: both labels, "
                   "weighted by their share of the clip); validation stays one behaviour per clip")
    p.add_argument("--crop-share", type=float, default=0.0,
                   help="synthetic training clips (and parts of change clips) that show only 50-100%% of "
                   "their behaviour's time, as a timeline's candidate segments do")
    p.add_argument("--init", type=Path,
                   help="start from an exported model directory's weights (models.from_onnx), e.g. "
                   "models/motion to fine-tune the shipped model; its network config replaces --dim etc.")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--resize", choices=["stretch", "shorter_side_crop", "letterbox"], default="stretch")
    p.add_argument("--architecture", default="video_transformer",
                   help="network, by its models.registry name (stored in the checkpoint and model.json)")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--backbone", choices=["none", "efficientnet_lite0"], default="none",
                   help="per-frame stem: 'none' (trained from scratch) or pretrained ImageNet blocks")
    p.add_argument("--freeze-backbone", action="store_true",
                   help="keep the pretrained blocks fixed; their features are computed once and cached")
    p.add_argument("--backbone-blocks", type=int, default=5, help="pretrained MBConv blocks used (5: stride 8)")
    p.add_argument("--backbone-lr-scale", type=float, default=0.1,
                   help="learning rate of the pretrained blocks, relative to --lr (fine-tuning)")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: no limit)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="processes that decode/generate clips")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    p.add_argument("--eval-every", type=int, default=1,
                   help="validate and checkpoint every N epochs (and after the last)")
    p.add_argument("--device", default="cpu", help="torch device to train on: cpu, cuda, cuda:1, ...")
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def load_data(args: argparse.Namespace) -> tuple[list[str], Dataset, Dataset, bool]:
    cache = args.cache or args.out / "cache"
    if args.data == "synthetic":
        labels = list(synthetic.LABELS)
        train = synthetic_dataset(args.seed, args.train_size, args.frames, args.size,
                                  args.encoded_share, args.workers, cache, "generate train", args.change_share,
                                  args.crop_share)
        val = synthetic_dataset(args.seed + 7919, args.val_size, args.frames, args.size,
                                args.encoded_share, args.workers, cache, "generate val")
        return labels, train, val, True
    root = Path(args.data)
    if not root.is_dir():
        raise SystemExit(f"--data {root}: not a folder (use 'synthetic' or a UCF101-style folder)")
    labels, train_videos, val_videos = folder_splits(root, args.split_dir, args.split,
                                                     args.val_fraction, args.seed)
    train = folder_dataset(train_videos, args.frames, args.size, args.resize, args.workers, cache, "decode train")
    val = folder_dataset(val_videos, args.frames, args.size, args.resize, args.workers, cache, "decode val")
    return labels, train, val, False


def param_groups(model: torch.nn.Module, args: argparse.Namespace) -> list[dict]:
    """AdamW groups: decay on matrices only; pretrained blocks (fine-tuning) at a lower rate."""
    pretrained = {id(p) for p in model.stem.pretrained_parameters()} if args.backbone != "none" else set()
    groups: dict[tuple[bool, bool], list] = {}
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decays = p.ndim > 1 and "embed" not in n and "token" not in n
        groups.setdefault((decays, id(p) in pretrained), []).append(p)
    return [{"params": ps, "weight_decay": args.weight_decay if decays else 0.0,
             "lr": args.lr * (args.backbone_lr_scale if is_pretrained else 1.0)}
            for (decays, is_pretrained), ps in groups.items()]


@torch.no_grad()
def backbone_features(model: torch.nn.Module, data: Dataset, mean: list[float], std: list[float],
                      batch_size: int = 32) -> torch.Tensor:
    """The frozen blocks' feature maps of every training clip, once: float16 [N, T, C, h, w]."""
    model.stem.eval()
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(data.labels), batch_size):
        x = standardize(to_input(data.clips[i : i + batch_size], device), mean, std)
        f = model.stem.features(x.flatten(0, 1))
        out.append(f.reshape(x.shape[0], x.shape[1], *f.shape[1:]).half())
    return torch.cat(out)


def cached_forward(model: torch.nn.Module, cached: torch.Tensor, idx: np.ndarray, targets: np.ndarray,
                   augment: Augment) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits from cached features of clips `idx` (their labels: `targets`, [B] or [B, 2]). Of the
    augmentations only time reversal (with its label swap) applies to features: flips and color
    changes would need the pixels."""
    f = cached[torch.from_numpy(idx).to(cached.device)].float()
    y = torch.from_numpy(targets).to(cached.device)
    if augment.reverse is not None:
        m = torch.rand(len(idx), device=cached.device) < 0.5
        f[m] = f[m].flip(1)
        y[m] = augment.reverse.to(cached.device)[y[m]]
    b, t = f.shape[:2]
    tokens = model.stem.head(f.flatten(0, 1)).reshape(b, t, -1)
    return model.encode(tokens)[0], y


def train(args: argparse.Namespace) -> dict:
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    labels, train_data, val_data, motion = load_data(args)
    data_s = time.perf_counter() - started

    config = {"num_classes": len(labels), "num_frames": args.frames, "height": args.size, "width": args.size,
              "dim": args.dim, "depth": args.depth, "heads": args.heads}
    if args.backbone != "none":
        config |= {"backbone": args.backbone, "backbone_blocks": args.backbone_blocks,
                   "freeze_backbone": args.freeze_backbone}
    device = torch.device(args.device)
    if args.init:
        from models.from_onnx import recover

        model, manifest = recover(args.init)
        if manifest["labels"] != labels or manifest["num_frames"] != args.frames or manifest["height"] != args.size:
            raise SystemExit(f"--init {args.init}: its labels, frames or size differ from this run's")
        args.architecture = manifest.get("architecture") or args.architecture
        model = model.to(device)
    else:
        model = build_network(args.architecture, config).to(device)
    if hasattr(model, "cfg"):
        config = model.cfg.to_dict()  # the architecture's full config, defaults included
    mean, std = (MEAN, STD) if args.backbone == "none" else backbone_normalization(args.backbone)
    optimizer = torch.optim.AdamW(param_groups(model, args), lr=args.lr)
    steps_per_epoch = math.ceil(len(train_data.labels) / args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    if args.max_steps:
        total_steps = min(total_steps, args.max_steps)
    warmup = max(1, min(300, total_steps // 10))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total_steps)))
    )
    augment = Augment(labels, motion)
    cached, cache_s = None, 0.0
    if args.backbone != "none" and args.freeze_backbone:
        t0 = time.perf_counter()
        cached = backbone_features(model, train_data, mean, std)
        cache_s = time.perf_counter() - t0
        print(f"backbone features of {len(train_data.labels)} clips cached in {cache_s:.0f}s", flush=True)
    history: list[dict] = []
    start_epoch, step, best = 0, 0, -1.0
    last_path, best_path = args.out / "last.pt", args.out / "best.pt"
    if args.resume and last_path.exists():
        state = torch.load(last_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, step, best, history = state["epoch"] + 1, state["step"], state["best"], state["history"]
        torch.set_rng_state(state["rng"].cpu())
        print(f"resumed from {last_path} at epoch {start_epoch}")

    rng = np.random.default_rng(args.seed)
    for _ in range(start_epoch):
        rng.permutation(len(train_data.labels))  # keep the shuffle sequence of an uninterrupted run
    train_s, epochs_run = 0.0, 0
    for epoch in range(start_epoch, args.epochs):
        if args.max_steps and step >= args.max_steps:
            break
        epoch_start = time.perf_counter()
        model.train()
        if args.init:
            from models.from_onnx import freeze_batchnorm

            freeze_batchnorm(model)  # its BatchNorms were folded away at export: no statistics to update
        order = rng.permutation(len(train_data.labels))
        losses = []
        bar = tqdm(range(0, len(order), args.batch_size), desc=f"epoch {epoch + 1}/{args.epochs}",
                   disable=args.quiet, leave=False)
        for i in bar:
            idx = np.sort(order[i : i + args.batch_size])
            pairs, share = train_data.targets(idx)
            if cached is not None:
                logits, y = cached_forward(model, cached, idx, pairs, augment)
            else:
                x, y = augment(to_input(train_data.clips[idx], device), torch.from_numpy(pairs).to(device))
                logits = model(standardize(x, mean, std))[0]
            # Both labels of a clip that changes behaviour, weighted by their share (augmentation
            # swaps a label with its mirror or reverse and keeps the weights with the labels).
            w = torch.from_numpy(share).to(logits.device)
            loss = (w * nnf.cross_entropy(logits, y[:, 0], label_smoothing=0.05, reduction="none")
                    + (1 - w) * nnf.cross_entropy(logits, y[:, 1], label_smoothing=0.05, reduction="none")).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}", lr=f"{scheduler.get_last_lr()[0]:.1e}")
            if args.max_steps and step >= args.max_steps:
                break
        train_s += time.perf_counter() - epoch_start
        epochs_run += 1
        if (epoch + 1) % args.eval_every and epoch + 1 < args.epochs:
            continue  # validation (and the checkpoints it decides) every --eval-every epochs and the last
        val = evaluate(model, val_data, labels, mean=mean, std=std)
        record = {"epoch": epoch + 1, "step": step, "train_loss": float(np.mean(losses)),
                  "val_loss": val["loss"], "val_top1": val["top1"], "seconds": time.perf_counter() - epoch_start}
        history.append(record)
        print(f"epoch {epoch + 1}: train loss {record['train_loss']:.4f}  val loss {val['loss']:.4f}  "
              f"val top-1 {val['top1']:.4f}  ({record['seconds']:.0f}s)", flush=True)
        # Weights on the CPU: the checkpoint exports and resumes wherever it is opened.
        state = {"model": {k: v.cpu() for k, v in model.state_dict().items()}, "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "epoch": epoch, "step": step, "history": history,
                 "best": max(best, val["top1"]), "rng": torch.get_rng_state(), "config": config,
                 "architecture": args.architecture,
                 "labels": labels, "mean": mean, "std": std, "resize": args.resize, "val": val,
                 "args": {k: str(v) for k, v in vars(args).items()}}
        torch.save(state, last_path)
        if val["top1"] > best:
            best = val["top1"]
            torch.save(state, best_path)

    final = torch.load(best_path, map_location="cpu", weights_only=False) if best_path.exists() else None
    metrics = {
        "data": args.data, "train_clips": int(len(train_data.labels)), "val_clips": int(len(val_data.labels)),
        "epochs": start_epoch + epochs_run, "steps": step, "data_seconds": round(data_s, 1),
        "train_seconds": round(train_s, 1), "feature_cache_seconds": round(cache_s, 1),
        "seconds_per_clip": round((train_s + cache_s) / max(1, len(train_data.labels) * epochs_run), 5),
        "backbone": args.backbone, "freeze_backbone": args.freeze_backbone, "history": history,
        "best_val": final["val"] if final else None,
        "final_val_top1": history[-1]["val_top1"] if history else None,
    }
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if final:
        v = final["val"]
        print(f"best val top-1 {v['top1']:.4f} (loss {v['loss']:.4f}) over {v['count']} clips")
        print("per class: " + ", ".join(f"{k} {a:.3f}" for k, a in v["per_class"].items()))
    return metrics


def main(argv: list[str] | None = None) -> None:
    train(build_parser().parse_args(argv))


if __name__ == "__main__":
    main()
