"""Inference cost figures: peak memory (named for what it measures) and throughput."""
from __future__ import annotations

import torch


def reset_peak(device: torch.device) -> None:
    """Start the measured window (GPU allocator peak, or the process's resident high-water mark)."""
    from ..sysinfo import reset_peak_memory

    reset_peak_memory(device)


def peak_memory(device: torch.device) -> tuple[str, float, str]:
    """``(column, MiB, mem_kind)``: GPU allocator peak on CUDA, else the process's peak resident set.

    The CPU figure is the process's peak resident set since :func:`reset_peak`, so it includes the
    model and data already loaded then; it is reported under ``peak_rss_MiB``, never as GPU memory.
    """
    from ..sysinfo import peak_memory as _peak

    mib, kind = _peak(device)
    return ("max_gpu_mem_MiB" if device.type == "cuda" else "peak_rss_MiB"), mib, kind
