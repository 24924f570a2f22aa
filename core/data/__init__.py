"""Data pipeline: records from local files (or the hub), WordPiece tokenizer, dynamic padding,
MLM masking and a length-bucketed sampler. See docs/GUIDE.md for the user side.
"""
from __future__ import annotations

from .collate import EncodedDataset, PadCollator, pad_ids
from .loading import Splits, file_format, load_splits, offline_reason, read_file
from .mlm import IGNORE_INDEX, MLMCollator, mask_tokens
from .eval_batches import eval_batches
from .sampler import LengthBucketSampler
from .tokenizer import (
    NUM_SPECIAL,
    SPECIAL,
    SPECIAL_TOKENS,
    count_truncated,
    encode,
    encode_with_stats,
    load_tokenizer,
    save_tokenizer,
    tokenizer_from_str,
    tokenizer_to_str,
    train_tokenizer,
    unk_rate,
)

__all__ = [
    "Splits", "load_splits", "read_file", "file_format", "offline_reason",
    "SPECIAL", "SPECIAL_TOKENS", "NUM_SPECIAL", "train_tokenizer", "save_tokenizer", "load_tokenizer",
    "tokenizer_to_str", "tokenizer_from_str", "encode", "encode_with_stats", "count_truncated", "unk_rate",
    "EncodedDataset", "PadCollator", "pad_ids", "MLMCollator", "mask_tokens", "IGNORE_INDEX",
    "LengthBucketSampler",
    "eval_batches",
]
