"""Encoded examples and dynamic padding.

Dynamic padding (the default) pads each batch only to its longest sequence; ``pad_to=N`` pads every
batch to ``N`` (static padding, the baseline measured by ``python benchmarks/padding_bench.py``).
The attention mask follows ``effx.masks``: boolean, True = real token.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from tokenizers import Tokenizer

from ..errors import EffxError, SequenceTooLongError
from .tokenizer import SPECIAL, encode


class EncodedDataset(torch.utils.data.Dataset):
    """Token-id lists and integer labels; item ``i`` is ``{"input_ids", "label", "idx": i}``."""

    def __init__(self, ids: Sequence[list[int]], labels: Optional[Sequence[int]] = None) -> None:
        labels = [-1] * len(ids) if labels is None else [int(v) for v in labels]
        if len(labels) != len(ids):
            raise EffxError(f"{len(ids)} token sequences but {len(labels)} labels; they must match one to one")
        self.ids = [list(x) for x in ids]
        self.labels = labels

    @classmethod
    def from_texts(cls, tok: Tokenizer, texts: list[str], labels: Optional[Sequence[int]], max_length: int):
        return cls(encode(tok, texts, max_length), labels)

    @property
    def lengths(self) -> list[int]:
        return [len(x) for x in self.ids]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        return {"input_ids": self.ids[idx], "label": self.labels[idx], "idx": int(idx)}


def pad_ids(seqs: Sequence[Sequence[int]], pad_id: int, pad_to: Optional[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids (B, N) long, attention_mask (B, N) bool)``; N = longest in batch, or ``pad_to``."""
    longest = max((len(s) for s in seqs), default=0)
    if pad_to is not None and longest > pad_to:
        raise SequenceTooLongError(f"a sequence of {longest} tokens does not fit the static padding length "
                                   f"{pad_to}; truncate to data.max_length <= {pad_to}")
    n = longest if pad_to is None else pad_to
    ids = torch.full((len(seqs), n), pad_id, dtype=torch.long)  # (B, N)
    mask = torch.zeros((len(seqs), n), dtype=torch.bool)  # (B, N)
    for row, s in enumerate(seqs):
        ids[row, : len(s)] = torch.as_tensor(s, dtype=torch.long)
        mask[row, : len(s)] = True
    return ids, mask


class PadCollator:
    """Batch examples for classification: ``input_ids``, ``attention_mask``, ``labels`` (B,), ``idx`` (B,)."""

    def __init__(self, pad_id: int = SPECIAL["pad"], pad_to: Optional[int] = None) -> None:
        self.pad_id = pad_id
        self.pad_to = pad_to

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        ids, mask = pad_ids([e["input_ids"] for e in examples], self.pad_id, self.pad_to)
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "labels": torch.tensor([e["label"] for e in examples], dtype=torch.long),  # (B,)
            "idx": torch.tensor([e["idx"] for e in examples], dtype=torch.long),  # (B,)
        }
