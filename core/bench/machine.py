"""The machine a bench ran on: CPU model, cores, threads, allocator settings, versions, load.

Every result file carries this record, because CPU timings mean little without it: the thread
count, ``THP_MEM_ALLOC_ENABLE`` (transparent huge pages for large CPU allocations in PyTorch) and
the load from other processes all move the numbers.
"""
from __future__ import annotations

import os
import platform
import sys

from ..train.runfiles import now_iso

ALLOCATOR_ENV = ("THP_MEM_ALLOC_ENABLE", "PYTORCH_CUDA_ALLOC_CONF", "MALLOC_ARENA_MAX", "LD_PRELOAD",
                 "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def total_memory_gib() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def gpu_name() -> str | None:
    import torch

    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return f"{props.name} ({props.total_memory / 2**30:.0f} GiB)"


def describe(device: str, dtype: str, threads: int) -> dict:
    """A JSON-able record of the machine and settings of a run."""
    import torch

    import effx

    from ..sysinfo import git_commit

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    return {
        "date_utc": now_iso(),
        "host_cpu": cpu_model(),
        "cpu_cores_usable": cores,
        "memory_gib": round(total_memory_gib() or 0.0, 1),
        "threads": threads,
        "device": device,
        "gpu": gpu_name() if device == "cuda" else None,
        "dtype": dtype,
        "allocator_env": {k: os.environ.get(k, "") for k in ALLOCATOR_ENV},
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": sys.version.split()[0],
        "effx": effx.__version__,
        "git_commit": git_commit(),
        "platform": platform.platform(),
        "load_average_start": load_average(),
    }
