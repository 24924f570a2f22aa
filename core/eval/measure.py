"""Inference cost figures: peak memory (named for what it measures) and throughput."""
from __future__ import annotations

import resource

import torch


def pick_device(choice: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a clear error."""
    from ..errors import EffxError

    if choice == "cuda" and not torch.cuda.is_available():
        raise EffxError("train.device is 'cuda' but no CUDA GPU is visible; set train.device: cpu or auto")
    if choice == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> tuple[str, float, str]:
    """``(column, MiB, mem_kind)``: GPU allocator peak on CUDA, else the process's peak resident set.

    The CPU figure is the peak RSS of the whole process since it started (``getrusage``), so it
    includes loading the model and data; it is reported under ``peak_rss_MiB``, never as GPU memory.
    """
    if device.type == "cuda":
        return "max_gpu_mem_MiB", torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    return "peak_rss_MiB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "cpu_rss"
