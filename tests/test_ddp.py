"""Data-parallel training: 2 CPU processes under torchrun (gloo) match one process on the same global batch."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_train_helpers import losses, make_data, rows, set_env, sub_env, tiny_sets  # noqa: E402

from effx.train import init_experiment, run_pretrain  # noqa: E402


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not on PATH")
def test_two_process_ddp_matches_single_process_loss(tmp_path, monkeypatch):
    set_env(monkeypatch)
    data = make_data(tmp_path / "data", n_train=96)
    common = {"model.dropout": 0.0, "train.max_steps": 6, "train.clip_grad_norm": 1.0}
    init_experiment("single", root=tmp_path, sets=tiny_sets(data, True, **common, **{"train.batch_size": 8}))
    init_experiment("ddp", root=tmp_path, sets=tiny_sets(data, True, **common, **{"train.batch_size": 4}))
    run_pretrain("single", root=tmp_path)
    cmd = ["torchrun", "--standalone", "--nproc-per-node", "2", "-m", "effx_cli.main", "pretrain", "-exp", "ddp"]
    env = {**sub_env(tmp_path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    exp = tmp_path / "pretrain" / "ddp"
    info = json.loads((exp / "run_info.json").read_text())
    assert info["world_size"] == 2
    single, ddp = losses(tmp_path / "pretrain" / "single"), losses(exp)
    assert list(ddp) == list(single) == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose([ddp[s] for s in ddp], [single[s] for s in ddp], rtol=2e-5)
    val_s = float(rows(tmp_path / "pretrain" / "single", "validation")[-1]["loss"])
    val_d = float(rows(exp, "validation")[-1]["loss"])
    assert val_d == pytest.approx(val_s, rel=2e-5)
    # the parameters after 6 steps agree too (gradients were averaged over the right count)
    a = torch.load(tmp_path / "pretrain" / "single" / "ckpt_last.pt", weights_only=True)
    b = torch.load(exp / "ckpt_last.pt", weights_only=True)
    for k, v in a["model"].items():
        torch.testing.assert_close(b["model"][k], v, rtol=1e-4, atol=1e-5)
    assert len(b["rng"]) == 2 and b["position"]["world_size"] == 2
