"""CRNN: a VGG-style CNN that turns a 32-px-high line into a sequence of column features,
a BiLSTM over that sequence, and a per-step classifier trained with CTC.

Built from an explicit config; the builder is the one way to make one.
"""
from __future__ import annotations

import torch
from torch import nn

from models.recognition.config import CRNNConfig as CRNNConfig  # re-exported: the trainer builds from it


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class CRNN(nn.Module):
    """Input (B, 1, 32, W) in [0, 1]; output log-probabilities (T=W/4, B, classes)."""

    width_stride = 4

    def __init__(self, config: CRNNConfig) -> None:
        super().__init__()
        if config.input_height != 32:
            raise ValueError("this CNN is laid out for 32-px-high lines")
        c = config.channels
        self.config = config
        self.features = nn.Sequential(
            *_conv(1, c[0]), nn.MaxPool2d(2, 2),                 # 16 x W/2
            *_conv(c[0], c[1]), nn.MaxPool2d(2, 2),              # 8 x W/4
            *_conv(c[1], c[2]), *_conv(c[2], c[3]), nn.MaxPool2d((2, 1), (2, 1)),  # 4 x W/4
            *_conv(c[3], c[4]), *_conv(c[4], c[5]), nn.MaxPool2d((2, 1), (2, 1)),  # 2 x W/4
            nn.Conv2d(c[5], c[5], (2, 1), bias=False), nn.BatchNorm2d(c[5]), nn.ReLU(inplace=True),  # 1 x W/4
        )
        self.dropout = nn.Dropout(config.dropout)
        self.rnn = nn.LSTM(c[5], config.lstm_hidden, num_layers=config.lstm_layers, bidirectional=True,
                           dropout=config.dropout if config.lstm_layers > 1 else 0.0)
        self.classifier = nn.Linear(2 * config.lstm_hidden, config.num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.features(images)            # B, C, 1, T
        sequence = features.squeeze(2).permute(2, 0, 1)  # T, B, C
        sequence, _ = self.rnn(self.dropout(sequence))
        return self.classifier(self.dropout(sequence)).log_softmax(-1)


def build_crnn(config: CRNNConfig) -> CRNN:
    return CRNN(config)
