"""Read experiment folders (finetune runs and baselines) into flat :class:`Run` records.

The folder contract (written by ``effx.train`` and ``effx baseline``): ``resolved_config.yaml`` (finetune)
or ``config.yaml`` with ``kind: baseline``; ``status.json``; ``metrics.csv`` (long format);
``run_info.json``; optionally ``eval.json`` (``{"results": {split: {metric: value, ...}}}``).

A run is *failed* when its status is not ``finished``, when a loss or the report metric is NaN/Inf, or
when no metrics exist for the requested split; :attr:`Run.cause` says which, in words.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import attrs
import pandas as pd
import yaml

from ..config import parse_yaml
from ..train.runfiles import metrics_in
from ._io import read_json

EXPERIMENT_KINDS = ("finetune", "baseline")


@attrs.define
class Run:
    """One experiment folder, flattened for the report."""

    name: str
    kind: str  # finetune | baseline
    path: Path
    config: dict[str, Any]  # flattened dotted keys
    seed: int | None
    status: str  # finished | failed | interrupted | running | missing
    cause: str = ""
    metrics: dict[str, float] = attrs.Factory(dict)
    metrics_source: str = ""
    cost: dict[str, Any] = attrs.Factory(dict)
    info: dict[str, Any] = attrs.Factory(dict)

    @property
    def ok(self) -> bool:
        return self.status == "finished" and not self.cause


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{'a': {'b': 1}} -> {'a.b': 1}``; lists and scalars are leaves."""
    if not isinstance(data, dict):
        return {prefix: data} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(flatten(value, dotted))
        else:
            out[dotted] = value
    return out


def _read_yaml(path: Path) -> dict | None:
    try:
        data = parse_yaml(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def experiment_kind(folder: Path) -> str | None:
    """``finetune`` / ``baseline`` for a run folder, None for anything else (e.g. pretraining)."""
    cfg = _read_yaml(folder / "config.yaml") or {}
    if cfg.get("kind") == "baseline":
        return "baseline"
    if folder.parent.name == "pretrain" or (cfg.get("head") or {}).get("type") == "mlm":
        return None  # pretraining (masked-language modelling) is not a classifier
    if (folder / "resolved_config.yaml").exists() or folder.parent.name == "finetune":
        return "finetune"
    return None


RUN_FILES = ("status.json", "metrics.csv", "resolved_config.yaml", "eval.json")


def find_experiments(root: str | Path, exclude: Path | None = None) -> list[Path]:
    """Every finetune or baseline folder under ``root`` (which may itself be one) that has been run.

    A folder counts once it holds a run file (:data:`RUN_FILES`); ``exclude`` (this report's folder)
    and other report folders (saved configs, reproduced runs) are never scanned.
    """
    root = Path(root).resolve()
    skip = exclude.resolve() if exclude is not None else None
    candidates = [root] if (root / "config.yaml").exists() else []
    candidates += sorted(p.parent for p in root.rglob("config.yaml") if p.parent != root)
    return [p for p in candidates
            if not (skip is not None and p.is_relative_to(skip)) and not _inside_report(p, root)
            and any((p / f).exists() for f in RUN_FILES) and experiment_kind(p) is not None]


def _inside_report(folder: Path, root: Path) -> bool:
    """True below another report folder (its saved configs and reproduced runs are not new runs)."""
    return any((d / "reproduce.sh").exists() and (d / "results.csv").exists()
               for d in folder.parents if d != root and d.is_relative_to(root))


def _pretrain_config(resolved: dict, folder: Path) -> dict[str, Any]:
    """Pretraining settings that shaped the encoder (train/data/mlm of ``pretrain/PRE/config.yaml``)."""
    ref = resolved.get("pretrain") or {}
    path = ref.get("path")
    if not path:
        return {}
    sibling = folder.parent.parent / "pretrain" / str(ref.get("name")) / "config.yaml"
    cfg = _read_yaml(Path(path) / "config.yaml") or _read_yaml(sibling)
    if not cfg:
        return {}
    kept = {k: cfg[k] for k in ("train", "data", "mlm") if k in cfg}
    return {f"pretrain_config.{k}": v for k, v in flatten(kept).items()}


def load_config(folder: Path, kind: str) -> dict[str, Any]:
    if kind == "baseline":
        return flatten(_read_yaml(folder / "config.yaml") or {})
    resolved = _read_yaml(folder / "resolved_config.yaml")
    if resolved is None:
        return flatten(_read_yaml(folder / "config.yaml") or {})
    return {**flatten(resolved), **_pretrain_config(resolved, folder)}


def read_metrics_csv(folder: Path) -> pd.DataFrame | None:
    path = folder / "metrics.csv"
    if not path.exists():
        return None
    try:
        return pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError):
        return None


def _finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def split_metrics(folder: Path, df: pd.DataFrame | None, split: str) -> tuple[dict[str, float], str]:
    """Metrics for ``split``: ``eval.json`` first; for validation, else the last validation row of metrics.csv."""
    ev = read_json(folder / "eval.json") or {}
    res = (ev.get("results") or {}).get(split)
    if isinstance(res, dict) and "metrics" in res:
        return {k: float(v) if v is not None else math.nan for k, v in res["metrics"].items()}, f"eval.json:{split}"
    if split == "validation" and df is not None and "split" in df:
        val = df[df["split"] == "validation"]
        cols = metrics_in(val.columns)
        val = val.dropna(subset=cols, how="all") if cols else val.iloc[0:0]
        if len(val):
            row = val.sort_values("step", kind="stable").iloc[-1] if "step" in val else val.iloc[-1]
            return {m: float(row[m]) for m in cols}, "metrics.csv:last-validation"
    return {}, ""


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    return pd.to_numeric(df[name], errors="coerce") if name in df else pd.Series(dtype=float)


