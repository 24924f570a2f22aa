"""Quality-vs-cost scatter plots (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from .families import BASELINE_FAMILY  # noqa: E402

BASELINE_COLOR = "tab:gray"
PALETTE = [c for c in matplotlib.colors.TABLEAU_COLORS if c != BASELINE_COLOR]
PLOTS = {  # file stem -> (x column, x label)
    "quality_vs_time_per_epoch": ("time_per_epoch_s", "time per epoch [s]"),
    "quality_vs_memory": ("memory_MiB", "peak memory [MiB] (max_gpu_mem_MiB on GPU, peak_rss_MiB on CPU)"),
}


def _with_memory(df: pd.DataFrame) -> pd.DataFrame:
    gpu = df["max_gpu_mem_MiB"] if "max_gpu_mem_MiB" in df else pd.Series(math.nan, index=df.index)
    cpu = df["peak_rss_MiB"] if "peak_rss_MiB" in df else pd.Series(math.nan, index=df.index)
    return df.assign(memory_MiB=gpu.where(gpu.notna(), cpu))


def family_colors(families) -> dict[str, str]:
    """One colour per family, cycling the palette in report order; the baseline is always grey."""
    neural = [f for f in dict.fromkeys(families) if f != BASELINE_FAMILY]
    return {BASELINE_FAMILY: BASELINE_COLOR, **{f: PALETTE[i % len(PALETTE)] for i, f in enumerate(neural)}}


def quality_plot(df: pd.DataFrame, x: str, xlabel: str, metric: str, path: Path) -> Path:
    """Mean metric over seeds (error bar: std) against one cost, one colour per attention family."""
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    colors = family_colors(df["family"])
    for fam, part in df.groupby("family", sort=False):
        part = part[part[x].notna() & part[f"{metric}_mean"].notna()]
        if part.empty:
            continue
        ax.errorbar(part[x], part[f"{metric}_mean"], yerr=part[f"{metric}_std"].fillna(0), fmt="o",
                    color=colors[fam], label=fam, capsize=3)
        for _, r in part.iterrows():
            label = f"{r['variant']}/{r['positional']}" if r["positional"] else r["variant"]
            ax.annotate(f"{label} [{r['config_id'][:4]}]", (r[x], r[f"{metric}_mean"]), fontsize=7,
                        xytext=(4, 3), textcoords="offset points")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{metric} (mean over seeds)")
    ax.set_title(f"{metric} vs {xlabel.split(' [')[0]}")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, format="png")
    plt.close(fig)
    tmp.replace(path)
    return path


def write_plots(results: pd.DataFrame, metric: str, out: Path) -> dict[str, Path]:
    """Write every plot in :data:`PLOTS` for the usable configurations; returns ``stem -> path``."""
    usable = _with_memory(results[results["n_seeds"] > 0]) if not results.empty else results
    paths = {}
    for stem, (x, label) in PLOTS.items():
        data = usable if not usable.empty else pd.DataFrame(columns=["family", x, f"{metric}_mean"])
        paths[stem] = quality_plot(data, x, label, metric, out / f"{stem}.png")
    return paths
