"""What a run records about its machine and software, and its peak memory."""
from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
from pathlib import Path

import torch

from . import __version__


def git_commit() -> str | None:
    """The commit of the effx source checkout (``-dirty`` for local changes); ``None`` for an installed
    wheel or where git is missing."""
    src = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10)
        dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def device_info(device: torch.device) -> dict:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return {"type": "cuda", "name": props.name, "memory_MiB": round(props.total_memory / 2**20)}
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    except (ValueError, OSError, AttributeError):
        mem = None
    return {"type": "cpu", "name": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "memory_MiB": round(mem) if mem else None}


def versions() -> dict:
    import datasets
    import tokenizers

    found = {
        "effx": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "tokenizers": tokenizers.__version__,
        "datasets": datasets.__version__,
        "numpy": __import__("numpy").__version__,
    }
    return {k: None if v is None else str(v) for k, v in found.items()}  # plain str (TorchVersion is a class)


def plugin_versions(registry) -> list[dict]:
    return [{"kind": e.kind, "name": e.name, "dist": e.dist, "version": e.version} for e in registry]


def run_info(seed: int, dtype: str, device: torch.device, registry, num_parameters: int, world: int) -> dict:
    return {
        "seed": seed,
        "dtype": dtype,
        "device": device_info(device),
        "world_size": world,
        "versions": versions(),
        "git_commit": git_commit(),
        "plugins": plugin_versions(registry),
        "num_parameters": num_parameters,
        "platform": platform.platform(),
        "argv": sys.argv,
    }


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak-memory window: what :func:`peak_memory` reports from now on is this run's.

    CUDA: the allocator's peak statistics are reset. CPU (Linux): the process's resident high-water
    mark (``VmHWM``) is reset to the current resident set, so an earlier, bigger run in the same
    process no longer shows through. The CPU figure still counts what the process holds at the
    reset (imports, data, memory an earlier run left resident); ``effx sweep`` therefore runs every
    experiment in a fresh process, where the figure equals that of a standalone run.
    """
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    from .procmem import reset_hwm

    reset_hwm()  # False where /proc/self/clear_refs is unavailable: the window is then the process's lifetime


MEMORY_COLUMNS = {"cuda_max_allocated": "max_gpu_mem_MiB", "cpu_rss": "peak_rss_MiB"}  # kind -> column name


def peak_memory(device: torch.device) -> tuple[float, str]:
    """Peak memory in MiB since the last :func:`reset_peak_memory` (else since the process started) and
    its kind: CUDA max allocated on GPU, process peak resident set on CPU (never reported as GPU memory:
    :data:`MEMORY_COLUMNS` names the column each kind is reported under)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    from .procmem import hwm_mib

    hwm = hwm_mib()
    if hwm is None:  # no /proc: the peak since the process started
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "cpu_rss"
    return hwm, "cpu_rss"
