"""Inference cost figures: peak memory (named for what it measures) and throughput."""
from __future__ import annotations

import torch


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> tuple[str, float, str]:
    """``(column, MiB, mem_kind)``: GPU allocator peak on CUDA, else the process's peak resident set.

    The CPU figure is the peak RSS of the whole process since it started (``getrusage``), so it
    includes loading the model and data; it is reported under ``peak_rss_MiB``, never as GPU memory.
    """
    from ..sysinfo import peak_memory as _peak

    mib, kind = _peak(device)
    return ("max_gpu_mem_MiB" if device.type == "cuda" else "peak_rss_MiB"), mib, kind
