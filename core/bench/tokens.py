"""``effx bench-tokens``: training throughput on a real length distribution, counting real tokens only.

The texts of ``--data`` are tokenized (a WordPiece vocabulary trained on them, truncation to
``--max-length``), which gives the real sequence lengths. For each attention type one model
(the step suite's sizes) trains ``--n-batches`` optimizer steps per mode, modes alternating
``--repeats`` times in the same process so that background load hits them alike:

* ``fixed`` - full batches: ``batch`` sequences of exactly ``max_length`` tokens (no padding);
* ``bucketed`` - variable-length batches of ``batch`` real sequences as training draws them
  (length-bucketed sampler, dynamic padding, unpadded encoder);
* ``shuffled`` - the same without length bucketing (more padding, still unpadded);
* ``..._padded`` - the same batches with the encoder computing on padding too (the padded
  computation, for comparison).

Tokens/s counts real tokens (``attention_mask`` sums) over the wall time of forward + backward +
AdamW step; the headline is variable-length (``bucketed``) tokens/s over ``fixed`` tokens/s.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Callable, Optional

import attrs
import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError

# mode -> (its batches, unpadded encoder?, label)
MODES = {"fixed": ("fixed", True, "fixed-length full batches"),
         "bucketed": ("bucketed", True, "variable, length-bucketed (default)"),
         "bucketed_padded": ("bucketed", False, "variable, length-bucketed, padded compute"),
         "shuffled": ("shuffled", True, "variable, not bucketed"),
         "shuffled_padded": ("shuffled", False, "variable, not bucketed, padded compute")}


@attrs.frozen
class TokenSettings:
    data: str
    max_length: int = 128
    batch: int = 32
    n_batches: int = 10
    repeats: int = 3
    texts: int = 4000  # texts sampled from the file for the length distribution
    types: tuple[str, ...] | None = None  # None: the first registered type of every attention family
    dtype: str = "fp32"
    threads: int = 0
    seed: int = 0
    vocab_size: int = 8000
    d_model: int = 256
    n_layers: int = 4
    heads: int = 4
    d_ff: int = 1024


def validate(s: TokenSettings) -> TokenSettings:
    from .settings import check_dtype

    check_dtype(s.dtype, "cpu")
    for name in ("max_length", "batch", "n_batches", "repeats", "texts"):
        if getattr(s, name) <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {getattr(s, name)}")
    if not Path(s.data).is_file():
        raise ConfigError(f"--data: file {s.data} not found; give a csv/json/jsonl/parquet file with a text column")
    return s if s.types is not None else attrs.evolve(s, types=one_per_family())


def one_per_family() -> tuple[str, ...]:
    """The first registered attention type of every family, exact families first."""
    from ..plugins import load_registry

    firsts: dict[str, type] = {}
    for entry in load_registry().entries["attention"].values():
        firsts.setdefault(entry.cls.family_name(), entry.cls)
    ordered = sorted(firsts.items(), key=lambda kv: (not kv[1].exact, kv[0]))
    return tuple(cls.name for _, cls in ordered)


# ----------------------------------------------------------------------------- data
def real_ids(s: TokenSettings) -> tuple[list[list[int]], dict]:
    """Token ids of up to ``s.texts`` texts of ``s.data`` (seeded sample) and their length statistics."""
    from ..config import TokenizerConfig
    from ..data import encode_with_stats, read_file, train_tokenizer

    texts = read_file(s.data, key="--data").select_columns(["text"]).to_dict()["text"]
    pick = np.random.default_rng(s.seed).permutation(len(texts))[: s.texts]
    texts = [texts[i] for i in pick]
    tok = train_tokenizer(texts, TokenizerConfig(vocab_size=s.vocab_size))
    ids, cut = encode_with_stats(tok, texts, s.max_length)
    lens = np.array([len(x) for x in ids])
    stats = {"texts": len(ids), "mean_len": float(lens.mean()), "median_len": float(np.median(lens)),
             "p90_len": float(np.percentile(lens, 90)), "truncated": int(cut),
             "fill_of_max_length": float(lens.mean() / s.max_length), "vocab": tok.get_vocab_size()}
    return ids, stats


def mode_batches(s: TokenSettings, ids: list[list[int]], vocab: int) -> dict[str, list[dict]]:
    """The ``n_batches`` batches of every kind (fixed, bucketed, shuffled), collated once."""
    from ..data import PadCollator
    from ..train.loop import epoch_batches

    collate = PadCollator()
    lengths = [len(x) for x in ids]

    def variable(bucketing: bool) -> list[dict]:
        order = epoch_batches(len(ids), lengths, s.batch, s.seed, 0, bucketing, 0, 1)[: s.n_batches]
        if len(order) < s.n_batches:
            raise ConfigError(f"--data gives {len(order)} batches of {s.batch}, fewer than --n-batches {s.n_batches}; "
                              f"raise --texts or lower --n-batches")
        return [collate([{"input_ids": ids[i], "label": 0, "idx": i} for i in rows]) for rows in order]

    gen = torch.Generator().manual_seed(s.seed)
    fixed = [{"input_ids": torch.randint(5, vocab, (s.batch, s.max_length), generator=gen),  # (B, N)
              "attention_mask": torch.ones(s.batch, s.max_length, dtype=torch.bool)} for _ in range(s.n_batches)]
    return {"fixed": fixed, "bucketed": variable(True), "shuffled": variable(False)}


# ----------------------------------------------------------------------------- timing
def build(s: TokenSettings, att: str, vocab: int):
    import effx
    from effx.config import AttentionSpec, ModelConfig

    cfg = ModelConfig(vocab_size=vocab, d_model=s.d_model, n_layers=s.n_layers, n_heads=s.heads, d_ff=s.d_ff,
                      max_seq_len=s.max_length, attention=AttentionSpec(att, {}))
    torch.manual_seed(s.seed)
    from effx.config import OptimizerConfig
    from effx.train.optim import build_optimizer

    model = effx.build_model(cfg, {"type": "classification", "num_classes": 4}).train()
    return model, build_optimizer(model, OptimizerConfig(lr=1e-4))  # the trainer's AdamW


def train_step(model, opt, batch: dict, dtype: str, unpad: bool) -> float:
    """One optimizer step on ``batch`` -> its wall time in seconds."""
    model.encoder.unpad = unpad
    ids, mask = batch["input_ids"], batch["attention_mask"]  # (B, N) each
    labels = torch.zeros(ids.shape[0], dtype=torch.long)  # (B,)
    t0 = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
        logits = model(ids, mask)  # (B, C)
    F.cross_entropy(logits.float(), labels).backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


def measure_type(s: TokenSettings, att: str, batches: dict[str, list[dict]], vocab: int,
                 echo: Callable[[str], None]) -> list[dict]:
    """``repeats`` passes over the batches; within a pass the modes take turns step by step, so that
    a burst of background load hits every mode alike. Per pass: real tokens / seconds per mode."""
    model, opt = build(s, att, vocab)
    for i in range(2):  # warm-up: code paths, thread pools, optimizer state
        for kind, unpad, _ in MODES.values():
            train_step(model, opt, batches[kind][i % s.n_batches], s.dtype, unpad)
    real = {m: sum(int(b["attention_mask"].sum()) for b in batches[k]) for m, (k, _, _) in MODES.items()}
    padded = {m: sum(b["input_ids"].numel() for b in batches[k]) for m, (k, _, _) in MODES.items()}
    passes: dict[str, list[float]] = {m: [] for m in MODES}
    for rep in range(s.repeats):
        sec = dict.fromkeys(MODES, 0.0)
        for i in range(s.n_batches):
            for mode in (MODES if (rep + i) % 2 == 0 else reversed(list(MODES))):
                kind, unpad, _ = MODES[mode]
                sec[mode] += train_step(model, opt, batches[kind][i], s.dtype, unpad)
        for mode in MODES:
            passes[mode].append(sec[mode])
        echo(f"{att:16s} pass {rep}: " + ", ".join(f"{m} {real[m] / sec[m]:,.0f}" for m in MODES) + " real tokens/s")
    rows = []
    for mode in MODES:
        vs_fixed = [(real[mode] / a) / (real["fixed"] / b) for a, b in zip(passes[mode], passes["fixed"])]
        rows.append({"attention": att, "mode": mode, "seconds": passes[mode], "real_tokens": real[mode],
                     "padded_tokens": padded[mode], "real_tokens_per_s": real[mode] / statistics.median(passes[mode]),
                     "vs_fixed": statistics.median(vs_fixed), "vs_fixed_per_pass": vs_fixed})
    return rows


# ----------------------------------------------------------------------------- report
def summary(s: TokenSettings, rows: list[dict], stats: dict, meta: dict, command: str) -> str:
    from .report import md_table

    by = {(r["attention"], r["mode"]): r for r in rows}
    table = []
    for att in s.types:
        for mode, (_, _, name) in MODES.items():
            r = by[(att, mode)]
            table.append([att, name, f"{r['real_tokens'] / r['padded_tokens']:.1%}", f"{r['real_tokens_per_s']:,.0f}",
                          f"{r['vs_fixed']:.2f}", " ".join(f"{x:.2f}" for x in r["vs_fixed_per_pass"])])
    heads = ["attention", "batches", "real share", "real tokens/s (median pass)", "vs fixed (median)", "per pass"]
    return "\n".join([
        "# Real-token training throughput", "", f"Command: `{command}`", "",
        f"Data: `{s.data}`, {stats['texts']} texts, max_length {s.max_length}: mean length {stats['mean_len']:.1f}, "
        f"median {stats['median_len']:.0f}, p90 {stats['p90_len']:.0f}, {stats['truncated']} truncated "
        f"(mean fill {stats['fill_of_max_length']:.1%} of max_length).",
        f"Model: {s.n_layers} layers, d_model {s.d_model}, {s.heads} heads, d_ff {s.d_ff}, vocab {stats['vocab']}, "
        f"classification head, AdamW; {s.dtype}; batch {s.batch}, {s.n_batches} steps per mode and pass, {s.repeats} "
        f"passes; within a pass the modes take turns step by step. 'vs fixed': real tokens/s over that of the "
        f"fixed-length batches in the same pass, median over passes.",
        f"Machine: {meta['cpu']}, {meta['threads']} torch threads; load average at start {meta['load_start']}, "
        f"at end {meta['load_end']} (a shared machine: compare rows of one run, not absolute values).", "",
        md_table(heads, table), "",
    ])


def run_tokens_bench(s: TokenSettings, out: Path, command: str,
                     echo: Callable[[str], None] = lambda line: None) -> dict[str, Path]:
    import os

    from ..atomic import write_json, write_text
    from .machine import cpu_model, load_average

    s = validate(s)
    if s.threads:
        torch.set_num_threads(s.threads)
    meta = {"cpu": f"{cpu_model()} ({os.cpu_count()} logical cores)", "threads": torch.get_num_threads(),
            "load_start": load_average(), "torch": torch.__version__}
    ids, stats = real_ids(s)
    batches = mode_batches(s, ids, stats["vocab"])
    rows = [r for att in s.types for r in measure_type(s, att, batches, stats["vocab"], echo)]
    meta["load_end"] = load_average()
    out.mkdir(parents=True, exist_ok=True)
    paths = {"results": out / "tokens.json", "summary": out / "tokens.md"}
    write_json(paths["results"], {"command": command, "settings": attrs.asdict(s), "lengths": stats,
                                  "machine": meta, "rows": rows})
    write_text(paths["summary"], summary(s, rows, stats, meta, command))
    return paths


def parse_types(text: Optional[str]) -> tuple[str, ...] | None:
    return tuple(t.strip() for t in text.split(",") if t.strip()) if text else None
