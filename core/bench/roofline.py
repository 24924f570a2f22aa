"""Matmul roofline: this machine's measured GEMM throughput and the encoder step's matmul FLOPs.

The achieved fraction of a training step is ``matmul_flops(step) / step_time / measured_gflops``.
FLOPs are counted analytically (2 per multiply-add): per layer the Q/K/V and output projections
``2*T*d*4d``, the MLP ``2*T*d*dff*2`` and, for exact attention, ``QK^T`` and ``PV``
``2 * 2*B*H*N^2*Dh``; backward costs twice the forward (gradients for both operands).
"""
from __future__ import annotations

import time

import torch

from ..train.precision import DTYPES


def encoder_step_flops(batch: int, n: int, d_model: int, n_layers: int, d_ff: int, exact_attention: bool) -> float:
    """Matmul FLOPs of one forward + backward of the encoder (the classifier head is negligible)."""
    tokens = batch * n
    dense = 2 * tokens * d_model * (4 * d_model + 2 * d_ff)  # qkv + out + fc1 + fc2
    attn = 2 * 2 * batch * n * n * d_model if exact_attention else 0  # QK^T + PV over all heads
    return 3.0 * n_layers * (dense + attn)


def matmul_gflops(size: int, dtype: str = "fp32", device: str = "cpu", reps: int = 5) -> float:
    """Best-of-``reps`` throughput of a ``size x size`` matmul, in GFLOP/s."""
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=gen).to(device, DTYPES[dtype]) for _ in range(2))
    torch.matmul(a, b)  # warm-up: thread pool, kernel selection
    best = float("inf")
    for _ in range(reps):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        torch.matmul(a, b)
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9


def measure(device: str, quick: bool) -> dict:
    """fp32 roofline (2048^3, the ceiling), plus fp32 / bf16 / fp16 at 512^3 (best of many: short
    kernels on a shared machine are often preempted) to show the fp16 gap on CPU."""
    big = 1024 if quick else 2048
    small = 512
    out = {"fp32_gflops": matmul_gflops(big, "fp32", device), "roofline_size": big}
    out["fp32_small_gflops"] = matmul_gflops(small, "fp32", device, reps=20)
    out["bf16_small_gflops"] = matmul_gflops(small, "bf16", device, reps=20)
    out["fp16_small_gflops"] = matmul_gflops(small, "fp16", device, reps=2 if device == "cpu" else 20)
    out["small_size"] = small
    return out
