"""The video Transformer: per-frame CNN stem -> frame tokens -> temporal Transformer -> head.

Reads top to bottom; every hyperparameter is in `NetworkConfig`.

The stem keeps a coarse spatial grid and flattens it into the token instead of pooling it
away: motion classes are about *where* and *how big* the object is, which global pooling
would erase. The encoder is written out (rather than `nn.TransformerEncoderLayer`) so the
last layer can return its attention weights, which the service reports per frame.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from models.registry import register_architecture


@dataclass
class NetworkConfig:
    num_classes: int = 10
    num_frames: int = 16
    height: int = 64
    width: int = 64
    stem_channels: tuple[int, ...] = (16, 32, 64)  # each stage halves the resolution
    stem_convs: tuple[int, ...] = (1, 2, 2)  # 3x3 convs per stage (the first one strided)
    grid_channels: int = 16  # channels kept per cell of the final grid
    dim: int = 128
    depth: int = 3
    heads: int = 4
    mlp_ratio: float = 2.0
    dropout: float = 0.1
    # "none": the CNN stem below, trained from scratch; "efficientnet_lite0": pretrained
    # ImageNet blocks (models.backbone), frozen or fine-tuned.
    backbone: str = "none"
    backbone_blocks: int = 5
    freeze_backbone: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


class FrameStem(nn.Module):
    """[N, 3, H, W] frames -> [N, dim] tokens that still encode position and size."""

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c_out, convs in zip(cfg.stem_channels, cfg.stem_convs):
            for i in range(convs):
                layers += [
                    nn.Conv2d(c_in, c_out, 3, stride=2 if i == 0 else 1, padding=1, bias=False),
                    nn.BatchNorm2d(c_out),
                    nn.GELU(),
                ]
                c_in = c_out
        layers += [nn.Conv2d(c_in, cfg.grid_channels, 1)]
        self.convs = nn.Sequential(*layers)
        scale = 2 ** len(cfg.stem_channels)
        cells = (cfg.height // scale) * (cfg.width // scale)
        self.project = nn.Sequential(
            nn.Flatten(), nn.Linear(cfg.grid_channels * cells, cfg.dim), nn.LayerNorm(cfg.dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.convs(x))


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.out = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, S, D] -> (output [B, S, D], weights [B, heads, S, S])."""
        b, s, d = x.shape
        q, k, v = self.qkv(x).reshape(b, s, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        weights = torch.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1)
        y = (self.drop(weights) @ v).transpose(1, 2).reshape(b, s, d)
        return self.out(y), weights


class EncoderLayer(nn.Module):
    """Pre-norm Transformer encoder layer (batch first) that also returns its attention."""

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        hidden = int(cfg.dim * cfg.mlp_ratio)
        self.norm1 = nn.LayerNorm(cfg.dim)
        self.attn = SelfAttention(cfg.dim, cfg.heads, cfg.dropout)
        self.norm2 = nn.LayerNorm(cfg.dim)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.dim, hidden), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(hidden, cfg.dim)
        )
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, weights = self.attn(self.norm1(x))
        x = x + self.drop(y)
        x = x + self.drop(self.mlp(self.norm2(x)))
        return x, weights


class VideoTransformer(nn.Module):
    """frames [B, T, 3, H, W] -> logits [B, C], attention [B, T], embeddings [B, T, D]."""

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.backbone == "none":
            self.stem: nn.Module = FrameStem(cfg)
        else:
            from models.backbone import BackboneStem  # the pretrained wheels only when asked for

            self.stem = BackboneStem(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.time_embed = nn.Parameter(torch.zeros(1, cfg.num_frames + 1, cfg.dim))
        nn.init.trunc_normal_(self.time_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.num_classes)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, t = frames.shape[:2]
        return self.encode(self.stem(frames.flatten(0, 1)).reshape(b, t, -1))

    def encode(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Frame tokens [B, T, dim] -> the outputs (training on cached backbone features enters here)."""
        b = tokens.shape[0]
        x = torch.cat([self.cls_token.expand(b, -1, -1), tokens], dim=1) + self.time_embed
        weights = x.new_zeros(0)
        for layer in self.layers:
            x, weights = layer(x)
        x = self.norm(x)
        logits = self.head(x[:, 0])
        # The classification token's attention over the frame tokens, averaged over heads,
        # renormalized without its attention on itself so that each row sums to 1.
        cls_to_frames = weights.mean(dim=1)[:, 0, 1:]
        attention = cls_to_frames / cls_to_frames.sum(dim=-1, keepdim=True)
        return logits, attention, x[:, 1:]


@register_architecture("video_transformer")
def video_transformer(config: dict) -> VideoTransformer:
    fields = NetworkConfig.__dataclass_fields__
    return VideoTransformer(NetworkConfig(**{k: tuple(v) if isinstance(v, list) else v
                                             for k, v in config.items() if k in fields}))
