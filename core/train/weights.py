"""Moving weights from a pretraining checkpoint into a finetuning model.

The encoder must match key for key and shape for shape (the architecture is inherited). The head is
taken from the checkpoint only when it has the same parameter names and shapes; a head whose shape
differs (e.g. another ``num_classes``) is freshly initialised with a warning in ``logs/train.log``;
an MLM head in a pretraining checkpoint is simply not used.
"""
from __future__ import annotations

import torch

from .checkpoint import CheckpointError


def _shape(t: torch.Tensor) -> tuple:
    return tuple(t.shape)


def load_encoder(model: torch.nn.Module, state: dict, source: str) -> None:
    own = {k: v for k, v in model.state_dict().items() if k.startswith("encoder.")}
    theirs = {k: v for k, v in state.items() if k.startswith("encoder.")}
    missing, extra = sorted(set(own) - set(theirs)), sorted(set(theirs) - set(own))
    if missing or extra:
        key = (missing or extra)[0]
        raise CheckpointError(f"{source} does not match this architecture ({key} "
                              f"{'missing from' if missing else 'unexpected in'} the checkpoint); use a checkpoint "
                              f"of the pretraining experiment this finetune inherits from")
    for k, v in own.items():
        if _shape(v) != _shape(theirs[k]):
            raise CheckpointError(f"{source}: {k} has shape {_shape(theirs[k])} in the checkpoint but "
                                  f"{_shape(v)} in the model; the architecture must match the pretraining one")
    model.load_state_dict(theirs, strict=False)


def load_head(model: torch.nn.Module, state: dict, source: str) -> tuple[str, str]:
    """Load head weights when they fit; returns ``(outcome, message)`` with outcome
    ``loaded`` | ``reinitialised`` (shape mismatch: warn) | ``fresh`` (the checkpoint has another head)."""
    own = model.head.state_dict()
    theirs = {k[len("head."):]: v for k, v in state.items() if k.startswith("head.")}
    if set(own) != set(theirs):
        return "fresh", (f"classification head initialised fresh ({source} holds a different head: "
                         f"{', '.join(sorted(theirs)) or 'none'})")
    diff = [k for k in own if _shape(own[k]) != _shape(theirs[k])]
    if diff:
        k = diff[0]
        return "reinitialised", (f"head shape differs from {source}: head.{k} is {_shape(theirs[k])} there and "
                                 f"{_shape(own[k])} here; the head was freshly initialised")
    model.head.load_state_dict(theirs)
    return "loaded", f"head weights loaded from {source}"
