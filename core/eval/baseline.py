"""``effx baseline``: TF-IDF (word 1-2-grams) + logistic regression with scikit-learn.

Trained on exactly the split of the experiment it is compared with: the same ``load_splits`` call
with the same data settings, seed and label mapping (``-like FT`` copies them from
``finetune/FT/resolved_config.yaml`` and ``labels.json``). Writes the files of any run into
``<root>/baseline/NAME/`` - ``config.yaml`` (``kind: baseline``), ``metrics.csv``, ``eval.json``
(validation and test), ``status.json``, ``run_info.json``, ``labels.json`` - so the comparison
report treats it like a finetune run. Cost figures: fit time as ``time_per_epoch_s`` (one pass),
training tokens/s (word tokens of the TF-IDF tokenizer), peak resident memory of the process.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Literal, Optional

import attrs
import numpy as np

from ..config import DataConfig, dump_yaml, load_yaml, structure, to_dict
from ..errors import ConfigError, EffxError
from ..sysinfo import peak_memory, reset_peak_memory
from ._io import write_json, write_text
from ..metrics import score


@attrs.frozen
class TfidfConfig:
    ngram_min: int = 1
    ngram_max: int = 2
    min_df: int = 1
    max_features: Optional[int] = 200_000
    sublinear_tf: bool = True
    lowercase: bool = True


@attrs.frozen
class LogRegConfig:
    C: float = 1.0
    max_iter: int = 1000
    class_weight: Optional[Literal["balanced"]] = None


@attrs.frozen
class BaselineConfig:
    """What ``baseline/NAME/config.yaml`` holds; ``like`` names the finetune run the split came from."""

    kind: Literal["baseline"] = "baseline"
    like: Optional[str] = None
    seed: int = 0
    data: DataConfig = DataConfig()
    tfidf: TfidfConfig = TfidfConfig()
    logreg: LogRegConfig = LogRegConfig()


def baseline_dir(name: str, root: str | Path | None = None) -> Path:
    from ..train.paths import check_name, resolve_root

    return resolve_root(root) / "baseline" / check_name(name)


def _set_dotted(data: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {dotted}: '{k}' is not a section")
    node[keys[-1]] = value


def parse_sets(pairs: tuple[str, ...] | list[str]) -> list[tuple[str, Any]]:
    """``key=value`` pairs, parsed exactly as ``effx init --set`` parses them."""
    from ..train.experiment import parse_set

    return [parse_set(pair) for pair in pairs]


def _like(ft: str, root: str | Path | None) -> tuple[dict, list | None]:
    from .evaluate import finetune_dir

    d = finetune_dir(ft, root)
    resolved = load_yaml(d / "resolved_config.yaml") if (d / "resolved_config.yaml").exists() else None
    if not isinstance(resolved, dict):
        raise EffxError(f"finetune/{ft} has no resolved_config.yaml yet; run `effx finetune -exp {ft} -pretrain PRE` first")
    labels = json.loads((d / "labels.json").read_text(encoding="utf-8")) if (d / "labels.json").exists() else None
    if isinstance(labels, dict):
        labels = labels.get("label_names") or labels.get("labels")
    return {"like": ft, "seed": resolved.get("seed", 0), "data": resolved.get("data") or {}}, labels


def make_config(like: str | None = None, sets=(), config_file: str | Path | None = None,
                root: str | Path | None = None) -> tuple[BaselineConfig, list | None]:
    """Build the config from ``-like FT``, a saved ``--config`` file, and/or ``--set`` overrides."""
    data: dict = {}
    labels = None
    if config_file is not None:
        data = load_yaml(config_file) or {}
        if isinstance(data, dict) and data.get("like"):
            try:
                labels = _like(data["like"], root)[1]
            except EffxError:
                labels = None
    if like is not None:
        like_data, labels = _like(like, root)
        data = {**data, **like_data}
    for key, value in parse_sets(sets):
        _set_dotted(data, key, value)
    return structure(data, BaselineConfig, root="baseline"), labels


def _splits(cfg: BaselineConfig, root: Path, labels):
    from ..data import load_splits
    from .evaluate import resolved_data

    return load_splits(resolved_data(cfg, root), cfg.seed, label_names=labels)


def fit(cfg: BaselineConfig, train_texts, train_labels):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    t = cfg.tfidf
    vec = TfidfVectorizer(ngram_range=(t.ngram_min, t.ngram_max), min_df=t.min_df, max_features=t.max_features,
                          sublinear_tf=t.sublinear_tf, lowercase=t.lowercase)
    clf = LogisticRegression(C=cfg.logreg.C, max_iter=cfg.logreg.max_iter, class_weight=cfg.logreg.class_weight,
                             random_state=cfg.seed)
    return make_pipeline(vec, clf).fit(list(train_texts), np.asarray(train_labels))


def full_proba(pipe, texts, n_classes: int) -> np.ndarray:
    """``(n, C)`` probabilities, with zero columns for classes absent from the training split."""
    probs = np.zeros((len(texts), n_classes))
    probs[:, pipe.classes_] = pipe.predict_proba(list(texts))
    return probs


def _log_loss(y: np.ndarray, probs: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None))))


def _count_tokens(texts) -> int:
    pattern = re.compile(r"(?u)\b\w\w+\b")  # TfidfVectorizer's default token pattern
    return sum(len(pattern.findall(t)) for t in texts)


def _run_info(cfg: BaselineConfig, pipe) -> dict[str, Any]:
    import sklearn
    import torch

    from ..sysinfo import device_info, git_commit, versions

    clf = pipe[-1]
    return {"seed": cfg.seed, "dtype": "float64", "device": device_info(torch.device("cpu")),
            "versions": {**versions(), "scikit-learn": sklearn.__version__}, "git_commit": git_commit(),
            "num_parameters": int(clf.coef_.size + clf.intercept_.size), "model": "tfidf_logreg",
            "vocabulary_size": len(pipe[0].vocabulary_)}


def _metrics_csv(train_row: dict, val_row: dict, metric_names) -> str:
    import pandas as pd

    from ..train.runfiles import metric_columns

    return pd.DataFrame([train_row, val_row], columns=metric_columns(metric_names)).to_csv(index=False)


def _evaluate(pipe, split, n_classes: int) -> tuple[dict, np.ndarray]:
    probs = full_proba(pipe, split["text"], n_classes)
    y = np.asarray(split["label"])
    return {"metrics": score(y, probs), "loss": _log_loss(y, probs), "n_examples": int(len(y))}, probs


def train_baseline(cfg: BaselineConfig, out: Path, root: Path, labels=None) -> dict[str, Any]:
    """Fit on the train split, score validation (and test if present), write the run files into ``out``."""
    import torch

    reset_peak_memory(torch.device("cpu"))  # this baseline's own peak, not that of earlier work in the process
    splits = _splits(cfg, root, labels)
    names = [str(n) for n in (splits.label_names or sorted(set(splits.train["label"])))]
    t0 = time.perf_counter()
    pipe = fit(cfg, splits.train["text"], splits.train["label"])
    seconds = time.perf_counter() - t0
    mem, kind = peak_memory(torch.device("cpu"))
    tokens = _count_tokens(splits.train["text"])
    train, _ = _evaluate(pipe, splits.train, len(names))
    results = {"validation": _evaluate(pipe, splits.validation, len(names))[0]}
    if splits.test is not None and len(splits.test):
        results["test"] = _evaluate(pipe, splits.test, len(names))[0]
    base = {"step": 1, "epoch": 1}
    train_row = {**base, "split": "train", "loss": train["loss"], **train["metrics"], "tokens_per_s": tokens / seconds,
                 "time_per_epoch_s": seconds, "peak_mem_MiB": mem, "mem_kind": kind}
    val_row = {**base, "split": "validation", "loss": results["validation"]["loss"], **results["validation"]["metrics"]}
    write_text(out / "metrics.csv", _metrics_csv(train_row, val_row, list(train["metrics"])))
    for res in results.values():
        res.update({"checkpoint": "", "checkpoint_arg": "", "peak_rss_MiB": mem, "mem_kind": kind,
                    "memory_column": "peak_rss_MiB", "device": "cpu"})
    write_json(out / "eval.json", {"experiment": out.name, "results": results})
    write_json(out / "labels.json", names)
    write_json(out / "run_info.json", _run_info(cfg, pipe))
    return results


def run_baseline(name: str, cfg: BaselineConfig, labels=None, root: str | Path | None = None) -> dict[str, Any]:
    """Create ``<root>/baseline/NAME`` and train; a failure is recorded in status.json and re-raised."""
    from ..train.paths import resolve_root

    out = baseline_dir(name, root)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "config.yaml", dump_yaml(to_dict(cfg)))
    write_json(out / "status.json", {"status": "running", "cause": None, "step": 0, "epoch": 0})
    try:
        results = train_baseline(cfg, out, resolve_root(root), labels)
    except BaseException as exc:
        cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        state = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        write_json(out / "status.json", {"status": state, "cause": cause, "step": 0, "epoch": 0})
        if isinstance(exc, (EffxError, KeyboardInterrupt)):
            raise
        raise EffxError(f"baseline {name} failed: {cause}") from exc
    write_json(out / "status.json", {"status": "finished", "cause": None, "step": 1, "epoch": 1})
    return results
