"""A pretrained 2D CNN as the per-frame stem of the video Transformer (`--backbone efficientnet_lite0`).

The first `backbone_blocks` MBConv blocks of ImageNet-trained EfficientNet-Lite0 (from the
pinned wheels, models.efficientnet) turn each frame into a feature map; a 1x1 convolution
keeps `grid_channels` per cell and the grid is flattened into the frame's token, as the
seed stem does: the motion classes are about where and how big the object is, which global
pooling would erase. With the default 5 blocks the map has stride 8 and 40 channels, an
8x8 grid at 64 px, like the seed stem's.

`features` is the pretrained part and `head` the new one, so that training with a frozen
backbone can compute `features` once per clip and cache them (models.train).
"""

from __future__ import annotations

import torch
from torch import nn

from models.efficientnet import MEAN, STD, efficientnet_lite0

BACKBONES = ("efficientnet_lite0",)
# Output channels of EfficientNet-Lite0 after each of its 16 MBConv blocks, and their stride.
_LITE0_CHANNELS = (16, 24, 24, 40, 40, 80, 80, 80, 112, 112, 112, 192, 192, 192, 192, 320)
_LITE0_STRIDES = (2, 4, 4, 8, 8, 16, 16, 16, 16, 16, 16, 32, 32, 32, 32, 32)


def backbone_normalization(name: str) -> tuple[list[float], list[float]]:
    """Mean and std (after the 1/255 rescale) the backbone's weights were trained with."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}")
    return list(MEAN), list(STD)


class BackboneStem(nn.Module):
    """[N, 3, H, W] frames -> [N, dim] tokens, through pretrained EfficientNet-Lite0 blocks."""

    def __init__(self, cfg, pretrained: bool = True) -> None:  # cfg: models.network.NetworkConfig
        super().__init__()
        blocks = cfg.backbone_blocks
        if not 1 <= blocks <= len(_LITE0_CHANNELS):
            raise ValueError(f"backbone_blocks must be 1..{len(_LITE0_CHANNELS)}")
        net = efficientnet_lite0(pretrained)
        self.conv_stem, self.bn0, self.act = net._conv_stem, net._bn0, net._swish
        self.blocks = nn.ModuleList(net._blocks[:blocks])
        self.frozen = cfg.freeze_backbone
        if self.frozen:
            for p in self.pretrained_parameters():
                p.requires_grad_(False)
        stride = _LITE0_STRIDES[blocks - 1]
        cells = (cfg.height // stride) * (cfg.width // stride)
        self.head = nn.Sequential(
            nn.Conv2d(_LITE0_CHANNELS[blocks - 1], cfg.grid_channels, 1),
            nn.Flatten(), nn.Linear(cfg.grid_channels * cells, cfg.dim), nn.LayerNorm(cfg.dim),
        )

    def pretrained_parameters(self) -> list[nn.Parameter]:
        return [p for m in (self.conv_stem, self.bn0, self.blocks) for p in m.parameters()]

    def train(self, mode: bool = True) -> BackboneStem:
        super().train(mode)
        if self.frozen:  # frozen means frozen batch-norm statistics too
            for m in (self.conv_stem, self.bn0, self.blocks):
                m.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn0(self.conv_stem(x)))
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
