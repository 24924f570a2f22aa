"""Built-in metrics on numpy arrays (scikit-learn): accuracy, macro_F1, weighted_F1, AUROC."""
from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from ..components import Metric
from ..hookspecs import hookimpl


def _pred(y_prob: np.ndarray) -> np.ndarray:
    return np.asarray(y_prob).argmax(axis=1)


class Accuracy(Metric):
    name = "accuracy"

    def __call__(self, y_true, y_prob) -> float:
        return float(accuracy_score(y_true, _pred(y_prob)))


class MacroF1(Metric):
    name = "macro_F1"

    def __call__(self, y_true, y_prob) -> float:
        labels = np.arange(np.asarray(y_prob).shape[1])
        return float(f1_score(y_true, _pred(y_prob), labels=labels, average="macro", zero_division=0))


class WeightedF1(Metric):
    name = "weighted_F1"

    def __call__(self, y_true, y_prob) -> float:
        return float(f1_score(y_true, _pred(y_prob), average="weighted", zero_division=0))


class AUROC(Metric):
    """Binary: ROC AUC of the positive class. Multiclass: one-vs-rest, macro over the classes
    present with both positives and negatives in ``y_true`` (NaN if none)."""

    name = "AUROC"

    def __call__(self, y_true, y_prob) -> float:
        y_true, y_prob = np.asarray(y_true), np.asarray(y_prob, dtype=np.float64)
        if y_prob.shape[1] == 2:
            return float(roc_auc_score(y_true, y_prob[:, 1])) if len(np.unique(y_true)) == 2 else math.nan
        scores = [
            roc_auc_score(y_true == c, y_prob[:, c])
            for c in range(y_prob.shape[1])
            if 0 < (y_true == c).sum() < len(y_true)
        ]
        return float(np.mean(scores)) if scores else math.nan


@hookimpl
def effx_metric_types():
    return [Accuracy, MacroF1, WeightedF1, AUROC]
