"""Rankings and the Markdown comparison table of the families in a report ("A vs B vs TF-IDF+LR")."""
from __future__ import annotations

import math

import pandas as pd

from .families import versus_title
from .fmt import mean_std, number, points
from .time_to_target import group_target_of, target_legend

RANK_COLUMNS = ["config_id", "family", "variant", "positional", "n_seeds", "time_per_epoch_s",
                "train_tokens_per_s", "max_gpu_mem_MiB", "peak_rss_MiB", "PASS_WNF", "experiments"]


def _usable(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["n_seeds"] > 0] if not df.empty else df


def rank_by_metric(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Usable configurations (>= 1 finished seed), best mean metric first; failed runs never appear."""
    col = f"{metric}_mean"
    ranked = _usable(df).sort_values([col, f"{metric}_std"], ascending=[False, True], kind="stable", na_position="last")
    cols = ["config_id", "family", "variant", "positional", col, f"{metric}_std", *RANK_COLUMNS[4:]]
    return ranked[cols].reset_index(drop=True).rename_axis("rank").reset_index().assign(rank=lambda d: d["rank"] + 1)


def memory_of(df: pd.DataFrame) -> pd.Series:
    return df["max_gpu_mem_MiB"].where(df["max_gpu_mem_MiB"].notna(), df["peak_rss_MiB"])


def rank_by_cost(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Cheapest first: time per epoch, then peak memory."""
    usable = _usable(df).assign(memory_MiB=lambda d: memory_of(d))
    ranked = usable.sort_values(["time_per_epoch_s", "memory_MiB"], kind="stable", na_position="last")
    cols = ["config_id", "family", "variant", "positional", "time_per_epoch_s", "memory_MiB",
            f"{metric}_mean", "train_tokens_per_s", "PASS_WNF", "experiments"]
    return ranked[cols].reset_index(drop=True).rename_axis("rank").reset_index().assign(rank=lambda d: d["rank"] + 1)


def _ref_value(df: pd.DataFrame, cid: str, col: str):
    hit = df[df["config_id"] == cid]
    return hit.iloc[0][col] if cid and len(hit) else math.nan


def group_header(part: pd.DataFrame) -> str:
    first = part[part["kind"] != "baseline"].iloc[0] if (part["kind"] != "baseline").any() else part.iloc[0]
    return (f"Device: {first['device']} · batch: {number(first['batch_size'])} · seq_len: {number(first['seq_len'])} "
            f"· tokenizer vocab: {number(first['tokenizer_vocab_size'])}")


def model_size(r) -> str:
    """``layers x d_model`` of a neural configuration, ``–`` for a baseline."""
    if r["kind"] == "baseline" or pd.isna(r["d_model"]) or pd.isna(r["n_layers"]):
        return "–"
    return f"{int(r['n_layers'])} x {int(r['d_model'])}"


def comparison_rows(df: pd.DataFrame, metric: str) -> list[str]:
    col = f"{metric}_mean"
    lines = [f"| Family | Variant | Positional | model | params [M] | {metric} mean ± std | {metric} best | accuracy | AUROC | "
             "time/epoch [s] | tokens/s | memory [MiB] | time to target [s] | reached | Δ vs exact [pp] | "
             "Δ vs TF-IDF+LR [pp] | seeds | PASS_WNF |",
             "|" + "---|" * 18]
    for _, r in df.iterrows():  # in results.csv order: exact families, the others, the baseline
        mem = r["max_gpu_mem_MiB"] if not math.isnan(r["max_gpu_mem_MiB"]) else r["peak_rss_MiB"]
        lines.append(" | ".join([
            f"| {r['family']}", r["variant"], r["positional"] or "–", model_size(r),
            number(r["num_parameters"] / 1e6, 2) if pd.notna(r["num_parameters"]) else "–",
            mean_std(r[col], r[f"{metric}_std"], r["n_seeds"]), number(r.get(f"{metric}_best", math.nan)),
            number(r["accuracy_mean"]), number(r["AUROC_mean"]), number(r["time_per_epoch_s"], 2),
            number(r["train_tokens_per_s"], 0), number(mem, 1), number(r.get("time_to_target_total_s", math.nan), 1),
            number(r.get("target_reached", math.nan)),
            points(r[col], _ref_value(df, r["ref_exact"], col)), points(r[col], _ref_value(df, r["ref_baseline"], col)),
            str(r["n_seeds"]), f"{r['PASS_WNF']} |"]))
    return lines


def comparison_markdown(df: pd.DataFrame, failed: pd.DataFrame, metric: str, drop_pp: float = 2.0) -> str:
    """One table per comparison group (same data, seq_len, batch, tokenizer, device), baselines in each;
    ``drop_pp`` is the time-to-target margin below TF-IDF+LR the legend states."""
    out = [f"# {versus_title(df['family'])}" if "family" in df else "# Comparison", ""]
    usable = _usable(df)
    neural = usable[usable["kind"] != "baseline"]
    for i, (group, part) in enumerate(neural.groupby("compare_group", sort=False), 1):
        base = usable[(usable["kind"] == "baseline") & usable["data_id"].isin(part["data_id"])]
        table = pd.concat([part, base])
        out += [f"## Comparison group {i} ({group})", "", group_header(part), "",
                *comparison_rows(table, metric), "", target_legend(drop_pp, group_target_of(table)) + ".", ""]
    if neural.empty and not usable.empty:
        out += ["## Baselines only", "", *comparison_rows(usable, metric), "",
                target_legend(drop_pp, group_target_of(usable)) + ".", ""]
    out += ["## Failed runs (excluded from every ranking)", ""]
    if failed.empty:
        out.append("None.")
    else:
        out += ["| Experiment | Attention | Seed | Status | Cause |", "|---|---|---|---|---|"]
        out += [f"| {r.experiment} | {r.attention_type} | {r.seed} | {r.status} | {r.cause} |" for r in failed.itertuples()]
    return "\n".join(out) + "\n"
