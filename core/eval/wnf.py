"""PASS_WNF: the product's acceptance thresholds (cost, quality, reliability) checked per configuration.

One column per threshold, so a reader sees which part failed. Each cell is ``PASS``, ``FAIL``,
``n.a.`` (the check does not apply to this family) or ``missing: <why>`` (a reference run is absent).
``PASS_WNF`` is ``FAIL`` if any cell fails, else ``INCOMPLETE`` if any is missing, else ``PASS``.

Roles come from the attention classes (:mod:`effx.eval.families`): an exact family is checked
against the baseline; every other family - a third-party one included - against the baseline, the
exact reference and its cost rule (:meth:`Thresholds.cost_for`).

References: the TF-IDF+LR baseline with the same data (the best one if several) and the exact-attention
configuration with the same architecture apart from attention, in the same comparison group (same
data, seq_len, batch, tokenizer, device; the best one by the metric if several).
Quality is compared on the mean over seeds, in percentage points; cost on time/epoch and peak memory.
"""
from __future__ import annotations

import math
from typing import Mapping

import pandas as pd

from .families import BASELINE_FAMILY, Family, declared_families
from .thresholds import CostThreshold, Thresholds

WNF_COLUMNS = ("wnf_vs_baseline", "wnf_vs_exact", "wnf_cost", "wnf_seeds", "wnf_spread", "wnf_no_failures")
EPS = 1e-9  # thresholds are inclusive; absorb float rounding (0.90 - 0.85 = 0.05000000000000004)
NA = "n.a."  # not "n/a": pandas.read_csv would turn that into NaN


def _ok(flag: bool) -> str:
    return "PASS" if flag else "FAIL"


def _finite(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def _best(df: pd.DataFrame, col: str) -> pd.Series | None:
    df = df[df[col].map(_finite)]
    return None if df.empty else df.loc[df[col].idxmax()]


def reference_baseline(df: pd.DataFrame, row: pd.Series, col: str) -> pd.Series | None:
    base = df[(df["kind"] == "baseline") & (df["data_id"] == row["data_id"]) & (df["n_seeds"] > 0)]
    return _best(base, col)


def reference_exact(df: pd.DataFrame, row: pd.Series, col: str, exact: set[str]) -> pd.Series | None:
    ref = df[df["family"].isin(exact) & (df["arch_id"] == row["arch_id"])
             & (df["compare_group"] == row["compare_group"]) & (df["n_seeds"] > 0)]
    return _best(ref, col)


def check_vs_baseline(row, base, gain_pp: float, col: str) -> str:
    if base is None:
        return "missing: no TF-IDF+LR baseline on the same data"
    return _ok((row[col] - base[col]) * 100 >= gain_pp - EPS)


NO_EXACT = "missing: no exact-attention run with the same configuration"


def check_vs_exact(row, ref, max_drop_pp: float, col: str) -> str:
    if ref is None:
        return NO_EXACT
    return _ok((ref[col] - row[col]) * 100 <= max_drop_pp + EPS)


def _memory(row) -> float:
    gpu = row.get("max_gpu_mem_MiB")
    return gpu if _finite(gpu) else row.get("peak_rss_MiB", math.nan)


def check_cost(row, ref, th: CostThreshold) -> str:
    """time/epoch <= exact * (1 - r_time) OR peak memory <= exact * (1 - r_mem)."""
    if ref is None:
        return NO_EXACT
    t, t_ref, m, m_ref = row["time_per_epoch_s"], ref["time_per_epoch_s"], _memory(row), _memory(ref)
    if not (_finite(t) and _finite(t_ref)) and not (_finite(m) and _finite(m_ref)):
        return "missing: no time/epoch or memory figures"
    time_ok = _finite(t) and _finite(t_ref) and t <= t_ref * (1 - th.min_time_reduction) + EPS * t_ref
    mem_ok = _finite(m) and _finite(m_ref) and m <= m_ref * (1 - th.min_memory_reduction) + EPS * m_ref
    return _ok(time_ok or mem_ok)


def stability(row, th: Thresholds, col_spread: str) -> dict[str, str]:
    st = th.stability
    seeds = _ok(row["n_seeds"] >= st.min_seeds)
    if row["n_seeds"] < 2:
        spread = "missing: fewer than 2 finished seeds"
    else:
        spread = _ok(row[col_spread] * 100 <= st.max_spread_pp + EPS)
    failures = _ok(st.allow_failed_runs or row["n_failed"] == 0)
    return {"wnf_seeds": seeds, "wnf_spread": spread, "wnf_no_failures": failures}


def row_checks(df: pd.DataFrame, row: pd.Series, th: Thresholds, metric: str = "macro_F1",
               families: Mapping[str, Family] | None = None) -> dict[str, str]:
    """The six threshold cells plus the references used, for one configuration row."""
    families = declared_families() if families is None else families
    col = f"{metric}_mean"
    cells = dict.fromkeys(WNF_COLUMNS, NA)
    refs = {"ref_baseline": "", "ref_exact": ""}
    fam = row["family"]
    if fam == BASELINE_FAMILY:
        return {**cells, **refs, "PASS_WNF": NA}
    cells.update(stability(row, th, f"{metric}_spread"))
    base = reference_baseline(df, row, col)
    refs["ref_baseline"] = "" if base is None else base["config_id"]
    q = th.quality
    declared = families.get(fam, Family(fam))
    if declared.exact:
        cells["wnf_vs_baseline"] = check_vs_baseline(row, base, q.exact_min_gain_over_baseline_pp, col)
    else:
        ref = reference_exact(df, row, col, {f.label for f in families.values() if f.exact})
        refs["ref_exact"] = "" if ref is None else ref["config_id"]
        cells["wnf_vs_baseline"] = check_vs_baseline(row, base, q.efficient_min_gain_over_baseline_pp, col)
        cells["wnf_vs_exact"] = check_vs_exact(row, ref, q.efficient_max_drop_vs_exact_pp, col)
        cells["wnf_cost"] = check_cost(row, ref, th.cost_for(fam, declared.cost_thresholds))
    if row["n_seeds"] == 0:
        cells.update({k: "FAIL" for k in ("wnf_vs_baseline", "wnf_vs_exact", "wnf_cost") if cells[k] != NA})
    return {**cells, **refs, "PASS_WNF": overall(cells)}


def overall(cells: dict[str, str]) -> str:
    values = list(cells.values())
    if "FAIL" in values:
        return "FAIL"
    if any(v.startswith("missing") for v in values):
        return "INCOMPLETE"
    return "PASS"


def add_pass_wnf(df: pd.DataFrame, th: Thresholds, metric: str = "macro_F1",
                 families: Mapping[str, Family] | None = None) -> pd.DataFrame:
    """Return ``df`` with the threshold columns, the references used and ``PASS_WNF`` appended."""
    if df.empty:
        return df.assign(**{c: [] for c in (*WNF_COLUMNS, "ref_baseline", "ref_exact", "PASS_WNF")})
    families = declared_families() if families is None else families
    checks = pd.DataFrame([row_checks(df, row, th, metric, families) for _, row in df.iterrows()], index=df.index)
    return pd.concat([df, checks], axis=1)
