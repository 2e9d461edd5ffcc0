"""The recognizer's architecture config, apart from the network: serving on ONNX Runtime
reads it without importing torch."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class CRNNConfig:
    num_classes: int
    input_height: int = 32
    channels: tuple[int, ...] = (32, 64, 96, 96, 160, 160)
    lstm_hidden: int = 128
    lstm_layers: int = 2
    dropout: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CRNNConfig:
        return cls(**{**data, "channels": tuple(data["channels"])})
