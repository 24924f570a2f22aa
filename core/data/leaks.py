"""Keep validation and test data apart from the training data.

* **Overlap**: a validation or test row whose text also occurs in the training rows (compared by a
  hash of the text lower-cased with whitespace collapsed) is scored on something the model trained
  on. Public benchmarks carry a few such duplicates of their own, so a small overlap is a warning
  with the count; above ``data.max_overlap_fraction`` of the split's rows it is an error: the split
  is then largely training data (a wrong or leaked file) and its scores measure memory.
* **The shipped sample**: validation or test files from effx's own ``data/sample`` next to training
  data from elsewhere means the user's data is scored on unrelated text (or on rows drawn from it):
  an error that says how to name their own file or hold out part of the training data.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable, Optional

from ..errors import EffxError
from ..resources import SAMPLE_DIR
from .sources import entries

EVAL_SPLITS = ("validation", "test")


def text_key(text: str) -> bytes:
    """Hash of the normalised text (lower case, runs of whitespace as one space, stripped)."""
    return hashlib.blake2b(" ".join(text.lower().split()).encode("utf-8"), digest_size=12).digest()


def keys(texts: Iterable[str]) -> list[bytes]:
    return [text_key(t) for t in texts]


def overlap_count(train_texts: Iterable[str], other_texts: Iterable[str]) -> int:
    """How many rows of ``other_texts`` also occur (normalised) among ``train_texts``."""
    seen = set(keys(train_texts))
    return sum(k in seen for k in keys(other_texts))


def check_overlap(train_texts: list[str], others: dict[str, Optional[list[str]]], limit: float) -> dict[str, int]:
    """Overlap count per evaluation split; raises when a split's overlap fraction exceeds ``limit``."""
    if not 0.0 <= limit <= 1.0:
        raise EffxError(f"data.max_overlap_fraction must be between 0 and 1, got {limit}")
    seen = set(keys(train_texts))
    counts = {}
    for split, texts in others.items():
        if not texts:
            continue
        n = sum(k in seen for k in keys(texts))
        counts[split] = n
        if n / len(texts) > limit:
            hold_out = " (or data.validation: null to hold out part of it)" if split == "validation" else ""
            raise EffxError(
                f"data.{split}: {n} of {len(texts)} rows ({n / len(texts):.1%}) also occur in the training data "
                f"(same text up to case and spacing), so its scores would measure memory; give a {split} file "
                f"disjoint from data.train{hold_out}, or raise data.max_overlap_fraction (now {limit}) to accept it")
    return counts


def overlap_warnings(counts: dict[str, int], sizes: dict[str, int]) -> list[str]:
    return [f"data.{split}: {n} of {sizes[split]} rows also occur in the training data (same text up to case and "
            f"spacing); they are scored on text the model trained on" for split, n in counts.items() if n]


def _in_sample(path: str) -> bool:
    try:
        return Path(path).expanduser().resolve().is_relative_to(SAMPLE_DIR)
    except (OSError, ValueError):
        return False


def _paths(value) -> list[str]:
    return [e if isinstance(e, str) else e.path for e in entries(value)]


def check_sample_mix(cfg) -> None:
    """Refuse validation/test files of the shipped sample next to training data from elsewhere."""
    train = _paths(cfg.train)
    if not train or all(_in_sample(p) for p in train):
        return
    for split in EVAL_SPLITS:
        shipped = [p for p in _paths(getattr(cfg, split)) if _in_sample(p)]
        if shipped:
            hold_out = " (hold out data.validation_fraction of data.train)" if split == "validation" else ""
            raise EffxError(f"data.{split} is effx's shipped sample ({Path(shipped[0]).name}) but data.train is your "
                            f"own data; set data.{split} to a file of your data, or to null{hold_out}")
