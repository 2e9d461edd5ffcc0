"""The line detector's architecture config, apart from the network: serving on ONNX Runtime
reads it without importing torch."""
from __future__ import annotations

from dataclasses import asdict, dataclass

STRIDE_MULTIPLE = 16  # the detector's input sides must be multiples of this


@dataclass(frozen=True)
class DetectorConfig:
    channels: tuple[int, ...] = (8, 16, 32, 64)
    page_width: int = 768  # pages are resized to this width before detection

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DetectorConfig:
        return cls(**{**data, "channels": tuple(data["channels"])})
