"""``effx validate``: strict config check + model build (+ optional forward at a given length)."""
from __future__ import annotations


def validate(path: str, seq_len: int | None) -> str:
    import torch

    import effx
    from effx.config import load_experiment

    cfg = load_experiment(path)
    model = effx.build_model(cfg.model, cfg.head).eval()
    msg = (f"{path}: OK - attention {cfg.model.attention.type}, positional {cfg.model.positional.type}, "
           f"head {cfg.head.type}, {model.num_parameters():,} trainable parameters")
    if seq_len is not None:
        with torch.no_grad():
            model(torch.zeros(1, seq_len, dtype=torch.long))
        msg += f"; forward at length {seq_len} OK"
    return msg
