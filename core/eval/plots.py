"""Quality-vs-cost scatter plots and quality/time vs sequence length (matplotlib, Agg backend)."""
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
DASHES = ["-", "--", ":", "-."]
PLOTS = {  # file stem -> (x column, x label)
    "quality_vs_time_per_epoch": ("time_per_epoch_s", "time per epoch [s]"),
    "quality_vs_memory": ("memory_MiB", "peak memory [MiB] (max_gpu_mem_MiB on GPU, peak_rss_MiB on CPU)"),
}


def _with_memory(df: pd.DataFrame) -> pd.DataFrame:
    gpu = df["max_gpu_mem_MiB"] if "max_gpu_mem_MiB" in df else pd.Series(math.nan, index=df.index)
    cpu = df["peak_rss_MiB"] if "peak_rss_MiB" in df else pd.Series(math.nan, index=df.index)
    return df.assign(memory_MiB=gpu.where(gpu.notna(), cpu))


MARKERS = "osD^vP*Xh<>p"


def family_colors(families) -> dict[str, str]:
    """One colour per family, cycling the palette in report order; the baseline is always grey."""
    neural = [f for f in dict.fromkeys(families) if f != BASELINE_FAMILY]
    return {BASELINE_FAMILY: BASELINE_COLOR, **{f: PALETTE[i % len(PALETTE)] for i, f in enumerate(neural)}}


def point_label(r: pd.Series) -> str:
    """``variant/positional [config id]``: the legend names every point, so no label sits on the plot."""
    label = f"{r['variant']}/{r['positional']}" if r["positional"] else str(r["variant"])
    n = r.get("seq_len")
    return f"{label}{'' if pd.isna(n) else f' N={n}'} [{str(r['config_id'])[:4]}]"


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path


def _legend_below(ax) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18),
                  ncol=2, frameon=False)


def quality_plot(df: pd.DataFrame, x: str, xlabel: str, metric: str, path: Path) -> Path:
    """Mean metric over seeds (error bar: std) against one cost; colour = attention family, one
    marker and one legend entry per configuration (labels never overlap the points or each other)."""
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    colors = family_colors(df["family"])
    for fam, part in df.groupby("family", sort=False):
        part = part[part[x].notna() & part[f"{metric}_mean"].notna()]
        for i, (_, r) in enumerate(part.iterrows()):
            std = r[f"{metric}_std"]
            ax.errorbar([r[x]], [r[f"{metric}_mean"]], yerr=[0 if pd.isna(std) else std], capsize=3,
                        fmt=MARKERS[i % len(MARKERS)], color=colors[fam], label=f"{fam}: {point_label(r)}")
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(f"{metric} (mean over seeds)")
    ax.set_title(f"{metric} vs {xlabel.split(' [')[0]}")
    ax.grid(alpha=0.3)
    _legend_below(ax)
    return _save(fig, path)


def spans_lengths(df: pd.DataFrame) -> bool:
    """True when the neural configurations were trained at more than one sequence length."""
    return "seq_len" in df and df["seq_len"].dropna().nunique() > 1


def length_plot(df: pd.DataFrame, metric: str, path: Path) -> Path:
    """Quality and time per epoch against sequence length, one line per attention/positional pair."""
    fig, (q, t) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    neural = df[df["seq_len"].notna()]
    colors, seen = family_colors(df["family"]), {}
    for (fam, variant, pos), part in neural.groupby(["family", "variant", "positional"], sort=False):
        part = part.sort_values("seq_len")
        k = seen[fam] = seen.get(fam, -1) + 1  # the variants of one family: one colour, own marker and dash
        style = dict(marker=MARKERS[k % len(MARKERS)], ls=DASHES[k % len(DASHES)], color=colors[fam],
                     label=f"{variant}/{pos}" if pos else variant)
        q.plot(part["seq_len"].astype(float), part[f"{metric}_mean"], **style)
        t.plot(part["seq_len"].astype(float), part["time_per_epoch_s"], **style)
    for _, r in df[df["family"] == BASELINE_FAMILY].iterrows():  # it reads whole texts: one level at every length
        q.axhline(r[f"{metric}_mean"], color=BASELINE_COLOR, ls="--", label=f"{r['variant']} (whole text)")
    for ax, ylabel in ((q, f"{metric} (mean over seeds)"), (t, "time per epoch [s]")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sequence length [tokens]")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        _legend_below(ax)
    fig.suptitle(f"{metric} and time per epoch vs sequence length")
    return _save(fig, path)


def write_plots(results: pd.DataFrame, metric: str, out: Path) -> dict[str, Path]:
    """Write every plot in :data:`PLOTS` for the usable configurations, plus ``quality_vs_seq_len``
    when they span several sequence lengths; returns ``stem -> path``."""
    usable = _with_memory(results[results["n_seeds"] > 0]) if not results.empty else results
    paths = {}
    for stem, (x, label) in PLOTS.items():
        data = usable if not usable.empty else pd.DataFrame(columns=["family", x, f"{metric}_mean"])
        paths[stem] = quality_plot(data, x, label, metric, out / f"{stem}.png")
    if not usable.empty and spans_lengths(usable):
        paths["quality_vs_seq_len"] = length_plot(usable, metric, out / "quality_vs_seq_len.png")
    return paths
