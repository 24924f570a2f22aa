"""Time-to-accuracy: the wall time a configuration needs until its validation macro-F1 first reaches a target.

The **target** of a comparison group is the TF-IDF+LR baseline's mean *validation* macro-F1 over its
finished seeds, minus ``quality.time_to_target_drop_pp`` percentage points (thresholds.yaml). It is always
taken from the validation split, whatever split the report scores; with several baseline configurations
on the same data, the best one sets the target (as for PASS_WNF). No baseline on the data: no target.

Per finished seed:

* a **finetune** run reaches the target at the ``wall_s`` of its first validation row in ``metrics.csv``
  (in step order) whose macro-F1 is at least the target - the first crossing, not the best or last row.
  ``wall_s`` already counts the time of the attempts a resumed run continues (training adds the wall
  time of the rows it keeps), so it is the run's total training time up to that row; only the work an
  interrupted attempt did after its last kept row (discarded on resume) is not in it. A run whose
  validation never reaches the target has not reached it;
* its **pretraining** costs the total wall time of ``pretrain/NAME`` (the largest ``wall_s`` of its
  metrics.csv), 0 for a run trained from scratch, unknown when that folder is not found;
* a **baseline** run reaches the target in its fit time (``time_per_epoch_s``) if its own validation
  macro-F1 is at least the target, with no pretraining.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from .results import data_id, group_runs
from .runs import Run, read_metrics_csv, split_metrics

TARGET_METRIC = "macro_F1"
TTT_COLUMNS = ("target_macro_F1", "time_to_target_s", "pretrain_wall_s", "time_to_target_total_s", "target_reached")
EPS = 1e-9  # the target is inclusive; absorb float rounding as PASS_WNF does


def validation_score(run: Run) -> float:
    """The run's validation macro-F1 (``eval.json``, else the last validation row of metrics.csv)."""
    metrics, _ = split_metrics(run.path, read_metrics_csv(run.path), "validation")
    value = metrics.get(TARGET_METRIC, math.nan)
    return float(value) if value is not None else math.nan


def group_target(runs: Iterable[Run], drop_pp: float) -> float:
    """Best baseline configuration's mean validation macro-F1 over its finished seeds, minus ``drop_pp`` points."""
    means = []
    for group in group_runs([r for r in runs if r.kind == "baseline" and r.ok]).values():
        scores = [s for s in map(validation_score, group) if math.isfinite(s)]
        if scores:
            means.append(float(np.mean(scores)))
    return max(means) - drop_pp / 100 if means else math.nan


def validation_curve(folder: Path) -> pd.DataFrame:
    """Validation rows of ``metrics.csv`` with a macro-F1 and a ``wall_s``, in step order."""
    df = read_metrics_csv(folder)
    if df is None or not {"split", TARGET_METRIC, "wall_s"} <= set(df.columns):
        return pd.DataFrame(columns=[TARGET_METRIC, "wall_s"], dtype=float)
    val = df[df["split"] == "validation"]
    if "step" in val:
        val = val.sort_values("step", kind="stable")
    curve = val[[TARGET_METRIC, "wall_s"]].apply(pd.to_numeric, errors="coerce")
    return curve.dropna().reset_index(drop=True)


def first_crossing(curve: pd.DataFrame, target: float) -> float:
    """``wall_s`` of the first row whose macro-F1 is at least ``target``; NaN if none is."""
    hit = curve[curve[TARGET_METRIC] >= target - EPS]
    return float(hit["wall_s"].iloc[0]) if len(hit) else math.nan


def pretrain_wall(run: Run) -> float:
    """Total wall time of the pretraining a finetune started from: 0 from scratch, NaN if not found."""
    if run.kind == "baseline":
        return 0.0
    name = run.config.get("pretrain.name")
    if not name:
        return 0.0
    candidates = [run.path.parent.parent / "pretrain" / str(name)]
    if run.config.get("pretrain.path"):
        candidates.append(Path(str(run.config["pretrain.path"])))
    for folder in candidates:
        df = read_metrics_csv(folder)
        walls = pd.to_numeric(df["wall_s"], errors="coerce").dropna() if df is not None and "wall_s" in df else []
        if len(walls):
            return float(walls.max())
    return math.nan


def finetune_time(run: Run, target: float) -> float:
    """Training wall time until the run first reached ``target`` (NaN if it never did)."""
    if run.kind == "baseline":
        fit = float(run.cost.get("time_per_epoch_s") or math.nan)
        return fit if validation_score(run) >= target - EPS else math.nan
    return first_crossing(validation_curve(run.path), target)


def _mean(values: list[float]) -> float:
    """Mean, or NaN when empty or when any value is unknown (a partial mean would understate the cost)."""
    return float(np.mean(values)) if values and all(math.isfinite(v) for v in values) else math.nan


def configuration_columns(runs: list[Run], target: float) -> dict[str, Any]:
    """The time-to-target columns of one configuration from its finished seeds."""
    ok = [r for r in runs if r.ok]
    pre = [pretrain_wall(r) for r in ok]
    if not math.isfinite(target):
        return {"target_macro_F1": math.nan, "time_to_target_s": math.nan, "pretrain_wall_s": _mean(pre),
                "time_to_target_total_s": math.nan, "target_reached": math.nan}
    ft = [finetune_time(r, target) for r in ok]
    reached = [(f, p) for f, p in zip(ft, pre) if math.isfinite(f)]
    return {"target_macro_F1": target, "time_to_target_s": _mean([f for f, _ in reached]),
            "pretrain_wall_s": _mean(pre), "time_to_target_total_s": _mean([f + p for f, p in reached]),
            "target_reached": f"{len(reached)}/{len(ok)}"}


def add_time_to_target(df: pd.DataFrame, runs: list[Run], drop_pp: float) -> pd.DataFrame:
    """``df`` (results.csv rows) with the :data:`TTT_COLUMNS` appended; the target of a row comes from the
    baselines with its data settings (every row of a comparison group shares them)."""
    if df.empty:
        return df.assign(**{c: [] for c in TTT_COLUMNS})
    by_config = group_runs(runs)
    targets = {d: group_target([r for r in runs if data_id(r) == d], drop_pp) for d in df["data_id"].unique()}
    rows = [configuration_columns(by_config.get(cid, []), targets[did]) for cid, did in zip(df["config_id"], df["data_id"])]
    return pd.concat([df, pd.DataFrame(rows, index=df.index, columns=list(TTT_COLUMNS))], axis=1)


def target_legend(drop_pp: float, target: float = math.nan) -> str:
    """The one line that says what the time-to-target columns of a table mean."""
    value = f" = {target:.4f}" if math.isfinite(target) else ""
    return (f"time to target: wall time until validation macro_F1 ≥ TF-IDF+LR − {drop_pp:g} pp{value} "
            "(mean over the seeds that reached it, pretraining included); reached: seeds that reached it / finished seeds")


def group_target_of(part: pd.DataFrame) -> float:
    """The target shared by the rows of one table (NaN if unknown or if the rows have different targets)."""
    vals = part["target_macro_F1"].dropna().unique() if "target_macro_F1" in part else []
    return float(vals[0]) if len(vals) == 1 else math.nan
