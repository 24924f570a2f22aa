"""Length-bucketed batches: examples of similar length share a batch, so dynamic padding pads little.

Each epoch (a pure function of ``(seed, epoch)``): shuffle all indices, cut them into pools of
``batch_size * pool_batches``, sort each pool by length, cut the pools into batches and shuffle the
order of the batches. Every index appears exactly once per epoch (the last batch may be short unless
``drop_last``). With ``num_replicas > 1`` rank ``r`` takes batches ``r, r + R, ...``; the list of
batches is first padded by repeating its head so that every rank gets the same number.
Use it as a DataLoader ``batch_sampler``.
"""
from __future__ import annotations

import math
from typing import Iterator, Sequence

import numpy as np
import torch

from ..errors import ConfigError


class LengthBucketSampler(torch.utils.data.Sampler):
    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, *, pool_batches: int = 50,
                 shuffle: bool = True, drop_last: bool = False, num_replicas: int = 1, rank: int = 0) -> None:
        if batch_size < 1 or pool_batches < 1:
            raise ConfigError(f"batch_size ({batch_size}) and pool_batches ({pool_batches}) must be >= 1")
        if not 0 <= rank < num_replicas:
            raise ConfigError(f"rank {rank} is not in [0, num_replicas={num_replicas})")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size, self.seed, self.pool_batches = batch_size, seed, pool_batches
        self.shuffle, self.drop_last = shuffle, drop_last
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        """All batches of the current epoch, for every rank, in order."""
        n = len(self.lengths)
        rng = np.random.default_rng([self.seed % 2**63, self.epoch, 3])
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        pool = self.batch_size * self.pool_batches
        out: list[list[int]] = []
        for start in range(0, n, pool):
            chunk = order[start:start + pool]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            out += [chunk[i:i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size)]
        if self.drop_last:
            out = [b for b in out if len(b) == self.batch_size]
        if self.shuffle:
            out = [out[i] for i in rng.permutation(len(out))]
        return out

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.batches()
        if self.num_replicas > 1:
            total = math.ceil(len(batches) / self.num_replicas) * self.num_replicas
            batches = (batches + batches[: total - len(batches)])[self.rank::self.num_replicas]
        return iter(batches)

    def __len__(self) -> int:
        full, rest = divmod(len(self.lengths), self.batch_size * self.pool_batches)  # only the last pool is short
        last = rest // self.batch_size if self.drop_last else math.ceil(rest / self.batch_size)
        return math.ceil((full * self.pool_batches + last) / self.num_replicas)
