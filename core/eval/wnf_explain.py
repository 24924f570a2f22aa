"""The measured value and the threshold behind every PASS_WNF cell, in words, for the reports.

:mod:`.wnf` decides PASS / FAIL / n.a. / missing; this module says what was compared with what, so a
reader sees why a configuration failed without looking up the rules.
"""
from __future__ import annotations

import attrs
import pandas as pd

from .fmt import missing
from .thresholds import Thresholds
from .wnf import NA

CRITERIA = {  # results column -> heading in the report
    "wnf_vs_baseline": "quality vs TF-IDF+LR",
    "wnf_vs_exact": "gap to exact attention",
    "wnf_cost": "time or memory reduction",
    "wnf_seeds": "finished seeds",
    "wnf_spread": "seed spread",
    "wnf_no_failures": "no failed runs",
}


@attrs.frozen
class Detail:
    verdict: str  # PASS / FAIL / n.a. / missing: ...
    measured: str
    threshold: str

    @property
    def reason(self) -> str:
        """One sentence for a FAIL or a missing reference; empty otherwise."""
        if self.verdict == "FAIL":
            return f"measured {self.measured}; needs {self.threshold}"
        return self.verdict.removeprefix("missing: ") if self.verdict.startswith("missing") else ""


def _ref(df: pd.DataFrame, cid) -> pd.Series | None:
    hit = df[df["config_id"] == cid] if isinstance(cid, str) and cid else df.iloc[0:0]
    return None if hit.empty else hit.iloc[0]


def _memory(row) -> float:
    gpu = row.get("max_gpu_mem_MiB")
    return gpu if not missing(gpu) else row.get("peak_rss_MiB")


def _reduction(value, ref) -> str:
    if missing(value) or missing(ref) or not ref:
        return "–"
    cut = (1 - value / ref) * 100
    return f"{abs(cut):.1f} % {'less' if cut >= 0 else 'more'}"


def vs_baseline(row, base, th: Thresholds, col: str) -> tuple[str, str]:
    q = th.quality
    exact = str(row.get("wnf_vs_exact")) == NA  # exact families are the reference: no gap to check
    need = q.exact_min_gain_over_baseline_pp if exact else q.efficient_min_gain_over_baseline_pp
    if base is None or missing(row[col]):
        return "–", f"≥ +{need:.2f} pp over TF-IDF+LR"
    return (f"{(row[col] - base[col]) * 100:+.2f} pp ({row[col]:.4f} vs {base[col]:.4f})",
            f"≥ +{need:.2f} pp over TF-IDF+LR")


def vs_exact(row, ref, th: Thresholds, col: str) -> tuple[str, str]:
    need = f"≤ {th.quality.efficient_max_drop_vs_exact_pp:.2f} pp below exact attention"
    if ref is None or missing(row[col]):
        return "–", need
    return f"{(ref[col] - row[col]) * 100:.2f} pp below ({row[col]:.4f} vs {ref[col]:.4f})", need


def cost(row, ref, th: Thresholds) -> tuple[str, str]:
    c = th.cost_for(str(row["family"]))
    need = f"time ≥ {c.min_time_reduction:.0%} less or memory ≥ {c.min_memory_reduction:.0%} less than exact attention"
    if ref is None:
        return "–", need
    t = _reduction(row["time_per_epoch_s"], ref["time_per_epoch_s"])
    m = _reduction(_memory(row), _memory(ref))
    return f"time {t}, memory {m} than exact attention", need


def stability(row, th: Thresholds, metric: str) -> dict[str, tuple[str, str]]:
    st = th.stability
    spread = row.get(f"{metric}_spread")
    n_failed = 0 if missing(row["n_failed"]) else int(row["n_failed"])
    return {
        "wnf_seeds": (f"{row['n_seeds']} finished", f"≥ {st.min_seeds}"),
        "wnf_spread": ("–" if missing(spread) or row["n_seeds"] < 2 else f"{spread * 100:.2f} pp (max − min)",
                       f"≤ {st.max_spread_pp:.2f} pp"),
        "wnf_no_failures": (f"{n_failed} failed", "any number" if st.allow_failed_runs else "0 failed"),
    }


def explain_row(df: pd.DataFrame, row: pd.Series, th: Thresholds, metric: str = "macro_F1") -> dict[str, Detail]:
    """``results column -> Detail`` for one configuration row of ``results`` (with PASS_WNF columns)."""
    col = f"{metric}_mean"
    base, ref = _ref(df, row.get("ref_baseline")), _ref(df, row.get("ref_exact"))
    parts = {"wnf_vs_baseline": vs_baseline(row, base, th, col), "wnf_vs_exact": vs_exact(row, ref, th, col),
             "wnf_cost": cost(row, ref, th), **stability(row, th, metric)}
    out = {}
    for key, (measured, threshold) in parts.items():
        verdict = str(row[key])
        if verdict == "n.a.":
            measured, threshold = "–", "does not apply"
        elif row["n_seeds"] == 0 and key in ("wnf_vs_baseline", "wnf_vs_exact", "wnf_cost"):
            measured = "no finished seed"
        out[key] = Detail(verdict, measured, threshold)
    return out
