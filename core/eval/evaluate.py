"""``effx eval -exp FT``: score a finetuned classifier on a split and record the result.

Metrics come from the registered metric plugins (built-ins: accuracy, macro_F1, weighted_F1, AUROC -
binary, or one-vs-rest macro for multiclass). Cost: inference tokens/s and peak memory
(``max_gpu_mem_MiB`` on GPU, ``peak_rss_MiB`` on CPU). The result is merged into the experiment's
``eval.json`` under ``results.<split>`` and written to the summary of the experiment's W&B run.

The model, tokenizer and label names come from the checkpoint, which must be one of this
experiment's; the data to score comes from the experiment's ``config.yaml`` as it is now (data paths
and fields edited after training are used, and the result says which file was scored and why).
Inputs longer than ``data.max_length`` tokens are truncated and counted (``truncated``).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from ..errors import EffxError
from ..metrics import score
from ..sysinfo import MEMORY_COLUMNS, peak_memory, reset_peak_memory
from ..train.distributed import pick_device
from ..train.precision import inference_dtype
from ..train.runfiles import now_iso
from ._io import read_json, write_json
from .inference import predict_proba

SPLITS = ("test", "validation")


def finetune_dir(exp: str, root: str | Path | None = None) -> Path:
    from ..train.paths import experiment_dir

    path = experiment_dir("finetune", exp, root)
    if not path.is_dir():
        raise EffxError(f"no finetune experiment '{exp}' at {path}; check -exp and --root/EFFX_ROOT")
    return path


def resolved_data(cfg, root: Path):
    """The data config with relative file paths resolved against the experiments root."""
    from ..train.paths import resolve_data_path

    d = cfg.data
    return attrs.evolve(d, **{k: resolve_data_path(getattr(d, k), root) for k in ("train", "validation", "test")})


DATA_SOURCE_KEYS = ("train", "validation", "test", "hub_name", "format", "text_field", "label_field")


def current_data(cfg, exp_dir: Path):
    """``cfg`` with the data source settings of ``exp_dir/config.yaml`` as it is now, and the keys that
    differ from the checkpoint's (edited since training)."""
    from ..config import DataConfig, load_yaml, structure, to_dict

    path = exp_dir / "config.yaml"
    raw = load_yaml(path) if path.is_file() else {}
    data = raw.get("data") if isinstance(raw, dict) else None
    if not isinstance(data, dict):
        return cfg, []
    changed = sorted(k for k in DATA_SOURCE_KEYS if k in data and data[k] != getattr(cfg.data, k))
    if not changed:
        return cfg, []
    new = structure({**to_dict(cfg.data), **{k: data[k] for k in changed}}, DataConfig, root=f"{path}: data")
    return attrs.evolve(cfg, data=new), changed


def scored_source(cfg, root: Path, split: str, changed: list[str]) -> str:
    """Which file a split comes from, and why that one (for the result and the console)."""
    d = resolved_data(cfg, root)
    origin = "config.yaml, edited since training" if split in changed else "config.yaml"
    if getattr(d, split) is not None:
        return f"{getattr(d, split)} (data.{split} from {origin})"
    if d.hub_name is not None:
        return f"hub dataset {d.hub_name}, split {split}"
    return f"{d.train} (validation carved from data.train, validation_fraction {d.validation_fraction})"


def split_records(cfg, root: Path, split: str, label_names):
    from ..data import load_splits

    if split not in SPLITS:
        raise EffxError(f"unknown split '{split}'; use one of: {', '.join(SPLITS)}")
    splits = load_splits(resolved_data(cfg, root), cfg.seed, label_names=label_names)
    ds = getattr(splits, split)
    if ds is None or len(ds) == 0:
        raise EffxError(f"split '{split}' has no records; set data.{split} to a file or use -split validation")
    warnings = [w for w in splits.warnings if w.startswith(f"data.{split}:")]
    return ds["text"], np.asarray(ds["label"]), warnings


