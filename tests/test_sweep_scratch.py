"""A sweep combination with no pretraining (``pretrain.train.max_steps: 0``) runs for real: the
finetune trains its own architecture from scratch, nothing is pretrained, and the run says so."""
from __future__ import annotations

import json
import os

import pytest
import yaml

from effx.eval.sweep import load_spec, plan, run_job

SPEC = """
name: z
baseline: false
fixed:
  model.d_model: 32
  model.n_layers: 1
  model.n_heads: 2
  model.d_ff: 64
  model.vocab_size: 400
  tokenizer.vocab_size: 400
  model.max_seq_len: 64
  data.max_length: 64
  data.validation: null
  data.max_train_samples: 120
  data.max_eval_samples: 40
  train.epochs: 1
  train.batch_size: 32
  logging.progress_bar: false
  logging.wandb.mode: disabled
  pretrain.train.max_steps: 0
eval_splits: [validation]
"""


@pytest.mark.slow
def test_scratch_job_trains_the_finetune_without_any_pretraining(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    spec_path = tmp_path / "z.yaml"
    spec_path.write_text(SPEC)
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
