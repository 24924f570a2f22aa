"""W&B stays quiet unless asked: no banner, no deprecation warning, no run summary on the console."""
from __future__ import annotations

import pytest

pytest.importorskip("wandb")

from effx.config import WandbConfig  # noqa: E402
from effx.train.wandb_log import WandbLogger  # noqa: E402


def _one_run(tmp_path, monkeypatch, capfd, silent_env):
    import wandb

    wandb.teardown()  # a fresh W&B process-wide setup, as in a new `effx` command (earlier tests may have made one)
    monkeypatch.setenv("WANDB_MODE", "offline")
    if silent_env is None:
        monkeypatch.delenv("WANDB_SILENT", raising=False)
    else:
        monkeypatch.setenv("WANDB_SILENT", silent_env)
    log = WandbLogger(WandbConfig(mode="offline"), tmp_path, "finetune/x", {"a": 1}, enabled=True, group="finetune")
    log.log({"loss": 1.0}, step=1)
    log.summary({"macro_F1": 0.5})
    log.finish()
    out, err = capfd.readouterr()
    return out + err


@pytest.mark.slow
def test_wandb_prints_nothing_by_default_and_talks_when_asked(tmp_path, monkeypatch, capfd):
    quiet = _one_run(tmp_path / "q", monkeypatch, capfd, None)
    assert "wandb:" not in quiet and "reinit" not in quiet, quiet
    assert list((tmp_path / "q" / "wandb").glob("offline-run-*"))  # the run was still written
    loud = _one_run(tmp_path / "l", monkeypatch, capfd, "false")
    assert "wandb:" in loud and "reinit" not in loud, loud
