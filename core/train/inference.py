"""Load a trained experiment for prediction: model (eval mode), tokenizer, config, label names."""
from __future__ import annotations

from pathlib import Path

import attrs
import torch

from ..config import ExperimentConfig, structure
from . import checkpoint


@attrs.frozen
class Inference:
    model: torch.nn.Module
    tokenizer: object
    config: ExperimentConfig
    label_names: list | None
    checkpoint_path: Path


def load_for_inference(exp_dir, ckpt: str = "best", device: str | torch.device = "cpu", registry=None) -> Inference:
    """Rebuild the model of ``exp_dir`` from a checkpoint (``best`` | ``last`` | a path).

    Everything comes from the checkpoint itself (config, tokenizer, label names), so a later edit of
    ``config.yaml`` cannot make the weights and the architecture disagree.
    """
    from ..data import tokenizer_from_str
    from ..model import build_model
    from ..plugins import load_registry

    registry = registry or load_registry()
    path = checkpoint.resolve_choice(Path(exp_dir), ckpt)
    payload = checkpoint.load(path)
    cfg = structure(payload["config"], ExperimentConfig, registry)
    model = build_model(cfg.model, cfg.head, registry, seed=cfg.seed)
    model.load_state_dict(payload["model"])
    model.to(device).eval()
    tok = tokenizer_from_str(payload["tokenizer"], f"tokenizer in {path}")
    return Inference(model, tok, cfg, payload.get("label_names"), path)

