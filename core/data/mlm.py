"""Masked-language-model batches (BERT, Devlin et al. 2019, sec. 3.1; RoBERTa, Liu et al. 2019, sec. 4.1).

Of the non-special tokens of each sequence, ``mask_prob`` (15%) are selected independently; a
selected token becomes [MASK] with probability ``mask_token_frac`` (80%), a random non-special token
with probability ``random_token_frac`` (10%), and stays unchanged otherwise. [PAD] [UNK] [CLS] [SEP]
[MASK] are never selected and random replacements are never special. Like BERT's reference data
generator, a sequence with at least one candidate gets at least one prediction (so no batch of real
text has an all-ignored loss).

The masking of example ``idx`` is a pure function of ``(seed, epoch, idx)`` -- ``epoch`` is the real
epoch in RoBERTa mode (dynamic masking: a new mask every epoch) and 0 in BERT mode (static masking:
the same mask every epoch). Nothing depends on RNG state, batch composition, padding or workers, so a
resumed run re-creates exactly the masks of an uninterrupted one.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch

from ..config import MLMConfig
from ..errors import ConfigError
from .collate import pad_ids
from .tokenizer import NUM_SPECIAL, SPECIAL

IGNORE_INDEX = -100  # label of unselected positions (torch cross_entropy's ignore_index)


def check_mlm_config(cfg: MLMConfig, vocab_size: int) -> None:
    if not 0.0 < cfg.mask_prob <= 1.0:
        raise ConfigError(f"mlm.mask_prob must be in (0, 1], got {cfg.mask_prob}")
    if cfg.mask_token_frac < 0 or cfg.random_token_frac < 0 or cfg.mask_token_frac + cfg.random_token_frac > 1:
        raise ConfigError(f"mlm.mask_token_frac ({cfg.mask_token_frac}) and mlm.random_token_frac "
                          f"({cfg.random_token_frac}) must be >= 0 and sum to at most 1")
    if vocab_size <= NUM_SPECIAL:
        raise ConfigError(f"vocab_size must exceed the {NUM_SPECIAL} special tokens to draw random tokens, "
                          f"got {vocab_size}")


def mask_tokens(ids: Sequence[int], vocab_size: int, cfg: MLMConfig, seed: int, epoch: int,
                idx: int) -> tuple[np.ndarray, np.ndarray]:
    """``(inputs (N,), labels (N,))`` for one sequence; labels are -100 where not selected."""
    ids = np.asarray(ids, dtype=np.int64)  # (N,)
    n = len(ids)
    rng = np.random.default_rng([seed % 2**63, epoch, idx])
    select_u, action_u = rng.random(n), rng.random(n)  # (N,), (N,)
    random_ids = rng.integers(NUM_SPECIAL, vocab_size, size=n)  # (N,) never special
    candidate = ids >= NUM_SPECIAL  # (N,) special ids are 0..NUM_SPECIAL-1
    selected = candidate & (select_u < cfg.mask_prob)
    if candidate.any() and not selected.any():  # at least one prediction: the candidate drawing the smallest u
        selected[np.flatnonzero(candidate)[np.argmin(select_u[candidate])]] = True
    to_mask = selected & (action_u < cfg.mask_token_frac)
    to_random = selected & ~to_mask & (action_u < cfg.mask_token_frac + cfg.random_token_frac)
    inputs = np.where(to_mask, SPECIAL["mask"], np.where(to_random, random_ids, ids))
    labels = np.where(selected, ids, IGNORE_INDEX)
    return inputs, labels


class MLMCollator:
    """Pad and mask a batch: ``input_ids``, ``attention_mask`` (B, N); ``labels`` (B, N) with -100; ``idx`` (B,).

    Call :meth:`set_epoch` before each epoch's DataLoader iterator is created (workers copy the collator).
    """

    def __init__(self, vocab_size: int, cfg: MLMConfig, seed: int, pad_id: int = SPECIAL["pad"],
                 pad_to: Optional[int] = None) -> None:
        check_mlm_config(cfg, vocab_size)
        self.vocab_size, self.cfg, self.seed = vocab_size, cfg, seed
        self.pad_id, self.pad_to = pad_id, pad_to
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def mask_epoch(self) -> int:
        """The epoch the masks are drawn for: the real one in RoBERTa mode, always 0 in BERT mode."""
        return self.epoch if self.cfg.mode == "roberta" else 0

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        pairs = [mask_tokens(e["input_ids"], self.vocab_size, self.cfg, self.seed, self.mask_epoch, e["idx"])
                 for e in examples]
        ids, mask = pad_ids([p[0] for p in pairs], self.pad_id, self.pad_to)  # (B, N), (B, N)
        labels = torch.full_like(ids, IGNORE_INDEX)  # (B, N)
        for row, (_, lab) in enumerate(pairs):
            labels[row, : len(lab)] = torch.from_numpy(lab)
        idx = torch.tensor([e["idx"] for e in examples], dtype=torch.long)  # (B,)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels, "idx": idx}
