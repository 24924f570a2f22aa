"""``effx bench-train``: evidence for long-sequence training (memory savers, long steps, the length limit).

1. *Memory savers*: one encoder training step at ``saver_len`` with batch ``saver_batch``, plain,
   with gradient checkpointing (each block recomputed in backward), with gradient accumulation
   (``saver_batch`` micro-batches of 1, same update) and with both; extra peak memory measured in
   a fresh process each (see :mod:`effx.bench.memory`).
2. *Long steps*: one training step at 4k, 8k and 16k tokens (batch 1) per attention type under the
   memory budget ``mem_cap_gib``; PASS when it completes inside the budget.
3. *Refusal*: an input one token past ``model.max_seq_len`` raises the diagnostic error.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Literal, Optional

import attrs

from ..atomic import write_csv, write_json, write_text
from . import machine, plan, report
from .runner import forkserver, run_rows
from .settings import check_dtype

SAVERS = (("plain", False, False), ("checkpointing", True, False), ("accumulation", False, True),
          ("checkpointing+accumulation", True, True))


@attrs.frozen
class TrainSettings:
    seq_lens: tuple[int, ...] = (4096, 8192, 16384)
    types: Optional[tuple[str, ...]] = None  # None: every registered type
    saver_len: int = 2048
    saver_batch: int = 4
    mem_cap_gib: float = 4.0
    time_cap_s: float = 120.0
    dtype: Literal["fp32", "bf16", "fp16"] = "fp32"
    device: Literal["cpu", "cuda"] = "cpu"
    threads: int = 0
    heads: int = 4
    d_model: int = 256
    n_layers: int = 4
    d_ff: int = 1024


def _base(s: TrainSettings) -> dict:
    return {"dtype": s.dtype, "device": s.device, "heads": s.heads, "head_dim": s.d_model // s.heads,
            "reps": 1, "warmup": 0, "time_cap_s": s.time_cap_s, "mem_cap_gib": s.mem_cap_gib, "threads": s.threads,
            "d_model": s.d_model, "n_layers": s.n_layers, "d_ff": s.d_ff, "source": "effx", "forward": False}


def train_specs(s: TrainSettings, registry) -> list[dict]:
    rows = plan.variants(registry, s.types, s.device)
    specs = []
    for label, name, config, impl in rows:
        common = {**_base(s), "type": name, "config": config, "variant": impl,
                  "exact": registry.get("attention", name).cls.exact}
        for variant, ckpt, accum in SAVERS:
            specs.append({**common, "suite": "savers", "label": f"{label} {variant}", "n": s.saver_len,
                          "batch": s.saver_batch, "checkpointing": ckpt,
                          "micro_batches": s.saver_batch if accum else 1})
        specs += [{**common, "suite": "train", "label": label, "n": n, "batch": 1} for n in s.seq_lens]
    return specs


def refusal_message(max_len: int) -> str:
    """Build a small model with ``max_seq_len=max_len`` and feed it ``max_len + 1`` tokens."""
    import torch

    import effx
    from effx.config import ModelConfig

    model = effx.build_model(ModelConfig(d_model=32, n_layers=1, n_heads=2, d_ff=64, max_seq_len=max_len),
                             {"type": "classification", "num_classes": 2})
    try:
        model(torch.zeros(1, max_len + 1, dtype=torch.long))
    except effx.SequenceTooLongError as exc:
        return str(exc)
    return f"NOT REFUSED: an input of {max_len + 1} tokens passed a model with max_seq_len={max_len}"


def savers_table(df) -> str:
    sub = df[df["suite"] == "savers"]
    header = ["attention", "variant", "N", "B", "micro-batches", "step ms", "extra peak MiB", "vs plain", "note"]
    rows, plain = [], {}
    for r in sub.itertuples():
        base, variant = r.label.split(" ", 1)
        if variant == "plain" and r.status == "ok":
            plain[base] = r.fwdbwd_peak_MiB
        ratio = (f"{100 * (r.fwdbwd_peak_MiB / plain[base] - 1):+.0f} %"
                 if r.status == "ok" and base in plain else "")
        rows.append([base, variant, r.seq_len, r.batch, r.micro_batches, report._fmt(r.fwdbwd_ms, ".0f"),
                     report._fmt(r.fwdbwd_peak_MiB, ".0f"), ratio, "" if r.status == "ok" else f"{r.status}: {r.reason}"])
    return report.md_table(header, rows)


def long_table(df, budget_gib: float) -> str:
    sub = df[df["suite"] == "train"]
    header = ["attention", "N", "step ms", "tokens/s", "extra peak MiB", f"within {budget_gib:g} GiB", "note"]
    rows = []
    for r in sub.itertuples():
        ok = r.status == "ok" and r.fwdbwd_peak_MiB <= budget_gib * 1024
        rows.append([r.label, r.seq_len, report._fmt(r.fwdbwd_ms, ".0f"), report._fmt(r.fwdbwd_tokens_per_s, ",.0f"),
                     report._fmt(r.fwdbwd_peak_MiB, ".0f"), "PASS" if ok else "FAIL",
                     "" if r.status == "ok" else f"{r.status}: {r.reason}"])
    return report.md_table(header, rows)


def run_train_bench(s: TrainSettings, out: Path, command: str = "effx bench-train",
                    echo: Callable[[str], None] = lambda line: None) -> dict:
    from ..plugins import load_registry

    check_dtype(s.dtype, s.device)
    specs = train_specs(s, load_registry())
    meta = machine.describe(s.device, s.dtype, s.threads)
    refusal = refusal_message(max(s.seq_lens))
    echo(f"max_seq_len check: {refusal}")
    rows = run_rows(forkserver(), specs, s.mem_cap_gib, s.time_cap_s, echo)
    meta.update(load_average_end=machine.load_average(), settings=attrs.asdict(s), command=command)
    df = report.frame(rows)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "train.csv", "machine": out / "machine.json", "summary": out / "summary.md"}
    write_csv(paths["csv"], df, float_format=report.FLOAT_FORMAT)
    write_json(paths["machine"], {**meta, "refusal": refusal})
    if report.plot(df, "train", "memory", out / "memory_train.png", f"training step, B=1 ({s.device} {s.dtype})"):
        paths["memory_train"] = out / "memory_train.png"
    text = (f"# effx bench-train\n\nCommand: `{command}`\n\nMachine: {meta['host_cpu']}, {meta['cpu_cores_usable']} "
            f"cores, torch {meta['torch']}, {s.device} {s.dtype}, load average {meta['load_average_start']} -> "
            f"{meta['load_average_end']}\n\nModel: d_model {s.d_model}, {s.n_layers} layers, {s.heads} heads, "
            f"d_ff {s.d_ff}, classification head, AdamW.\n\n## Gradient checkpointing and accumulation\n\n"
            f"{savers_table(df)}\n\n## Long training steps (batch 1, budget {s.mem_cap_gib:g} GiB)\n\n"
            f"![memory](memory_train.png)\n\n{long_table(df, s.mem_cap_gib)}\n\n"
            f"## Input past max_seq_len\n\n`{refusal}`\n")
    write_text(paths["summary"], text)
    return paths
