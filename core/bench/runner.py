"""Run every configuration in its own fresh process, under a memory cap and a time cap.

Processes are forked from a *forkserver* that has imported torch, effx, the plugins and the peers
but never run a tensor op, so each configuration starts from the same idle state without paying
the ~3 s import again (see :mod:`effx.bench.memory` for why a fresh process per configuration).

A configuration is skipped, with the reason recorded, when

* a smaller N of the same row was skipped or failed;
* the log-log extrapolation (per sequence) of the two previous N predicts a peak above
  ``mem_cap_gib`` or a forward+backward step above ``time_cap_s``;
* while running, its resident set grows past the cap (the watchdog kills it) or its first run
  exceeds the time cap (the worker stops itself), or it runs out of memory.
"""
from __future__ import annotations

import math
import multiprocessing as mp
import time
from typing import Callable, Iterable

from .memory import hwm_mib
from .worker import child_main

PRELOAD = ["effx.bench._preload"]
GIB = 1024.0  # MiB per GiB


def forkserver() -> mp.context.BaseContext:
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def run_isolated(ctx, spec: dict, mem_cap_gib: float, hard_timeout_s: float) -> dict:
    """Run ``spec`` in a fresh process; kill it past the memory cap or the hard timeout."""
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=child_main, args=(spec, send), daemon=True)
    proc.start()
    send.close()
    baseline, result, reason = None, None, None
    t0 = time.monotonic()
    while result is None and reason is None:
        if recv.poll(0.05):
            try:
                kind, payload = recv.recv()
            except EOFError:
                reason = f"worker died (exit code {proc.exitcode})"
                break
            baseline, result = (payload, None) if kind == "baseline" else (baseline, payload)
            continue
        peak = hwm_mib(proc.pid)
        if spec["device"] == "cpu" and baseline is not None and peak is not None and peak - baseline > mem_cap_gib * GIB:
            reason = f"killed: extra peak RSS {peak - baseline:.0f} MiB passed the memory cap {mem_cap_gib:g} GiB"
        elif time.monotonic() - t0 > hard_timeout_s:
            reason = f"killed: still running after {hard_timeout_s:.0f} s"
        elif not proc.is_alive() and not recv.poll():
            proc.join(1)
            reason = f"worker died (exit code {proc.exitcode})"
    if reason is not None:
        proc.kill()
        result = {"status": "skipped", "reason": reason}
    proc.join(10)
    recv.close()
    return over_cap(result, mem_cap_gib)


def over_cap(result: dict, mem_cap_gib: float) -> dict:
    """A run that finished between two watchdog samples but peaked past the cap counts as skipped."""
    peak = max(result.get("fwd_peak_MiB") or 0.0, result.get("fwdbwd_peak_MiB") or 0.0)
    if result.get("status") == "ok" and peak > mem_cap_gib * GIB:
        return {**result, "status": "skipped", "reason": f"extra peak {peak:.0f} MiB > memory cap {mem_cap_gib:g} GiB"}
    return result


def _extrapolate(points: list[tuple[int, float]], n: int) -> float | None:
    """Log-log extrapolation from the last two points (slope clamped to [1, 2.5]); None below two."""
    if len(points) < 2:
        return None
    (n0, y0), (n1, y1) = points[-2:]
    slope = math.log(max(y1, 1e-9) / max(y0, 1e-9)) / math.log(n1 / n0)
    return y1 * (n / n1) ** min(max(slope, 1.0), 2.5)


def predicted_skip(history: list[dict], n: int, batch: int, mem_cap_gib: float, time_cap_s: float) -> str | None:
    """Reason to skip N given the rows already measured for the same label (None = run it).

    Costs are extrapolated per sequence (``value / batch``) so suites that keep tokens per step
    constant (smaller batch at larger N) are predicted correctly; with fewer than two measured
    points nothing is predicted and the watchdog alone enforces the caps.
    """
    if any(r["status"] != "ok" for r in history):
        bad = min(r["seq_len"] for r in history if r["status"] != "ok")
        return f"not run: N={bad} was already {[r for r in history if r['seq_len'] == bad][0]['status']}"
    ok = [r for r in history if r["status"] == "ok"]
    mem = _extrapolate([(r["seq_len"], max(r["fwdbwd_peak_MiB"], 1.0) / r["batch"]) for r in ok], n)
    if mem is not None and mem * batch > mem_cap_gib * GIB:
        return (f"predicted peak {mem * batch / GIB:.1f} GiB > memory cap {mem_cap_gib:g} GiB "
                f"(from N<={ok[-1]['seq_len']})")
    sec = _extrapolate([(r["seq_len"], r["fwdbwd_ms"] / 1000 / r["batch"]) for r in ok], n)
    if sec is not None and sec * batch > time_cap_s:
        return f"predicted fwd+bwd {sec * batch:.1f} s > time cap {time_cap_s:g} s (from N<={ok[-1]['seq_len']})"
    return None


def hard_timeout(spec: dict) -> float:
    runs = 2 * (spec["warmup"] + spec["reps"]) + 2
    return 120.0 + runs * spec["time_cap_s"] + 2 * spec.get("min_time_s", 0.0)


def run_rows(ctx, specs: Iterable[dict], mem_cap_gib: float, time_cap_s: float,
             echo: Callable[[str], None] = lambda s: None) -> list[dict]:
    """Run specs in order (ascending N within a label), predicting skips from the smaller N.

    Ctrl-C (or ``timeout -s INT``) stops the run and returns the rows measured so far, so the
    caller still writes them.
    """
    rows: list[dict] = []
    try:
        for spec in specs:
            key = (spec["suite"], spec["label"])
            history = [r for r in rows if (r["suite"], r["label"]) == key]
            reason = predicted_skip(history, spec["n"], spec["batch"], mem_cap_gib, time_cap_s)
            if reason is not None:
                result = {"status": "skipped", "reason": reason}
            else:
                result = run_isolated(ctx, spec, mem_cap_gib, hard_timeout(spec))
            row = {**row_keys(spec), **result}
            rows.append(row)
            echo(format_progress(row))
    except KeyboardInterrupt:
        echo(f"interrupted: writing the {len(rows)} configurations measured so far")
    return rows


def row_keys(spec: dict) -> dict:
    return {
        "suite": spec["suite"], "label": spec["label"], "type": spec.get("type") or "", "source": spec["source"],
        "seq_len": spec["n"], "batch": spec["batch"], "micro_batches": spec.get("micro_batches", 1),
        "checkpointing": spec.get("checkpointing", False), "exact": spec.get("exact", False),
        "dtype": spec["dtype"], "device": spec["device"], "reps": spec["reps"],
    }


def format_progress(row: dict) -> str:
    head = f"{row['suite']:5s} {row['label']:22s} N={row['seq_len']:<6d} B={row['batch']:<3d}"
    if row["status"] != "ok":
        return f"{head} {row['status']}: {row['reason']}"
    fwd = f"fwd {row['fwd_ms']:9.1f} ms " if "fwd_ms" in row else ""
    err = f" rel_err {row['rel_err']:.3g}" if row.get("rel_err") is not None else ""
    return f"{head} {fwd}fwd+bwd {row['fwdbwd_ms']:9.1f} ms  peak {row['fwdbwd_peak_MiB']:8.1f} MiB{err}"
