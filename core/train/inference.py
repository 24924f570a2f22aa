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


def load_for_inference(exp_dir, ckpt: str = "best", device: str | torch.device = "cpu", registry=None,
                       owner: str | None = None) -> Inference:
    """Rebuild the model of ``exp_dir`` from a checkpoint (``best`` | ``last`` | a path).

    Everything comes from the checkpoint itself (config, tokenizer, label names), so a later edit of
    ``config.yaml`` cannot make the weights and the architecture disagree. With ``owner``
    (``"finetune/NAME"``) a checkpoint of another experiment, or of another kind, is refused.
    """
    from ..data import tokenizer_from_str
    from ..model import build_model
    from ..plugins import load_registry

    registry = registry or load_registry()
    path = checkpoint.resolve_choice(Path(exp_dir), ckpt)
    payload = checkpoint.load(path)
    if owner is not None:
        check_owner(payload, path, Path(exp_dir), owner)
    cfg = structure(payload["config"], ExperimentConfig, registry)
    model = build_model(cfg.model, cfg.head, registry, seed=cfg.seed)
    model.load_state_dict(payload["model"])
    model.to(device).eval()
    tok = tokenizer_from_str(payload["tokenizer"], f"tokenizer in {path}")
    return Inference(model, tok, cfg, payload.get("label_names"), path)



def check_owner(payload: dict, path: Path, exp_dir: Path, owner: str) -> None:
    """Refuse a checkpoint that is not ``owner``'s (a file inside ``exp_dir`` always is; elsewhere the
    experiment recorded in the checkpoint decides)."""
    kind, name = owner.split("/", 1)
    have_kind = payload.get("kind", "?")
    recorded = payload.get("experiment")
    if have_kind != kind:
        whose = f" of {recorded}" if recorded else ""
        raise checkpoint.CheckpointError(
            f"{path} is a {have_kind} checkpoint{whose}, not a {kind} one; {owner} needs one of its own "
            f"checkpoints: pass -ckpt best, last or a ckpt_*.pt file of {owner}", "foreign")
    if Path(path).resolve().parent == exp_dir.resolve():
        return
    whose = recorded or f"{kind}/{Path(path).resolve().parent.name}"
    if whose != owner:
        other = whose.split("/", 1)[-1]
        raise checkpoint.CheckpointError(
            f"{path} belongs to {whose}, not {owner}; its scores would be recorded as {owner}'s - use "
            f"`-exp {other}` for that checkpoint, or -ckpt best|last for {owner}", "foreign")
