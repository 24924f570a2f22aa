"""The files every run writes into its experiment folder, all written atomically or append-only.

* ``metrics.csv`` - long format, one row per (step, split): see :func:`metric_columns` (one column per
  registered metric);
* ``events.jsonl`` - one JSON object per line ``{"time", "event", "step", ...}``;
* ``status.json`` - ``{"status": running|finished|failed|interrupted, "cause", "step", "epoch", "updated"}``;
* ``run_info.json`` - seed, dtype, device, versions, git commit, plugins, parameter count;
* ``logs/train.log`` - the human-readable log (warnings such as a re-initialised head go here).

On resume from step ``S``, rows of ``metrics.csv`` and lines of ``events.jsonl`` after ``S`` (written by
the interrupted run after its last usable checkpoint) are dropped, as is a line cut short by a kill.
Warnings also go to the console; errors do not (the caller reports the exception that ends the run).
"""
from __future__ import annotations

import csv
import errno
import io
import json
import logging
import math
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..atomic import write_bytes as atomic_write_bytes  # noqa: F401  (used across effx.train)
from ..atomic import append_text, write_json  # noqa: F401  (write_json: used across effx.train)
from ..atomic import write_text as atomic_write_text

LEADING_COLUMNS = ("step", "epoch", "split", "loss", "lr")
TRAILING_COLUMNS = ("tokens_per_s", "time_per_step_s", "time_per_epoch_s", "peak_mem_MiB", "mem_kind", "grad_norm",
                    "wall_s")


def metric_columns(metric_names) -> list[str]:
    """The ``metrics.csv`` header: bookkeeping columns around one column per metric."""
    return [*LEADING_COLUMNS, *metric_names, *TRAILING_COLUMNS]


def metrics_in(columns) -> list[str]:
    """The metric columns of a ``metrics.csv`` header (everything but the bookkeeping columns)."""
    return [c for c in columns if c not in LEADING_COLUMNS + TRAILING_COLUMNS]
STATUSES = ("running", "finished", "failed", "interrupted")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


class RunFiles:
    """Writer for one experiment folder. Only the main process (rank 0) writes."""

    def __init__(self, exp_dir: Path, enabled: bool = True, metric_names=()) -> None:
        self.dir = Path(exp_dir)
        self.enabled = enabled
        self.columns = metric_columns(metric_names)
        self.metrics_path = self.dir / "metrics.csv"
        self.events_path = self.dir / "events.jsonl"
        self.status_path = self.dir / "status.json"
        self.log = logging.getLogger(f"effx.run.{self.dir.name}.{id(self)}")
        self.log.setLevel(logging.INFO)
        self.log.propagate = False
        self._start = time.time()
        self._wall_before = 0.0  # wall_s already spent by the runs this one resumes

    # ------------------------------------------------------------------ setup
    def open(self, resume_step: int | None) -> None:
        """Prepare files; on resume drop metrics/events rows written after ``resume_step``."""
        if not self.enabled:
            return
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.dir / "logs" / "train.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        self.log.addHandler(handler)
        console = logging.StreamHandler()  # warnings are also shown on the console
        console.setLevel(logging.WARNING)
        console.addFilter(lambda record: record.levelno < logging.ERROR)  # the raised error is printed once
        console.addFilter(lambda record: not getattr(record, "file_only", False))
        console.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        self.log.addHandler(console)
        if resume_step is None:
            for p in (self.metrics_path, self.events_path):
                p.unlink(missing_ok=True)
        else:
            self._truncate_metrics(resume_step)
            self._truncate_events(resume_step)
            self._wall_before = self._last_wall()
        if not self.metrics_path.exists():
            atomic_write_text(self.metrics_path, ",".join(self.columns) + "\n")

    def _truncate_metrics(self, step: int) -> None:
        if not self.metrics_path.exists():
            return
        with open(self.metrics_path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = [r for r in reader  # a row cut short by a kill has missing cells: dropped
                    if None not in r.values() and r.get("step") and int(r["step"]) <= step]
        kept = metrics_in(reader.fieldnames or [])  # a metric of the interrupted run keeps its column
        self.columns = metric_columns(dict.fromkeys([*kept, *metrics_in(self.columns)]))
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self.columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.metrics_path, out.getvalue())

    def _truncate_events(self, step: int) -> None:
        if not self.events_path.exists():
            return
        kept = []
        for line in self.events_path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # cut short by a kill
            if isinstance(rec, dict) and int(rec.get("step") or 0) <= step:
                kept.append(line + "\n")
        atomic_write_text(self.events_path, "".join(kept))
    def _last_wall(self) -> float:
        """The largest ``wall_s`` among the kept metrics rows (0 without any)."""
        if not self.metrics_path.exists():
            return 0.0
        with open(self.metrics_path, newline="", encoding="utf-8") as fh:
            walls = [float(r["wall_s"]) for r in csv.DictReader(fh) if r.get("wall_s")]
        return max(walls, default=0.0)

    def close(self) -> None:
        for h in list(self.log.handlers):
            h.close()
            self.log.removeHandler(h)

    # ------------------------------------------------------------------ writers
    def metric(self, row: dict) -> None:
        if not self.enabled:
            return
        unknown = set(row) - set(self.columns)
        assert not unknown, f"unknown metric columns {unknown}"
        row = {**row, "wall_s": round(self._wall_before + time.time() - self._start, 3)}
        out = io.StringIO()
        csv.DictWriter(out, fieldnames=self.columns, lineterminator="\n").writerow({k: _cell(row.get(k)) for k in self.columns})
        append_text(self.metrics_path, out.getvalue())

    def event(self, event: str, step: int, **fields: Any) -> None:
        if not self.enabled:
            return
        rec = {"time": now_iso(), "event": event, "step": step, **fields}
        append_text(self.events_path, json.dumps(rec, default=str) + "\n")

    def status(self, status: str, step: int, epoch: int, cause: str | None = None) -> None:
        assert status in STATUSES, status
        if not self.enabled:
            return
        data = {"status": status, "cause": cause, "step": step, "epoch": epoch, "updated": now_iso()}
        try:
            write_json(self.status_path, data)
        except OSError as exc:
            if exc.errno != errno.ENOSPC or not self.status_path.exists():
                raise
            with open(self.status_path, "r+", encoding="utf-8") as fh:  # a full disk has no room for a
                fh.write(json.dumps(data, indent=2, default=str) + "\n")  # new file: reuse the old one's
                fh.truncate()

    def info(self, msg: str) -> None:
        self.log.info(msg)

    def warning(self, msg: str) -> None:
        self.log.warning(msg)

    def notice(self, msg: str) -> None:
        """Information the user should see now: logged, and printed on the console (stdout)."""
        self.log.info(msg)
        if self.enabled:
            print(msg, flush=True)  # stdout: stderr is kept for the one error line

    def outcome(self, status: str, cause: str) -> None:
        """Record how the run ended in train.log only (the caller reports it: once on the console)."""
        level = logging.WARNING if status == "interrupted" else logging.ERROR
        self.log.log(level, f"{status}: {cause}", extra={"file_only": True})


def read_status(exp_dir: Path) -> dict | None:
    p = Path(exp_dir) / "status.json"
    if not p.exists():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