def merge_eval_json(exp_dir: Path, split: str, result: dict[str, Any]) -> Path:
    """Add/replace ``results.<split>`` in ``eval.json`` (atomic), keeping the other splits."""
    data = read_json(exp_dir / "eval.json") or {}
    data.setdefault("experiment", exp_dir.name)
    data.setdefault("results", {})[split] = result
    return write_json(exp_dir / "eval.json", data)


def log_wandb(cfg, exp_dir: Path, split: str, result: dict[str, Any]) -> None:
    """Write the figures into the summary of the experiment's own W&B run (id in wandb_run_id.txt)."""
    from ..train.wandb_log import WandbLogger

    logger = WandbLogger(cfg.logging.wandb, exp_dir, exp_dir.name, {}, enabled=True, group="finetune")
    flat = {f"eval/{split}/{k}": v for k, v in result["metrics"].items() if v is not None and math.isfinite(v)}
    flat.update({f"eval/{split}/{k}": result[k] for k in ("tokens_per_s", result["memory_column"])})
    logger.summary(flat)
    logger.finish()


def run_state(exp_dir: Path, checkpoint: Path) -> dict[str, Any]:
    """``run_status`` from status.json, and a one-line ``warning`` when the run has not finished."""
    status = read_json(exp_dir / "status.json") or {}
    state = str(status.get("status") or "unknown")
    if state == "finished":
        return {"run_status": state}
    cause = f": {str(status['cause']).splitlines()[0]}" if status.get("cause") else ""
    return {"run_status": state,
            "warning": f"finetune/{exp_dir.name} did not finish (status {state} at step {status.get('step', '?')}"
                       f"{cause}); these scores are of {Path(checkpoint).name}, not of a finished run - continue "
                       f"it with -resume first"}


def evaluate(exp: str, split: str = "test", ckpt: str = "best", root: str | Path | None = None,
             wandb: bool = True) -> dict[str, Any]:
    """Score experiment ``exp`` on ``split`` with checkpoint ``ckpt``; returns what is stored in eval.json."""
    from ..train import load_for_inference

    exp_dir = finetune_dir(exp, root)
    inf = load_for_inference(exp_dir, ckpt=ckpt, owner=f"finetune/{exp}")
    cfg, changed = current_data(inf.config, exp_dir)
    texts, labels, warnings = split_records(cfg, exp_dir.parent.parent, split, inf.label_names)
    from ..data import encode_with_stats

    ids, truncated = encode_with_stats(inf.tokenizer, list(texts), cfg.data.max_length)
    device = pick_device(cfg.train.device)
    reset_peak_memory(device)
    dtype = inference_dtype(cfg.train.dtype, device)  # bf16 for a bf16-trained model on bf16 hardware
    out = predict_proba(inf.model, ids, len(inf.label_names), cfg.train.eval_batch_size, device, dtype)
    mem, kind = peak_memory(device)
    column = MEMORY_COLUMNS[kind]
    result = {"metrics": score(labels, out.probs, section=cfg.train.metrics), "n_examples": int(len(labels)),
              "data": scored_source(cfg, exp_dir.parent.parent, split, changed), "data_changed": changed,
              "truncated": int(truncated), "max_length": cfg.data.max_length,
              "checkpoint": str(inf.checkpoint_path), "checkpoint_arg": str(ckpt),
              "tokens_per_s": out.tokens_per_s, "texts_per_s": out.texts_per_s, "inference_dtype": out.dtype,
              "inference_s": out.seconds, column: mem, "mem_kind": kind,
              "memory_column": column, "device": str(device), "batch_size": cfg.train.eval_batch_size,
              "evaluated_at": now_iso()}
    state = run_state(exp_dir, inf.checkpoint_path)
    result["run_status"] = state["run_status"]
    result["warnings"] = [w for w in [state.get("warning")] if w] + warnings
    merge_eval_json(exp_dir, split, result)
    if wandb:
        log_wandb(cfg, exp_dir, split, result)
    return result
