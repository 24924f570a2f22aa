"""Numeric precision: fp32, bf16 autocast (CPU and GPU), fp16 autocast with dynamic loss scaling.

fp16 on CPU runs, but CPUs have no fast fp16 matrix-multiply kernels: measured on the project's
Xeon with torch 2.13, fp16 ran at 0.85-0.93x the fp32 speed (~400x slower has been reported on
other builds), while bf16 autocast ran the encoder training step 1.5-2.5x faster than fp32
(docs/BENCHMARKS.md). So fp16 on CPU is allowed only with a warning; use bf16 on CPU instead.
"""
from __future__ import annotations

import contextlib

import torch

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
CPU_FP16_WARNING = ("train.dtype fp16 on CPU: CPUs have no fast fp16 matmul kernels (no faster than fp32, "
                    "up to ~400x slower on some builds), while bf16 autocast trains 1.5-2.5x faster than fp32 "
                    "(docs/BENCHMARKS.md); use train.dtype bf16 (or fp32) on CPU, fp16 only on a GPU")


class Precision:
    """Autocast context and (for fp16) the GradScaler; ``state_dict`` goes into checkpoints."""

    def __init__(self, dtype: str, device: torch.device) -> None:
        self.name = dtype
        self.device = device
        self.dtype = _DTYPES[dtype]
        self.scaler = torch.amp.GradScaler(device.type, enabled=dtype == "fp16")

    @property
    def warning(self) -> str | None:
        return CPU_FP16_WARNING if self.name == "fp16" and self.device.type == "cpu" else None

    def autocast(self):
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def state_dict(self) -> dict:
        return self.scaler.state_dict() if self.scaler.is_enabled() else {}

    def load_state_dict(self, state: dict) -> None:
        if state and self.scaler.is_enabled():
            self.scaler.load_state_dict(state)
