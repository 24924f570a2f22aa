"""What ``effx sweep`` prints while its jobs run: each job started / finished / failed, done/total, ETA.

The ETA is the mean duration of the jobs finished so far times the jobs still to start or finish,
divided by how many run at a time; it is only a guess until a few jobs have finished.
"""
from __future__ import annotations

import threading
import time
from typing import Callable


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class SweepProgress:
    """Thread-safe job events for ``total`` jobs run ``parallel`` at a time; lines go to ``log``."""

    def __init__(self, total: int, parallel: int, log: Callable[[str], None], clock=time.monotonic) -> None:
        self.total, self.parallel, self.log, self.clock = total, max(1, parallel), log, clock
        self.started: dict[str, float] = {}
        self.durations: list[float] = []
        self.failed = 0
        self._lock = threading.Lock()

    def start(self, job: str, log_path) -> None:
        with self._lock:
            self.started[job] = self.clock()
            self.log(f"[{self._done()}/{self.total} done] started {job} (log: {log_path})")

    def finish(self, job: str, code: int, log_path) -> None:
        with self._lock:
            took = self.clock() - self.started[job]
            self.durations.append(took)
            if code != 0:
                self.failed += 1
            what = "finished" if code == 0 else f"FAILED (exit {code}; see {log_path})"
            self.log(f"[{self._done()}/{self.total} done] {what} {job} in {_clock(took)}{self._eta()}")

    def _done(self) -> int:
        return len(self.durations)

    def eta_s(self) -> float | None:
        """Seconds until the last job ends, from the mean duration so far (None before the first ends)."""
        left = self.total - self._done()
        if not self.durations or left == 0:
            return None
        mean = sum(self.durations) / len(self.durations)
        return mean * left / min(self.parallel, left)

    def _eta(self) -> str:
        eta = self.eta_s()
        if eta is not None:
            return f"; about {_clock(eta)} left"
        return f"; all done, {self.failed} failed" if self._done() == self.total else ""
