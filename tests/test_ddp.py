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


@pytest.mark.slow  # two torchrun processes train twice
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
    assert proc.stdout.count("finished at step") == 1, proc.stdout  # only rank 0 prints the summary
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


class _OtherRank:
    """Rank 1 of 2: receives whatever rank 0 broadcasts."""

    main, rank, world, enabled = False, 1, 2, True

    def __init__(self, rank0_text: str) -> None:
        self.rank0_text = rank0_text

    def broadcast(self, obj):
        assert obj is None  # this rank has nothing of its own to send
        return self.rank0_text


def test_other_ranks_load_rank_zeros_tokenizer_instead_of_training_one(tmp_path, monkeypatch):
    """WordPiece training breaks count ties differently from one process to the next, so a rank that
    trained its own vocabulary would encode the data differently from rank 0."""
    import effx.train.run as run_mod
    from effx.config import load_experiment
    from effx.data import tokenizer_to_str, train_tokenizer

    set_env(monkeypatch)
    data = make_data(tmp_path / "data", n_train=64, n_val=16)
    init_experiment("p", root=tmp_path, sets=tiny_sets(data))
    cfg = load_experiment(tmp_path / "pretrain" / "p" / "config.yaml")
    rank0 = train_tokenizer(["alpha beta gamma"] * 4, cfg.tokenizer)  # any tokenizer rank 0 might have made

    def must_not_train(*_a, **_k):
        raise AssertionError("a rank other than 0 trained a tokenizer")

    monkeypatch.setattr(run_mod, "train_tokenizer", must_not_train)
    session = run_mod.Session("pretrain", tmp_path / "pretrain" / "p", cfg, None, tmp_path)
    session.dist = _OtherRank(tokenizer_to_str(rank0))
    session._data(None, None)
    assert session.tokenizer.get_vocab() == rank0.get_vocab()
