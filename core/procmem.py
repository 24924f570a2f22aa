"""The kernel's view of this process's memory on Linux: resident set and its high-water mark.

Read from ``/proc/<pid>/status``; every function returns ``None`` / ``False`` where /proc is missing.
"""
from __future__ import annotations

import re


def _status_kib(field: str, pid: int | str = "self") -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            text = fh.read()
    except OSError:
        return None
    m = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else None


def rss_mib(pid: int | str = "self") -> float | None:
    """Current resident set of a process in MiB (``None`` where /proc is unavailable)."""
    kib = _status_kib("VmRSS", pid)
    return None if kib is None else kib / 1024


def hwm_mib(pid: int | str = "self") -> float | None:
    """Resident high-water mark (peak RSS since start or the last :func:`reset_hwm`) in MiB."""
    kib = _status_kib("VmHWM", pid)
    return None if kib is None else kib / 1024


def reset_hwm() -> bool:
    """Reset this process's resident high-water mark to its current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False