def _per_epoch(df: pd.DataFrame, col: str) -> pd.Series:
    """The last non-empty value of ``col`` in each epoch (rows of any split)."""
    vals = df.assign(_v=_col(df, col)).dropna(subset=["_v"])
    if vals.empty:
        return vals["_v"]
    return vals.groupby("epoch", sort=True)["_v"].last() if "epoch" in vals else vals["_v"]


def training_cost(df: pd.DataFrame | None, ev: dict, split: str, info: dict | None = None) -> dict[str, Any]:
    """time/epoch (mean over *full* epochs), time/step and training tokens/s (means of train rows), peak
    memory (max) and its kind. A run that never completed an epoch (stopped by ``train.max_steps``) gets
    time/epoch extrapolated from its time per step and ``steps_per_epoch`` (run_info.json), and
    ``time_per_epoch_source`` says so."""
    cost: dict[str, Any] = {"time_per_epoch_s": math.nan, "time_per_epoch_source": "", "time_per_step_s": math.nan,
                            "train_tokens_per_s": math.nan, "peak_mem_MiB": math.nan, "mem_kind": ""}
    if df is not None and "split" in df:
        train = df[df["split"] == "train"]
        cost["time_per_epoch_s"] = float(_per_epoch(df, "time_per_epoch_s").mean())
        cost["time_per_step_s"] = float(_col(train, "time_per_step_s").dropna().mean())
        cost["train_tokens_per_s"] = float(_col(train, "tokens_per_s").dropna().mean())
        mem = _col(df, "peak_mem_MiB").dropna()
        cost["peak_mem_MiB"] = float(mem.max()) if len(mem) else math.nan
        kinds = df["mem_kind"].dropna().unique().tolist() if "mem_kind" in df else []
        cost["mem_kind"] = str(kinds[-1]) if kinds else ""
        cost["time_per_epoch_source"] = "measured" if _finite(cost["time_per_epoch_s"]) else ""
    per_epoch = (info or {}).get("steps_per_epoch")
    if not _finite(cost["time_per_epoch_s"]) and _finite(cost["time_per_step_s"]) and per_epoch:
        cost["time_per_epoch_s"] = cost["time_per_step_s"] * float(per_epoch)
        cost["time_per_epoch_source"] = "extrapolated from time_per_step_s"
    res = ((ev.get("results") or {}).get(split) or {})
    cost["infer_tokens_per_s"] = float(res.get("tokens_per_s") or math.nan)
    return cost


def nonfinite_loss(folder: Path) -> bool:
    """True if a loss cell of metrics.csv reads nan/inf (read as text: an empty cell is not a NaN)."""
    try:
        raw = pd.read_csv(folder / "metrics.csv", dtype=str, keep_default_na=False, usecols=["loss"])
    except (ValueError, OSError, pd.errors.ParserError):
        return False
    return raw["loss"].str.strip().str.lower().isin({"nan", "inf", "-inf", "+inf", "infinity", "-infinity"}).any()


def _failure(status: dict | None, folder: Path, metrics: dict, metric: str, split: str) -> tuple[str, str]:
    """``(status, cause)``; cause is empty for a usable run."""
    if status is None:
        return "missing", "no status.json (run never started or crashed before writing it)"
    state = str(status.get("status", "missing"))
    if state != "finished":
        cause = status.get("cause") or ("still running, or killed without a chance to record why"
                                        if state == "running" else "no cause recorded")
        return state, str(cause)
    if nonfinite_loss(folder):
        return "failed", "NaN/Inf loss in metrics.csv"
    if not metrics:
        return "failed", f"missing metrics for split '{split}' (run `effx eval -exp NAME -split {split}`)"
    if not _finite(metrics.get(metric)):
        return "failed", f"{metric} is missing or NaN"
    return state, ""


def load_run(folder: Path, split: str = "validation", metric: str = "macro_F1") -> Run:
    kind = experiment_kind(folder) or "finetune"
    config = load_config(folder, kind)
    df = read_metrics_csv(folder)
    ev = read_json(folder / "eval.json") or {}
    metrics, source = split_metrics(folder, df, split)
    state, cause = _failure(read_json(folder / "status.json"), folder, metrics, metric, split)
    info = read_json(folder / "run_info.json") or {}
    seed = config.get("seed", info.get("seed"))
    return Run(name=folder.name, kind=kind, path=folder.resolve(), config=config,
               seed=int(seed) if isinstance(seed, int) else None, status=state, cause=cause,
               metrics=metrics, metrics_source=source, cost=training_cost(df, ev, split, info), info=info)


def load_runs(root: str | Path, split: str = "validation", metric: str = "macro_F1",
              exclude: Path | None = None) -> list[Run]:
    return [load_run(p, split, metric) for p in find_experiments(root, exclude)]
