"""The code that runs inside the fresh per-configuration process.

Protocol over a one-way pipe: ``("baseline", MiB)`` as soon as the idle baseline is known (so the
parent's watchdog can enforce the memory cap), then ``("result", dict)``. Errors never escape:
out-of-memory becomes a ``skipped`` result, anything else a ``failed`` one, both with a reason.
"""
from __future__ import annotations

import statistics
import time

import torch

from .memory import PeakMeter


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: str) -> tuple[float, object]:
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - t0, out


def warm_up_runtime(device: str) -> None:
    """Start the BLAS / OpenMP thread pools before the baseline, so they are not counted as peak."""
    a = torch.randn(64, 64, device=device)
    torch.nn.functional.scaled_dot_product_attention(a[None, None], a[None, None], a[None, None])
    (a @ a).sum().item()


MAX_RUNS = 200  # timed runs of one phase at most, however short a run is


def phase(fn, spec: dict, meter: PeakMeter) -> tuple[dict, object]:
    """Warm-up, then ``reps`` timed runs - and more while they add up to less than ``min_time_s``
    (at most :data:`MAX_RUNS`), so a 5 ms configuration is the median of ~200 runs instead of 3
    (the timeit / pytest-benchmark rule). Returns median ms, the number of timed runs and peak MiB;
    the first run is held to the time cap."""
    out, times, i = None, [], 0
    while len(times) < spec["reps"] or (sum(times) < spec.get("min_time_s", 0.0) and len(times) < MAX_RUNS):
        seconds, out = timed(fn, spec["device"])
        if i == 0 and seconds > spec["time_cap_s"]:
            return {"skip": f"first run took {seconds:.1f} s > time cap {spec['time_cap_s']:g} s"}, out
        if i >= spec["warmup"]:
            times.append(seconds)
        i += 1
    return {"ms": 1000 * statistics.median(times), "runs": len(times), "peak": meter.extra()}, out


def warm_up_code_path(spec: dict) -> None:
    """Run the same workload once at N=128, B=1 and drop it: code pages, thread pools and lazily
    initialised kernels are then resident before the baseline, so they do not count as peak."""
    import gc

    from .workloads import build

    work = build({**spec, "n": min(spec["n"], 128), "batch": 1, "micro_batches": 1})
    if spec.get("forward", True):
        work.forward()
    work.train_step()
    del work
    gc.collect()


def measure(spec: dict, conn) -> dict:
    from .workloads import build

    warm_up_code_path(spec)
    meter = PeakMeter(spec["device"])
    conn.send(("baseline", meter.start()))
    work = build(spec)
    row: dict = {"baseline_MiB": meter.baseline}
    if spec.get("forward", True):
        res, sample = phase(work.forward, spec, meter)
        if "skip" in res:
            return {**row, "status": "skipped", "reason": "forward " + res["skip"]}
        row.update(fwd_ms=res["ms"], fwd_peak_MiB=res["peak"])
    res, _ = phase(work.train_step, spec, meter)
    if "skip" in res:
        return {**row, "status": "skipped", "reason": "forward+backward " + res["skip"]}
    row.update(fwdbwd_ms=res["ms"], fwdbwd_peak_MiB=res["peak"], timed_runs=res["runs"], status="ok", reason="")
    if spec.get("forward", True) and hasattr(work, "fidelity"):
        row["rel_err"], row["fidelity_ref"] = work.fidelity(sample)
    return row


def is_oom(exc: BaseException) -> bool:
    text = str(exc)
    return isinstance(exc, torch.OutOfMemoryError) or "can't allocate memory" in text or "out of memory" in text


def child_main(spec: dict, conn) -> None:
    """Entry point of the forked process for one configuration (or the roofline job)."""
    try:
        if spec.get("threads"):
            torch.set_num_threads(spec["threads"])
        if spec["device"] == "cuda" and spec.get("mem_cap_gib"):
            total = torch.cuda.get_device_properties(0).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, spec["mem_cap_gib"] * 2**30 / total))
        warm_up_runtime(spec["device"])
        if spec["suite"] == "roofline":
            from .roofline import measure as roofline

            conn.send(("baseline", 0.0))
            result = {"status": "ok", **roofline(spec["device"], spec.get("quick", False))}
        else:
            result = measure(spec, conn)
    except Exception as exc:  # reported as a row, never a crash of the bench  # noqa: BLE001
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        status = "skipped" if is_oom(exc) else "failed"
        result = {"status": status, "reason": f"{'out of memory' if status == 'skipped' else type(exc).__name__}: {first}"}
    except KeyboardInterrupt:  # the whole bench was interrupted (Ctrl-C, `timeout -s INT`): leave quietly
        raise SystemExit(130) from None
    result["threads"] = torch.get_num_threads()
    try:
        conn.send(("result", result))
        conn.close()
    except (BrokenPipeError, ConnectionResetError):  # the parent stopped (interrupted) before reading it
        raise SystemExit(130) from None
