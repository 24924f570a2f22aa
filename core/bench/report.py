"""Bench outputs: ``results.csv``, ``machine.json``, log-log PNG plots and ``summary.md``.

Every file is written atomically (:mod:`effx.atomic`), so an interrupted run never leaves a
half-written result behind; ``results.csv`` keeps :data:`FLOAT_FORMAT` digits.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..atomic import atomic_open

COLUMNS = [
    "suite", "label", "type", "source", "exact", "seq_len", "batch", "micro_batches", "checkpointing", "dtype",
    "device", "threads", "reps", "timed_runs", "fwd_ms", "fwdbwd_ms", "fwd_tokens_per_s", "fwdbwd_tokens_per_s",
    "fwd_peak_MiB", "fwdbwd_peak_MiB", "baseline_MiB", "rel_err", "fidelity_ref", "status", "reason",
]


FLOAT_FORMAT = "%.10g"


def frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    for col in COLUMNS:
        if col not in df:
            df[col] = math.nan
    tokens = df["batch"] * df["seq_len"]
    df["fwd_tokens_per_s"] = tokens / (df["fwd_ms"] / 1000)
    df["fwdbwd_tokens_per_s"] = tokens / (df["fwdbwd_ms"] / 1000)
    return df[COLUMNS]


def plot(df: pd.DataFrame, suite: str, what: str, path: Path, title: str) -> bool:
    """Log-log plot of fwd+bwd (solid) and forward (dashed) time, or peak memory, against N."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = df[(df["suite"] == suite) & (df["status"] == "ok")]
    if ok.empty:
        return False
    fig, ax = plt.subplots(figsize=(7.5, 5))
    cols = ("fwdbwd_ms", "fwd_ms") if what == "time" else ("fwdbwd_peak_MiB", "fwd_peak_MiB")
    for i, (label, g) in enumerate(ok.groupby("label", sort=False)):
        color = f"C{i % 10}"
        ax.plot(g["seq_len"], g[cols[0]], "o-", color=color, label=label)
        if g[cols[1]].notna().any():
            ax.plot(g["seq_len"], g[cols[1]], "x--", color=color, alpha=0.6)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length N")
    ax.set_ylabel("time per step [ms]" if what == "time" else "extra peak memory [MiB]")
    ax.set_title(title + "  (solid: fwd+bwd, dashed: forward)", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)
    return True


def _fmt(x, spec: str) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return format(x, spec)


def md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "/") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _note(r) -> str:
    if r.status != "ok":
        return f"{r.status}: {r.reason}"
    if not pd.isna(r.fwd_ms) and not pd.isna(r.fwdbwd_ms) and r.fwd_ms > r.fwdbwd_ms:
        return "load-distorted? forward slower than forward+backward"
    return ""


def _reference_note(ref) -> str:
    """Name the exact reference of a row's error when it is not plain softmax attention."""
    from ..components import SOFTMAX_REFERENCE

    return "" if not isinstance(ref, str) or ref in ("", SOFTMAX_REFERENCE) else f" (vs {ref})"


def results_table(df: pd.DataFrame, suite: str) -> str:
    sub = df[df["suite"] == suite]
    header = ["attention", "N", "B", "fwd ms", "fwd+bwd ms", "fwd+bwd tok/s", "fwd peak MiB",
              "fwd+bwd peak MiB", "rel err", "note"]
    rows = [[r.label, r.seq_len, r.batch, _fmt(r.fwd_ms, ".1f"), _fmt(r.fwdbwd_ms, ".1f"),
             _fmt(r.fwdbwd_tokens_per_s, ",.0f"), _fmt(r.fwd_peak_MiB, ".1f"), _fmt(r.fwdbwd_peak_MiB, ".1f"),
             _fmt(r.rel_err, ".3g") + _reference_note(r.fidelity_ref), _note(r)]
            for r in sub.itertuples()]
    return md_table(header, rows)
