import math

import numpy as np
import pytest
import torch

import effx
from effx.builtin.heads import pool


def test_mean_and_max_pooling_ignore_padding():
    h = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, -100.0]]])  # (1, 3, 2)
    m = torch.tensor([[True, True, False]])
    assert pool(h, m, "cls").tolist() == [[1.0, 2.0]]
    assert pool(h, m, "mean").tolist() == [[2.0, 3.0]]
    assert pool(h, m, "max").tolist() == [[3.0, 4.0]]


@pytest.mark.parametrize("pooling", ["cls", "mean", "max"])
def test_classification_head_shape(pooling):
    reg = effx.load_registry()
    cls = reg.get("head", "classification").cls
    head = cls(cls.Config(num_classes=5, pooling=pooling, dropout=0.0), effx.HeadContext(8, 10))
    out = head(torch.randn(2, 4, 8), torch.ones(2, 4, dtype=torch.bool))
    assert out.shape == (2, 5)


def metric(name):
    return effx.load_registry().get("metric", name).cls()


def test_metrics_on_hand_computed_values():
    y = np.array([0, 0, 1, 1, 2, 2])
    prob = np.eye(3)[[0, 1, 1, 1, 2, 0]] * 0.8 + 0.2 / 3
    assert metric("accuracy")(y, prob) == pytest.approx(4 / 6)
    # per-class F1: c0: p=1/2 r=1/2 -> .5 ; c1: p=2/3 r=1 -> .8 ; c2: p=1 r=.5 -> 2/3
    assert metric("macro_F1")(y, prob) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert metric("weighted_F1")(y, prob) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_auroc_binary_and_multiclass():
    y = np.array([0, 0, 1, 1])
    p = np.array([[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]])
    assert metric("AUROC")(y, p) == pytest.approx(0.75)
    y3 = np.array([0, 1, 2, 0, 1, 2])
    perfect = np.eye(3)[y3]
    assert metric("AUROC")(y3, perfect) == pytest.approx(1.0)
    assert math.isnan(metric("AUROC")(np.array([1, 1]), np.array([[0.2, 0.8], [0.3, 0.7]])))
