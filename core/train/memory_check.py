"""Refuse, before training starts, a run whose batches cannot fit the machine's memory.

With dynamic padding, the training batch that holds the longest training text is padded to its
length, so one step over ``train.batch_size x longest`` tokens is certain to happen; likewise every
length-sorted validation batch. The estimate counts only memory such a step cannot do without:

* weights, gradients and two Adam moments: ``16`` bytes per parameter (fp32 master weights);
* training activations kept for the backward pass, per layer and token, at least ``10 d_model +
  2 d_ff`` values (LayerNorm inputs/outputs, q/k/v, attention output, residuals, the MLP's hidden
  layer before and after its activation); with gradient checkpointing only each block's input;
* evaluation: one layer's ``4 d_model + d_ff`` values per token of the largest validation batch.

Attention scores are not counted (fused and sub-quadratic kernels do not store them), so the
figure is a lower bound: a run refused here would run out of memory for sure.
"""
from __future__ import annotations

import os

import torch

from ..errors import ConfigError

GiB = 1024**3
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


def machine_memory(device: torch.device) -> tuple[int | None, str]:
    """Total memory of ``device`` in bytes (physical RAM for the CPU) and its name."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory, f"GPU memory of {torch.cuda.get_device_name(device)}"
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "RAM"
    except (ValueError, OSError, AttributeError):
        return None, "RAM"


def train_step_bytes(cfg, n_params: int, batch: int, length: int) -> int:
    m, act = cfg.model, BYTES[cfg.train.dtype]
    per_token = m.d_model if m.gradient_checkpointing else 10 * m.d_model + 2 * m.d_ff
    layers = m.n_layers * batch * length * per_token * act
    if m.gradient_checkpointing:  # one block is recomputed with everything kept
        layers += batch * length * (10 * m.d_model + 2 * m.d_ff) * act
    return 16 * n_params + layers


def eval_batch_bytes(cfg, n_params: int, batch: int, length: int) -> int:
    m = cfg.model
    return 4 * n_params + batch * length * (4 * m.d_model + m.d_ff) * BYTES[cfg.train.dtype]


def largest_eval_batch(lengths: list[int], size: int) -> tuple[int, int]:
    """``(rows, length)`` of the length-sorted validation batch with the most padded tokens."""
    order = sorted(lengths)
    best = (0, 0)
    for i in range(0, len(order), size):
        rows = order[i:i + size]
        if len(rows) * rows[-1] > best[0] * best[1]:
            best = (len(rows), rows[-1])
    return best


def check_fits(cfg, n_params: int, train_lengths: list[int], val_lengths: list[int], device: torch.device) -> None:
    """Raise :class:`ConfigError` with the estimate when a certain step needs more than the machine has."""
    total, what = machine_memory(device)
    if total is None:
        return
    longest = max(train_lengths, default=0)
    need_train = train_step_bytes(cfg, n_params, cfg.train.batch_size, longest)
    rows, length = largest_eval_batch(val_lengths, cfg.train.eval_batch_size)
    need_eval = eval_batch_bytes(cfg, n_params, rows, length)
    shape = (f"a training step over train.batch_size {cfg.train.batch_size} x {longest} tokens (the longest "
             f"training text, cut at data.max_length {cfg.data.max_length})")
    fix = "lower data.max_length or train.batch_size, or set model.gradient_checkpointing: true"
    if need_eval > need_train:
        need_train, shape = need_eval, f"a validation batch of {rows} x {length} tokens"
        fix = "lower data.max_length or train.eval_batch_size"
    if need_train > total:
        raise ConfigError(f"this run needs at least {need_train / GiB:.1f} GiB for {shape} with model.n_layers "
                          f"{cfg.model.n_layers}, d_model {cfg.model.d_model}, d_ff {cfg.model.d_ff} in "
                          f"{cfg.train.dtype}, more than the {total / GiB:.1f} GiB {what} of this machine; {fix}")
