"""Group runs that differ only in seed into configurations and compute the ``results.csv`` rows.

Three keys, all computed from the flattened saved config:

* **configuration** (``config_id``): every key except the seed and bookkeeping (logging, checkpoints,
  pretraining references/paths, workers) - runs sharing it are seeds of one configuration;
* **comparison group** (``compare_group``): data, seq_len, batch and tokenizer settings plus the device -
  PASS_WNF only compares configurations inside one group;
* **architecture without attention** (``arch_id``): the configuration minus ``model.attention.*`` - a
  configuration with an approximate attention is compared with the exact-attention one sharing it.

The ``family`` column comes from what the attention classes declare (:mod:`effx.eval.families`).
"""
from __future__ import annotations

import hashlib
import json
import math
from typing import Any, Iterable

import numpy as np
import pandas as pd

from .families import BASELINE_TYPE, declared_families, family_of, rank
from .runs import Run

IGNORED_PREFIXES = ("seed", "logging.", "checkpoint.", "pretrain.", "tokenizer.path", "data.num_workers",
                    "train.log_every_steps", "train.eval_every_steps", "train.device", "train.eval_batch_size",
                    "like", "kind", "name")
DATA_IGNORED = ("data.num_workers", "data.length_bucketing", "data.max_length")
INT_COLUMNS = ("d_model", "n_layers", "n_heads", "d_ff", "max_seq_len", "seq_len", "batch_size", "grad_accum_steps",
               "epochs", "max_steps", "tokenizer_vocab_size", "num_parameters", "n_seeds", "n_failed")


def _digest(items: Iterable[tuple[str, Any]]) -> str:
    blob = json.dumps(sorted((k, v) for k, v in items), default=str, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def _kept(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if not k.startswith(IGNORED_PREFIXES)}


def config_id(run: Run) -> str:
    kept = _kept(run.config)
    if run.kind == "baseline":  # TF-IDF+LR reads whole texts: the neural runs' max_length is not its setting
        kept = {k: v for k, v in kept.items() if k not in DATA_IGNORED}
    return _digest([("kind", run.kind), *kept.items()])


def arch_id(run: Run) -> str:
    return _digest(kv for kv in _kept(run.config).items() if not kv[0].startswith("model.attention."))


def data_id(run: Run) -> str:
    return _digest(kv for kv in run.config.items() if kv[0].startswith("data.") and kv[0] not in DATA_IGNORED)


def device_of(run: Run) -> str:
    """``cuda: <GPU name>`` / ``cpu: <processor>`` from run_info.json."""
    dev = run.info.get("device")
    if isinstance(dev, dict):
        kind, name = dev.get("type"), dev.get("name")
        return f"{kind}: {name}" if kind and name else str(kind or name or "unknown")
    return str(dev or "unknown")


def compare_group(run: Run) -> str:
    """Data + seq_len + batch + tokenizer + device; baselines have no seq_len/batch/tokenizer."""
    if run.kind == "baseline":
        return ""
    keys = [kv for kv in run.config.items() if kv[0].startswith(("data.", "tokenizer."))
            and kv[0] not in ("data.num_workers", "tokenizer.path")]
    keys += [("train.batch_size", run.config.get("train.batch_size")),
             ("train.grad_accum_steps", run.config.get("train.grad_accum_steps")), ("device", device_of(run))]
    return _digest(keys)


def _describe(run: Run) -> dict[str, Any]:
    c = run.config
    att = {k.split(".", 2)[2]: v for k, v in c.items() if k.startswith("model.attention.") and k != "model.attention.type"}
    att_type = BASELINE_TYPE if run.kind == "baseline" else c.get("model.attention.type", "")
    return {
        "family": family_of(att_type, run.kind), "variant": att_type, "kind": run.kind,
        "attention_type": att_type, "attention_params": json.dumps(att, sort_keys=True) if att else "",
        "positional": c.get("model.positional.type", ""), "d_model": c.get("model.d_model"),
        "n_layers": c.get("model.n_layers"), "n_heads": c.get("model.n_heads"), "d_ff": c.get("model.d_ff"),
        "max_seq_len": c.get("model.max_seq_len"),
        "seq_len": None if run.kind == "baseline" else c.get("data.max_length"),
        "batch_size": c.get("train.batch_size"), "grad_accum_steps": c.get("train.grad_accum_steps"),
        "pretraining": _pretraining(run),
        "lr": c.get("train.optimizer.lr"), "epochs": c.get("train.epochs"), "max_steps": c.get("train.max_steps"),
        "dtype": c.get("train.dtype"),
        "pooling": c.get("head.pooling"), "tokenizer_vocab_size": c.get("tokenizer.vocab_size"),
        "num_parameters": run.info.get("num_parameters"), "device": device_of(run),
    }


def _pretraining(run: Run) -> str:
    """The pretraining experiment a finetune started from, ``none`` for one trained from scratch."""
    if run.kind == "baseline":
        return ""
    return str(run.config.get("pretrain.name") or "none")


def _stats(values: list[float], prefix: str, best: bool = False) -> dict[str, float]:
    arr = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    out = {f"{prefix}_mean": float(arr.mean()) if arr.size else math.nan,
           f"{prefix}_std": float(arr.std(ddof=1)) if arr.size > 1 else math.nan}  # one seed: spread unknown
    if best:
        out = {f"{prefix}_best": float(arr.max()) if arr.size else math.nan, **out,
               f"{prefix}_spread": float(arr.max() - arr.min()) if arr.size else math.nan}
    return out


def _mean(values: Iterable[Any]) -> float:
    arr = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(arr)) if arr else math.nan


