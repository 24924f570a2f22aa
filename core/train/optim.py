"""Optimizers (AdamW, Adam, SGD) and learning-rate schedules (linear, cosine, constant) with warmup.

Weight decay is not applied to biases, LayerNorm weights and embeddings' norms (BERT convention):
parameters with fewer than two dimensions go to a no-decay group.
"""
from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR

from ..config import OptimizerConfig, SchedulerConfig


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay, seen = [], [], set()
    for p in model.parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def fused_ok(model: torch.nn.Module) -> bool:
    """Adam's fused kernel (one pass over all parameters) covers CPU and CUDA floating-point parameters."""
    return all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in model.parameters())


def build_optimizer(model: torch.nn.Module, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """The optimizer of ``cfg``; Adam/AdamW use the fused kernel where it applies (the same update,
    computed in one pass instead of a loop of per-tensor ops: the per-step cost that does not shrink
    with shorter batches)."""
    groups = param_groups(model, cfg.weight_decay)
    fused = {"fused": True} if fused_ok(model) else {}
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, **fused)
    if cfg.name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, **fused)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)


def warmup_steps(cfg: SchedulerConfig, total_steps: int) -> int:
    return cfg.warmup_steps if cfg.warmup_steps > 0 else int(math.ceil(cfg.warmup_ratio * total_steps))


def lr_factor(step: int, name: str, warmup: int, total: int) -> float:
    """Multiplier of the base LR after ``step`` optimizer steps."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if name == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if name == "linear":
        return max(0.0, 1.0 - progress)
    return 0.5 * (1.0 + math.cos(math.pi * progress))  # cosine


def build_scheduler(opt: torch.optim.Optimizer, cfg: SchedulerConfig, total_steps: int) -> LambdaLR:
    """LambdaLR over a closure: its state_dict holds only numbers (the closure is rebuilt on resume)."""
    warmup = warmup_steps(cfg, total_steps)
    return LambdaLR(opt, lambda step: lr_factor(step, cfg.name, warmup, total_steps))
