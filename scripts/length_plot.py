"""Quality and cost against input length, from the results.csv `effx eval -compare` wrote for a sweep
over `data.max_length` (the study's long-input part).

    python scripts/length_plot.py studies/results/long/results.csv --out studies/results/long

Writes ``length.png`` (test macro-F1, training time per epoch, training tokens/s and peak resident
memory, each against max_length, one line per attention type, TF-IDF+LR as a horizontal line) and
``length.md`` (the same figures as a table, one row per attention type and length).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

PANELS = (("macro_F1_mean", "test macro-F1"), ("time_per_epoch_s", "time per epoch [s]"),
          ("train_tokens_per_s", "training tokens/s"), ("peak_rss_MiB", "peak resident memory [MiB]"))


def load(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    df = pd.read_csv(path)
    base = df[df["kind"] == "baseline"]
    neural = df[df["kind"] != "baseline"].sort_values(["attention_type", "seq_len"])
    return neural, base


def plot(neural: pd.DataFrame, base: pd.DataFrame, out: Path) -> None:
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 3.6))
    for ax, (col, label) in zip(axes, PANELS):
        for att, part in neural.groupby("attention_type"):
            ax.plot(part["seq_len"], part[col], marker="o", label=att)
        if col == "macro_F1_mean" and not base.empty:
            ax.axhline(base["macro_F1_mean"].iloc[0], color="grey", ls="--", label="TF-IDF+LR (whole review)")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("max_length [bytes]")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "length.png", dpi=110)


def table(neural: pd.DataFrame, base: pd.DataFrame) -> str:
    lines = ["| attention | max_length | test macro-F1 | time/epoch [s] | tokens/s | peak RSS [MiB] |",
             "|---|---|---|---|---|---|"]
    for r in neural.itertuples():
        lines.append(f"| {r.attention_type} | {int(r.seq_len):,} | {r.macro_F1_mean:.4f} | {r.time_per_epoch_s:,.0f} "
                     f"| {r.train_tokens_per_s:,.0f} | {r.peak_rss_MiB:,.0f} |")
    if not base.empty:
        lines.append(f"| TF-IDF+LR | whole review | {base['macro_F1_mean'].iloc[0]:.4f} | "
                     f"{base['time_per_epoch_s'].iloc[0]:,.0f} | – | {base['peak_rss_MiB'].iloc[0]:,.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    neural, base = load(args.results)
    args.out.mkdir(parents=True, exist_ok=True)
    plot(neural, base, args.out)
    (args.out / "length.md").write_text(table(neural, base))
    print(f"wrote {args.out / 'length.png'} and {args.out / 'length.md'}")


if __name__ == "__main__":
    main()
