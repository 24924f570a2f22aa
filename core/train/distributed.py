"""Data-parallel training under ``torchrun`` (DistributedDataParallel; gloo on CPU, nccl on GPU).

Launched with ``torchrun --nproc-per-node K --no-python effx pretrain -exp NAME``: each process
reads ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` from the environment. ``train.batch_size`` is the
per-process micro-batch, so the global batch is ``batch_size * K * grad_accum_steps``. Only rank 0
writes files; every rank computes.
"""
from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist


class Dist:
    """Rank / world-size facts plus the few collectives the trainer uses (no-ops when single-process)."""

    def __init__(self, device_pref: str = "auto") -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = pick_device(device_pref, self.local_rank)
        self.enabled = self.world > 1
        self._owns_group = False
        if self.enabled and not dist.is_initialized():
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
            self._owns_group = True

    @property
    def main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DDP(model, device_ids=ids)

    def sum(self, values: list[float]) -> list[float]:
        """Sum floats over ranks (float64)."""
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        if self.enabled:
            dist.all_reduce(t)
        return t.tolist()

    def any(self, flag: bool) -> bool:
        return self.sum([1.0 if flag else 0.0])[0] > 0

    def gather(self, obj: Any) -> list[Any]:
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self._owns_group and dist.is_initialized():
            dist.destroy_process_group()


def pick_device(pref: str, local_rank: int = 0) -> torch.device:
    from ..errors import ConfigError

    if pref == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is 'cuda' but no CUDA GPU is available; set train.device: auto or cpu")
    if pref == "cpu" or (pref == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
