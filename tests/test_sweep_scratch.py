"""A sweep combination with no pretraining (``pretrain.train.max_steps: 0``) runs for real: the
finetune trains its own architecture from scratch, nothing is pretrained, and the run says so."""
from __future__ import annotations

import json
import os

import pytest
import yaml

from effx.eval.sweep import load_spec, plan, run_job

def spec_text(tiny_fixed) -> str:
    fixed = {**tiny_fixed(120, 40), "logging.wandb.mode": "disabled", "pretrain.train.max_steps": 0}
    return yaml.safe_dump({"name": "z", "baseline": False, "fixed": fixed, "eval_splits": ["validation"]}, sort_keys=False)


@pytest.mark.slow
def test_scratch_job_trains_the_finetune_without_any_pretraining(tmp_path, monkeypatch, tiny_fixed):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    spec_path = tmp_path / "z.yaml"
    spec_path.write_text(spec_text(tiny_fixed))
    spec, spec_dir = load_spec(spec_path)
    (job,) = plan(spec)
    root = tmp_path / "root"
    lines: list[str] = []
    assert run_job(spec, spec_dir, job, root, log=lines.append), lines
    assert not (root / "pretrain").exists()  # nothing was pretrained
    exp = root / "finetune" / job.finetunes[0].name
    assert json.loads((exp / "status.json").read_text())["status"] == "finished"
    resolved = yaml.safe_load((exp / "resolved_config.yaml").read_text())
    assert resolved["model"]["d_model"] == 32 and resolved["tokenizer"]["vocab_size"] == 400
    assert resolved["pretrain"]["name"] is None and "no pretraining" in resolved["pretrain"]["none"]
    assert "validation" in json.loads((exp / "eval.json").read_text())["results"]
    assert os.environ["WANDB_MODE"] == "disabled"
