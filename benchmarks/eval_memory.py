"""Peak resident memory of a CPU evaluation with and without handing freed heap back between batches.

    python benchmarks/eval_memory.py runs/study/finetune/imdb-s1-sdpa ../shared/data/imdb/test.parquet \
        --n 600 1800 3600 --out docs/bench/eval-memory.md

Each cell is a fresh process that loads the finetuned experiment, encodes the first N texts of the
parquet file at the run's ``data.max_length`` and runs ``effx.eval.inference.predict_proba`` at the run's
eval batch size and inference dtype; it reports the growth of the resident high-water mark over the
call. ``off`` replaces the :class:`effx.memtrim.HeapTrimmer` of the inference loop by a no-op (the behaviour
before it).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path


def child(exp: str, data: str, n: int, trim: bool) -> dict:
    import time

    import pandas as pd
    import torch

    import effx.eval.inference as inference
    from effx.data import encode_with_stats
    from effx.procmem import hwm_mib
    from effx.train import load_for_inference
    from effx.train.precision import inference_dtype

    if not trim:
        inference.HeapTrimmer = lambda **_: (lambda: False)
    path = Path(exp)
    inf = load_for_inference(path, ckpt="best", owner=f"finetune/{path.name}")
    texts = list(pd.read_parquet(data)["text"])[:n]
    ids = encode_with_stats(inf.tokenizer, texts, inf.config.data.max_length)[0]
    dtype = inference_dtype(inf.config.train.dtype, torch.device("cpu"))
    before, t0 = hwm_mib(), time.perf_counter()
    inference.predict_proba(inf.model, ids, len(inf.label_names), inf.config.train.eval_batch_size, "cpu", dtype)
    return {"n": n, "trim": trim, "growth_MiB": round(hwm_mib() - before), "seconds": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("exp"), ap.add_argument("data")
    ap.add_argument("--n", type=int, nargs="+", default=[600, 1800])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.exp, args.data, int(args.child[0]), args.child[1] == "on")))
        return
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    rows = []
    for n in args.n:
        for trim in ("off", "on"):
            out = subprocess.run([sys.executable, __file__, args.exp, args.data, "--child", str(n), trim],
                                 env=env, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    lines = [f"# Evaluation memory: `{Path(args.exp).name}` on `{Path(args.data).name}`", "",
             f"Command: `python benchmarks/eval_memory.py {args.exp} {args.data} --n {' '.join(map(str, args.n))}`; "
             f"{env['OMP_NUM_THREADS']} thread(s). Growth of the peak resident set over `predict_proba`.", "",
             "| texts | release off: growth [MiB] | release on: growth [MiB] | off [s] | on [s] |", "|---|---|---|---|---|"]
    for n in args.n:
        off, on = (next(r for r in rows if r["n"] == n and r["trim"] == t) for t in (False, True))
        lines.append(f"| {n:,} | {off['growth_MiB']:,} | {on['growth_MiB']:,} | {off['seconds']} | {on['seconds']} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
