"""Layer fwd+bwd time of effx attention types and their peers, interleaved call by call in ONE
process (min and median over repetitions), so that a change of machine load between rows - which
moves the ratios of ``effx bench`` (one process per row, one after the other) - hits every row alike.

    PYTHONPATH=/path/to/peer-site python benchmarks/layer_interleaved.py --n 16384 \
        --types performer_favor reformer_lsh --reps 7 [--out FILE.json]

The workloads are those of ``effx bench --mode layer`` (same specs, inputs and peers).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import effx
from effx.bench.plan import layer_specs
from effx.bench.settings import BenchSettings
from effx.bench.workloads import build


PEER_OF = {"performer-pytorch": "performer_favor", "reformer-pytorch": "reformer_lsh"}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=16384)
    p.add_argument("--types", nargs="+", default=["performer_favor", "reformer_lsh"])
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    specs = layer_specs(BenchSettings(seq_lens=(a.n,), types=tuple(a.types), mode="layer"), effx.load_registry())
    works = {s["label"]: build(s) for s in specs}
    times: dict[str, list[float]] = {label: [] for label in works}
    for i in range(a.reps + 1):  # the first round warms up
        for label, work in works.items():
            t0 = time.perf_counter()
            work.train_step()
            if i:
                times[label].append(time.perf_counter() - t0)
    rows = {label: {"min_ms": 1e3 * min(ts), "median_ms": 1e3 * statistics.median(ts)} for label, ts in times.items()}
    for label, r in rows.items():
        print(f"{label:24s} N={a.n}  fwd+bwd min {r['min_ms']:8.1f} ms  median {r['median_ms']:8.1f} ms")
    for s in specs:
        of = s.get("peer_of") or PEER_OF.get(s["label"])  # older trees did not record peer_of
        if s["source"] == "peer" and of in rows:
            mine, peer = rows[of], rows[s["label"]]
            print(f"{of} vs {s['label']}: {peer['min_ms'] / mine['min_ms']:.2f}x (min), "
                  f"{peer['median_ms'] / mine['median_ms']:.2f}x (median)")
    if a.out:
        with open(a.out, "w") as fh:
            json.dump({"n": a.n, "threads": torch.get_num_threads(), "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
