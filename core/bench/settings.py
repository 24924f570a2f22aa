"""What one ``effx bench`` run measures: sizes, caps, dtype and device, validated at the edge.

fp16 on CPU is refused by the one rule of :mod:`effx.train.precision` (the roofline check in
``machine.json`` records this machine's fp16 and bf16 matmul rates).
"""
from __future__ import annotations

from typing import Literal, Optional

import attrs

from ..errors import ConfigError

DEFAULT_SEQ_LENS = (512, 1024, 2048, 4096, 8192, 16384)
QUICK_SEQ_LENS = (128, 256)


@attrs.frozen
class BenchSettings:
    """One bench run. ``step_tokens`` fixes tokens per training step: batch = step_tokens // N."""

    seq_lens: tuple[int, ...] = DEFAULT_SEQ_LENS
    types: Optional[tuple[str, ...]] = None  # None = every registered attention type
    mode: Literal["layer", "step", "both"] = "both"
    dtype: Literal["fp32", "bf16", "fp16"] = "fp32"
    device: Literal["cpu", "cuda"] = "cpu"
    batch: int = 1
    heads: int = 4
    head_dim: int = 64
    reps: int = 3
    warmup: int = 1
    min_time_s: float = 1.0  # short configurations repeat until their timed runs add up to this
    mem_cap_gib: float = 6.0
    time_cap_s: float = 20.0
    peers: bool = True
    threads: int = 0  # 0 = torch's default
    step_tokens: int = 16384  # tokens per training step (32 x 512 at N = 512)
    d_model: int = 256
    n_layers: int = 4
    d_ff: int = 1024
    fidelity_rows: int = 256  # query rows compared with exact attention
    qk_std: float = 1.0  # std of the layer suite's q and k entries (logits q.k/sqrt(Dh) have std qk_std^2)
    positional: Optional[str] = None  # step suite's positional encoding; None = a config's default

    def step_batch(self, n: int) -> int:
        return max(1, self.step_tokens // n)


def parse_int_list(text: str, what: str) -> tuple[int, ...]:
    """``"512,1024"`` -> ``(512, 1024)``; anything else is a one-line error."""
    try:
        values = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise ConfigError(f"--{what}: expected comma-separated integers like 512,1024, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise ConfigError(f"--{what}: expected positive integers, got {text!r}")
    return tuple(sorted(set(values)))


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is visible to torch; use --device cpu")
    return device


def check_dtype(dtype: str, device: str) -> None:
    """fp16 on CPU is refused (:func:`effx.train.precision.check_fp16`); bf16 is the CPU low-precision dtype."""
    from ..train.precision import check_fp16

    check_fp16(dtype, device, key="--dtype")


def validate(s: BenchSettings) -> BenchSettings:
    check_dtype(s.dtype, s.device)
    for name in ("batch", "heads", "head_dim", "reps", "step_tokens", "d_model", "n_layers"):
        if getattr(s, name) <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {getattr(s, name)}")
    if s.min_time_s < 0:
        raise ConfigError(f"--min-time-s must be >= 0, got {s.min_time_s}")
    if s.mem_cap_gib <= 0 or s.time_cap_s <= 0:
        raise ConfigError("--mem-cap-gib and --time-cap-s must be positive")
    if s.d_model % s.heads:
        raise ConfigError(f"d_model {s.d_model} is not divisible by --heads {s.heads}")
    return s
