"""A small U-Net that predicts, per pixel, the probability of lying in the shrunk core of a
text line (the DB idea without its threshold branch: receipts are high-contrast scans).

Input (B, 1, H, W) in [0, 1] with H, W multiples of 16; output logits (B, 1, H, W).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.detection.config import STRIDE_MULTIPLE
from models.detection.config import DetectorConfig as DetectorConfig  # re-exported: the trainers build from it


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class LineDetector(nn.Module):
    stride_multiple = STRIDE_MULTIPLE

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__()
        c = config.channels
        if len(c) != 4:
            raise ValueError("DetectorConfig.channels needs 4 levels (strides 2, 4, 8, 16)")
        self.config = config
        self.down = nn.ModuleList([_block(1, c[0], 2), _block(c[0], c[1], 2), _block(c[1], c[2], 2),
                                   _block(c[2], c[3], 2)])
        self.up = nn.ModuleList([_block(c[3] + c[2], c[2]), _block(c[2] + c[1], c[1]), _block(c[1] + c[0], c[0])])
        self.head = nn.Sequential(nn.Conv2d(c[0], c[0], 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(c[0], 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-1] % self.stride_multiple or images.shape[-2] % self.stride_multiple:
            raise ValueError(f"detector input sides must be multiples of {self.stride_multiple}, "
                             f"got {tuple(images.shape[-2:])}")
        skips = []
        x = images
        for block in self.down:
            x = block(x)
            skips.append(x)
        x = skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = block(torch.cat([F.interpolate(x, size=skip.shape[-2:], mode="nearest"), skip], 1))
        return F.interpolate(self.head(x), scale_factor=2, mode="bilinear", align_corners=False)


def build_detector(config: DetectorConfig) -> LineDetector:
    return LineDetector(config)
