"""Hand freed heap memory back to the operating system between batches (glibc ``malloc_trim``).

Batches of varying shape (length-sorted inference, the packed real tokens of every batch) leave
glibc's allocator holding freed blocks of every size it has served, so a long CPU evaluation grows
its resident set with the number of batches although each batch needs the same bounded memory -
enough to be killed by the kernel on a 25k-review test set. :class:`HeapTrimmer`, checked after each
training step or inference batch, returns those blocks whenever the resident set has grown by a
margin (trimming after every batch costs more time than it saves memory). Where the C library has no ``malloc_trim`` (macOS, Windows, musl) this does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Callable, Optional

from .procmem import rss_mib


@functools.cache
def _malloc_trim() -> Optional[Callable[[int], int]]:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return getattr(libc, "malloc_trim", None)


def release_free_memory() -> bool:
    """Return the allocator's free heap pages to the OS; ``True`` when the C library supports it."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


class HeapTrimmer:
    """Call after each step or batch: trims once the resident set has grown by ``slack_mib`` since the
    last trim, so the cost (pages the next batch faults in again) is paid only when memory piles up."""

    def __init__(self, slack_mib: float = 512.0) -> None:
        self.slack_mib = slack_mib
        self.floor_mib = rss_mib() or 0.0
        self.trims = 0

    def __call__(self) -> bool:
        rss = rss_mib()
        if rss is None or rss - self.floor_mib < self.slack_mib or not release_free_memory():
            return False
        self.trims += 1
        self.floor_mib = rss_mib() or rss
        return True
