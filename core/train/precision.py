"""Numeric precision: fp32, bf16 autocast (CPU and GPU), fp16 autocast with dynamic loss scaling.

The rules, stated once here and applied by training, evaluation, prediction and the benches:

* **fp16 on CPU is refused** (:func:`check_fp16`): CPUs have no fast fp16 matrix-multiply kernels
  (no faster than fp32, far slower on some builds) while bf16 runs on AVX-512 BF16 / AMX units;
  use bf16 (or fp32) on CPU, fp16 only on a GPU (docs/BENCHMARKS.md has the measurements).
* **bf16 is recommended where the hardware has it** (:func:`bf16_supported`): a CPU whose flags
  include ``amx_bf16`` or ``avx512_bf16``, or a CUDA device with bf16 support; fp32 elsewhere.
  ``effx init`` writes that choice; inference (``effx eval`` / ``effx predict``) of a model trained
  in bf16 runs in bf16 there (:func:`inference_dtype`).
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from ..errors import ConfigError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}  # the one name -> dtype map
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def dtype_name(dtype: torch.dtype | None) -> str:
    """The config name of an autocast dtype (``None``: no autocast, fp32)."""
    return "fp32" if dtype is None else next(k for k, v in DTYPES.items() if v == dtype)


def check_fp16(dtype: str, device: str, key: str = "train.dtype") -> None:
    """The one fp16-on-CPU rule: refused, with the reason and the fix."""
    if dtype == "fp16" and device == "cpu":
        raise ConfigError(f"{key} fp16 on CPU is refused: CPUs have no fast fp16 matmul kernels (no faster than "
                          f"fp32, far slower on some builds); use bf16 on CPU (or fp32), fp16 only on a GPU")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The feature flags of this CPU (empty where /proc/cpuinfo is not readable)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def bf16_supported(device: str = "cpu", cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True where bf16 has fast kernels: AMX / AVX-512 BF16 CPUs, CUDA devices with bf16."""
    if device == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return bool(cpu_flags(cpuinfo) & set(BF16_CPU_FLAGS))


def recommended_dtype(device: str = "cpu", cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    return "bf16" if bf16_supported(device, cpuinfo) else "fp32"


def inference_dtype(train_dtype: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype of evaluation and prediction: the training dtype where the device runs it fast
    (bf16 on bf16 hardware, fp16 on CUDA), else None (fp32) - so a test-set score is computed like the
    validation scores during training."""
    if train_dtype == "bf16" and bf16_supported(device.type):
        return torch.bfloat16
    if train_dtype == "fp16" and device.type == "cuda":
        return torch.float16
    return None


class Precision:
    """Autocast context and (for fp16) the GradScaler; ``state_dict`` goes into checkpoints."""

    def __init__(self, dtype: str, device: torch.device) -> None:
        check_fp16(dtype, device.type)
        self.name = dtype
        self.device = device
        self.dtype = DTYPES[dtype]
        self.scaler = torch.amp.GradScaler(device.type, enabled=dtype == "fp16")

    def autocast(self):
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def state_dict(self) -> dict:
        return self.scaler.state_dict() if self.scaler.is_enabled() else {}

    def load_state_dict(self, state: dict) -> None:
        if state and self.scaler.is_enabled():
            self.scaler.load_state_dict(state)
