"""Weights & Biases logging: offline by default, the run id kept in ``wandb_run_id.txt``.

``logging.wandb.mode`` is ``offline`` (written under the experiment's ``wandb/`` folder; upload later
with ``wandb sync``), ``online`` or ``disabled``. The ``WANDB_MODE`` environment variable, when set,
overrides it. The run id is created once per experiment, so ``-resume`` continues the same W&B run.
W&B prints nothing (no banner, no run summary) unless ``WANDB_SILENT=false`` asks for its console output.
"""
from __future__ import annotations

import os
import secrets
import string
from pathlib import Path

from ..config import WandbConfig
from .runfiles import atomic_write_text


class WandbLogger:
    """Thin wrapper; every call is a no-op when disabled or not the main process."""

    def __init__(self, cfg: WandbConfig, exp_dir: Path, name: str, config: dict, enabled: bool, group: str) -> None:
        self.run = None
        mode = os.environ.get("WANDB_MODE") or cfg.mode
        if not enabled or mode == "disabled":
            return
        import wandb

        run_id = ensure_run_id(exp_dir)
        self.run = wandb.init(project=cfg.project, entity=cfg.entity, name=name, group=group, id=run_id,
                              resume="allow", mode=mode, dir=str(exp_dir), config=config, reinit="finish_previous",
                              settings=wandb.Settings(silent=silent()))

    def log(self, data: dict, step: int) -> None:
        if self.run is not None:
            self.run.log({k: v for k, v in data.items() if v is not None and v != ""}, step=step)

    def summary(self, data: dict) -> None:
        if self.run is not None:
            self.run.summary.update(data)

    def artifact(self, path: Path, name: str, kind: str, metadata: dict | None = None) -> None:
        if self.run is None or not Path(path).is_file():
            return
        import wandb

        art = wandb.Artifact(name, type=kind, metadata=metadata or {})
        art.add_file(str(path))
        self.run.log_artifact(art)

    def finish(self, exit_code: int = 0) -> None:
        if self.run is not None:
            self.run.finish(exit_code=exit_code)
            self.run = None


def silent() -> bool:
    """Quiet unless the user asked for W&B's console output with ``WANDB_SILENT=false`` (or 0/no)."""
    return os.environ.get("WANDB_SILENT", "true").strip().lower() not in ("false", "0", "no")


def ensure_run_id(exp_dir: Path) -> str:
    path = Path(exp_dir) / "wandb_run_id.txt"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    alphabet = string.ascii_lowercase + string.digits
    run_id = "".join(secrets.choice(alphabet) for _ in range(8))  # W&B's own id format
    atomic_write_text(path, run_id + "\n")
    return run_id
