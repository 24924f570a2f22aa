"""Peak-memory measurement that can be trusted.

CPU: every configuration runs in a fresh process forked from an idle server that has imported
torch but never run a tensor op. That process first runs the same workload once at N=128, B=1 and
drops it (so code pages, thread pools and lazily initialised kernels are resident), then resets
the kernel's resident-set high-water mark (``VmHWM``) through ``/proc/self/clear_refs``; the
idle resident set is recorded as the *baseline*, and the peak reported is ``VmHWM - baseline``
("extra peak"), with the baseline reported beside it. A fresh process matters: in a long-lived one,
memory freed by an earlier configuration stays resident in the allocator's heap and is silently
reused, so later peaks would be under-counted.

CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus what was
allocated before the configuration was built.
"""
from __future__ import annotations

from ..procmem import hwm_mib, reset_hwm, rss_mib

__all__ = ["MIB", "PeakMeter", "hwm_mib", "reset_hwm", "rss_mib"]
MIB = 2**20


class PeakMeter:
    """Baseline and peak of one process on one device; ``extra()`` is peak minus baseline in MiB."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.baseline = 0.0

    def start(self) -> float:
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.baseline = torch.cuda.memory_allocated() / MIB
        else:
            if not reset_hwm():
                raise RuntimeError("cannot reset VmHWM via /proc/self/clear_refs; CPU peak memory unavailable")
            self.baseline = rss_mib() or 0.0
        return self.baseline

    def extra(self) -> float:
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() / MIB - self.baseline
        # the kernel's RSS counters are cached per thread (off by up to 64 pages each), so a phase that
        # allocates nothing can read a few hundred KiB under its baseline: no extra memory, not negative
        return max(0.0, (hwm_mib() or 0.0) - self.baseline)