def _memory(ok: list[Run]) -> dict[str, float]:
    """Peak memory, in the column named for what was measured (GPU allocator vs CPU resident set)."""
    gpu = [r.cost.get("peak_mem_MiB") for r in ok if r.cost.get("mem_kind") == "cuda_max_allocated"]
    cpu = [r.cost.get("peak_mem_MiB") for r in ok if r.cost.get("mem_kind") == "cpu_rss"]
    return {"max_gpu_mem_MiB": _mean(gpu), "peak_rss_MiB": _mean(cpu)}


def configuration_row(runs: list[Run], split: str, metric_names: Iterable[str]) -> dict[str, Any]:
    """One results.csv row: description, seed statistics over the usable runs, cost, status."""
    ok = [r for r in runs if r.ok]
    first = runs[0]
    row: dict[str, Any] = {"config_id": config_id(first), **_describe(first), "split": split,
                           "compare_group": compare_group(first), "data_id": data_id(first), "arch_id": arch_id(first)}
    row["n_seeds"] = len(ok)
    row["seeds"] = " ".join(str(r.seed) for r in sorted(ok, key=lambda r: (r.seed is None, r.seed)))
    row["n_failed"] = len(runs) - len(ok)
    for m in metric_names:
        row.update(_stats([r.metrics.get(m, math.nan) for r in ok], m, best=(m == "macro_F1")))
    row["time_per_epoch_s"] = _mean(r.cost.get("time_per_epoch_s") for r in ok)
    row["time_per_epoch_source"] = " ".join(sorted({str(r.cost.get("time_per_epoch_source") or "") for r in ok} - {""}))
    row["time_per_step_s"] = _mean(r.cost.get("time_per_step_s") for r in ok)
    row["train_tokens_per_s"] = _mean(r.cost.get("train_tokens_per_s") for r in ok)
    row["infer_tokens_per_s"] = _mean(r.cost.get("infer_tokens_per_s") for r in ok)
    row.update(_memory(ok))
    row["status"] = "finished" if not row["n_failed"] else ("failed" if not ok else f"partial ({row['n_failed']} failed)")
    row["metrics_source"] = " ".join(sorted({r.metrics_source for r in ok}))
    row["experiments"] = " ".join(sorted(r.name for r in ok))  # the runs behind the figures
    row["failed_experiments"] = " ".join(sorted(r.name for r in runs if not r.ok))
    return row


def _one_per_seed(runs: list[Run]) -> list[Run]:
    """Baselines fitted twice on the same split (one per neural max_length of a sweep) are one fit:
    of the usable ones keep the first by name per seed, so repeats are not counted as seeds."""
    if not runs or runs[0].kind != "baseline":
        return runs
    kept: dict[Any, Run] = {}
    for run in sorted((r for r in runs if r.ok), key=lambda r: r.name):
        kept.setdefault(run.seed, run)
    return [r for r in runs if not r.ok or kept.get(r.seed) is r]


def metric_names(runs: list[Run]) -> list[str]:
    """The registered metrics (registration order), then any other metric the runs recorded."""
    from ..metrics import metric_names as registered
    from ..plugins import load_registry

    names = registered(load_registry())
    return [*names, *sorted({m for r in runs for m in r.metrics} - set(names))]


def group_runs(runs: list[Run]) -> dict[str, list[Run]]:
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(config_id(run), []).append(run)
    return {cid: _one_per_seed(rs) for cid, rs in groups.items()}


def results_table(runs: list[Run], split: str) -> pd.DataFrame:
    names = metric_names(runs)
    rows = [configuration_row(rs, split, names) for rs in group_runs(runs).values()]
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df = df.astype({c: "Int64" for c in INT_COLUMNS})
    families = declared_families()
    df["_rank"] = df["family"].map(lambda f: rank(f, families))
    df = df.sort_values(["_rank", "family", "variant", "config_id"], kind="stable")
    return df.drop(columns="_rank").reset_index(drop=True)


def single_seed_std_as_na(df: pd.DataFrame) -> pd.DataFrame:
    """For the CSV files: a ``*_std`` of a one-seed configuration reads ``n.a.``, not an empty cell
    (no seeds at all) or a misleading 0.0."""
    if df.empty or "n_seeds" not in df:
        return df
    one = df["n_seeds"] == 1
    out = df.copy()
    for col in [c for c in df.columns if c.endswith("_std")]:
        out[col] = out[col].astype(object).where(~one, "n.a.")
    return out


def failed_table(runs: list[Run]) -> pd.DataFrame:
    rows = [{"experiment": r.name, "config_id": config_id(r), "kind": r.kind,
             "attention_type": BASELINE_TYPE if r.kind == "baseline" else r.config.get("model.attention.type", ""),
             "seed": r.seed, "status": r.status, "cause": r.cause, "path": str(r.path)}
            for r in runs if not r.ok]
    columns = ["experiment", "config_id", "kind", "attention_type", "seed", "status", "cause", "path"]
    return pd.DataFrame(rows, columns=columns)
