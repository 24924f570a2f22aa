"""A/B of ``torch.compile`` for the encoder training step of docs/BENCHMARKS.md.

The bench's step workload (:class:`effx.bench.workloads.StepWorkload`: 4 layers, d_model 256,
d_ff 1024, 4 heads, batch 32, fp32, AdamW) eager and with the model wrapped in ``torch.compile``
(inductor, default mode), per attention type. The first compiled step includes the compilation
(into a fresh Inductor cache unless ``TORCHINDUCTOR_CACHE_DIR`` is set) and is reported separately; afterwards eager and compiled steps alternate in one process, so load
drifts on this noisy VM hit both alike, and the median of ``--reps`` is kept.

    python benchmarks/compile_ab.py --out docs/bench/cpu-compile-ab.md [--reps 5] [--seq-len 512]
        [--types "sdpa[fused],performer_favor"]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

# A fresh Inductor cache, so "first compiled step" includes a cold compile (set it to reuse one).
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="effx-inductor-"))

import torch  # noqa: E402

from effx.atomic import write_text  # noqa: E402
from effx.bench.worker import timed  # noqa: E402
from effx.bench.workloads import StepWorkload  # noqa: E402


def workload(label: str, n: int, compiled: bool) -> StepWorkload:
    name, _, impl = label.partition("[")
    config = {"impl": impl.rstrip("]")} if impl else {}
    torch.manual_seed(0)
    work = StepWorkload({"suite": "step", "type": name, "config": config, "d_model": 256, "n_layers": 4,
                         "heads": 4, "d_ff": 1024, "n": n, "batch": 32, "device": "cpu", "dtype": "fp32"})
    if compiled:
        work.model = torch.compile(work.model)
    return work


def seconds(fn) -> float:
    return timed(fn, "cpu")[0]


def measure(label: str, n: int, reps: int) -> dict:
    eager, compiled = workload(label, n, False), workload(label, n, True)
    first_eager, first_compiled = seconds(eager.train_step), seconds(compiled.train_step)
    compiled.train_step()  # a second call may still specialise (e.g. the training-mode graph)
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    for _ in range(reps):
        times["eager"].append(seconds(eager.train_step))
        times["compiled"].append(seconds(compiled.train_step))
    med = {k: 1000 * statistics.median(v) for k, v in times.items()}
    return {"label": label, "first_eager_s": first_eager, "first_compiled_s": first_compiled, **med}


def table(rows: list[dict], cmd: str, reps: int, n: int) -> str:
    lines = [f"# torch.compile A/B (`{cmd}`)", "",
             f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32, training step N={n}, "
             f"batch 32, median of {reps} alternating steps; Inductor cache "
             f"{'fresh (cold compile)' if 'effx-inductor-' in os.environ['TORCHINDUCTOR_CACHE_DIR'] else 'given'}.", "",
             "| attention | eager ms | compiled ms | compiled / eager | first eager step s | first compiled step s (incl. compile) |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['label']} | failed: {r['error']} | | | | |")
            continue
        lines.append(f"| {r['label']} | {r['eager']:.0f} | {r['compiled']:.0f} | {r['compiled'] / r['eager']:.2f}x "
                     f"| {r['first_eager_s']:.1f} | {r['first_compiled_s']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--types", default="sdpa[fused],performer_favor")
    args = ap.parse_args()
    rows = []
    for label in args.types.split(","):
        try:
            rows.append(measure(label, args.seq_len, args.reps))
        except Exception as err:  # a type that does not compile is a finding, not the end of the run
            rows.append({"label": label, "error": f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"})
    cmd = (f"python benchmarks/compile_ab.py --out {args.out} --reps {args.reps} --seq-len {args.seq_len} "
           f"--types \"{args.types}\"")
    text = table(rows, cmd, args.reps, args.seq_len)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
