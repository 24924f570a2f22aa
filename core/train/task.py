"""The two training tasks: masked-language modelling (pretrain) and sequence classification (finetune).

A task owns its collators, its loss and its validation metrics. Losses are returned as a *sum* plus
the number of predicted items (masked tokens / examples), so the trainer can normalise by the
global count over processes and accumulation steps: the gradient then equals that of one big batch,
which is what makes 2-process DDP match single-process training exactly.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..data import IGNORE_INDEX, MLMCollator, PadCollator, SPECIAL


class MLMTask:
    """BERT/RoBERTa masked-token prediction; validation masks are fixed (epoch 0) so losses compare."""

    name = "mlm"
    need_labels = False

    def __init__(self, vocab_size: int, cfg, seed: int) -> None:
        self.train_collator = MLMCollator(vocab_size, cfg.mlm, seed, pad_id=SPECIAL["pad"])
        self.eval_collator = MLMCollator(vocab_size, cfg.mlm, seed + 1, pad_id=SPECIAL["pad"])

    def set_epoch(self, epoch: int) -> None:
        self.train_collator.set_epoch(epoch)

    @staticmethod
    def forward_kwargs(batch: dict) -> dict:
        """Decode only the masked positions: the model returns logits ``(M, V)`` for them."""
        return {"select": batch["labels"] != IGNORE_INDEX}

    @staticmethod
    def targets(logits: torch.Tensor, batch: dict) -> torch.Tensor:
        """The labels matching ``logits``: ``(M,)`` for selected logits ``(M, V)``, else ``(B, N)``."""
        labels = batch["labels"]  # (B, N)
        return labels[labels != IGNORE_INDEX] if logits.dim() == 2 else labels

    @classmethod
    def loss(cls, logits: torch.Tensor, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """``logits (M, V)`` (masked positions) or ``(B, N, V)`` -> (sum of token losses, masked tokens)."""
        labels = cls.targets(logits, batch)
        total = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                ignore_index=IGNORE_INDEX, reduction="sum")
        return total, (labels != IGNORE_INDEX).sum()

    @staticmethod
    def count(batch: dict) -> int:
        """Masked tokens in a batch (known before the forward pass)."""
        return int((batch["labels"] != IGNORE_INDEX).sum())

    @classmethod
    def eval_batch(cls, logits: torch.Tensor, batch: dict) -> dict:
        labels = cls.targets(logits, batch)
        sel = labels != IGNORE_INDEX
        pred = logits.argmax(-1)  # (M,) or (B, N)
        return {"correct": int((pred[sel] == labels[sel]).sum())}

    @staticmethod
    def finish_eval(parts: list[dict], loss_sum: float, count: int, registry) -> dict:
        correct = sum(p["correct"] for p in parts)
        return {"loss": loss_sum / max(count, 1), "accuracy": correct / max(count, 1)}


class ClassificationTask:
    """Cross-entropy over pooled logits; validation reports every registered metric, each with its
    config from ``train.metrics``."""

    name = "classification"
    need_labels = True

    def __init__(self, vocab_size: int, cfg, seed: int) -> None:
        self.train_collator = PadCollator(SPECIAL["pad"])
        self.eval_collator = self.train_collator
        self.metric_section = cfg.train.metrics

    def set_epoch(self, epoch: int) -> None:
        """Classification batches do not depend on the epoch (the sampler does)."""

    @staticmethod
    def forward_kwargs(batch: dict) -> dict:
        return {}

    @staticmethod
    def loss(logits: torch.Tensor, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """``logits (B, C)``, ``labels (B,)`` -> (sum of example losses, B)."""
        labels = batch["labels"]
        return F.cross_entropy(logits.float(), labels, reduction="sum"), torch.tensor(labels.numel())

    @staticmethod
    def count(batch: dict) -> int:
        return int(batch["labels"].numel())

    @staticmethod
    def eval_batch(logits: torch.Tensor, batch: dict) -> dict:
        return {"prob": torch.softmax(logits.float(), -1).cpu().numpy(), "label": batch["labels"].cpu().numpy()}

    def finish_eval(self, parts: list[dict], loss_sum: float, count: int, registry) -> dict:
        from ..metrics import score

        prob = np.concatenate([p["prob"] for p in parts])  # (n, C)
        label = np.concatenate([p["label"] for p in parts])  # (n,)
        scores = score(label, prob, registry, self.metric_section)
        return {"loss": loss_sum / max(count, 1),
                **{k: None if v is None or math.isnan(v) else v for k, v in scores.items()}}


def make_task(kind: str, vocab_size: int, cfg, seed: int):
    return (MLMTask if kind == "pretrain" else ClassificationTask)(vocab_size, cfg, seed)
