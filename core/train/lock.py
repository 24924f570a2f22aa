"""One writer per experiment folder: an OS-level lock held for the whole run.

``pretrain`` / ``finetune`` take an exclusive ``flock`` on ``<experiment>/.lock`` before touching
anything and hold it until the process ends. The kernel drops the lock when its holder exits in any
way (``kill -9`` included), so a stale lock never blocks the next run; a second process started while
the first runs stops at once with one line naming the holder's PID. The file itself stays (deleting it
would let two processes lock two different files) and holds the last holder's PID and start time.
"""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from ..errors import EffxError
from .runfiles import now_iso

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: runs are not locked
    fcntl = None

LOCK_NAME = ".lock"


class ExperimentBusy(EffxError):
    """Another live process holds the experiment's lock."""


class ExperimentLock:
    """``with ExperimentLock(exp_dir, "pretrain/NAME"):`` - exclusive for the duration of the block."""

    def __init__(self, exp_dir: Path, label: str) -> None:
        self.path = Path(exp_dir) / LOCK_NAME
        self.label = label
        self.fd: int | None = None

    def acquire(self) -> None:
        if fcntl is None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _holder(fd)
            os.close(fd)
            raise ExperimentBusy(f"{self.label} is in use by {holder}; wait for it to finish or stop it, "
                                 f"then run again (one run per experiment folder at a time)") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": now_iso()}).encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None

    def __enter__(self) -> "ExperimentLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info.get("pid"):
        return "another process (it is starting)"
    return f"process {info['pid']} on {info.get('host', '?')} (started {info.get('started', '?')})"
