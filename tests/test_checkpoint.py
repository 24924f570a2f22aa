"""Checkpoints: weights_only loading refuses code, atomic layout, RNG round trip, corrupt fallback."""
from __future__ import annotations

import json
import os
import pickle
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_train_helpers import losses, make_data, set_env, tiny_sets  # noqa: E402

from effx.train import checkpoint as ckpt  # noqa: E402
from effx.train import init_experiment, load_for_inference, run_pretrain  # noqa: E402


class _Evil:
    """Unpickling this runs ``os.system`` (the classic malicious-checkpoint trick)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_checkpoint_that_runs_code_is_refused_without_running(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "ckpt_step1.pt"
    payload = {"format": ckpt.FORMAT, "model": {}, "evil": _Evil(marker)}
    if writer == "pickle":
        path.write_bytes(pickle.dumps(payload, protocol=2))
    else:
        torch.save(payload, path)
    assert not marker.exists()
    with pytest.raises(ckpt.CheckpointError, match="refused to load .*could run code"):
        ckpt.load(path)
    assert not marker.exists()  # the payload never ran
    with pytest.raises(ckpt.CheckpointError, match="refused"):
        load_for_inference(tmp_path, str(path))
    assert not marker.exists()


def test_truncated_and_foreign_files_give_one_line_errors(tmp_path):
    good = tmp_path / "ckpt_step1.pt"
    ckpt.save(good, {"model": {"w": torch.ones(3)}, "position": {"step": 1}})
    assert torch.equal(ckpt.load(good)["model"]["w"], torch.ones(3))
    data = good.read_bytes()
    bad = tmp_path / "ckpt_step2.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ckpt.CheckpointError, match="truncated or corrupt") as exc:
        ckpt.load(bad)
    assert "\n" not in str(exc.value)
    assert "failed finding central directory);" in str(exc.value)  # miniz's first sentence only
    assert "internal miniz error" not in str(exc.value)
    plain = tmp_path / "plain.pt"
    torch.save({"w": torch.ones(1)}, plain)
    with pytest.raises(ckpt.CheckpointError, match="not an effx checkpoint"):
        ckpt.load(plain)
    with pytest.raises(ckpt.CheckpointError, match="not found"):
        ckpt.load(tmp_path / "missing.pt")


def test_atomic_save_leaves_no_temp_files_and_keeps_old_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "ckpt_step1.pt"
    ckpt.save(path, {"model": {"w": torch.zeros(2)}})

    def fail(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", fail)
    with pytest.raises(OSError):
        ckpt.save(path, {"model": {"w": torch.ones(2)}})
    monkeypatch.undo()
    assert torch.equal(ckpt.load(path)["model"]["w"], torch.zeros(2))  # old content intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt_step1.pt"]


def test_rng_states_round_trip_through_weights_only(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    state = ckpt.capture_rng()
    ckpt.save(tmp_path / "r.pt", {"rng": state})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    ckpt.restore_rng(ckpt.load(tmp_path / "r.pt")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_private_generators_of_plugin_modules_round_trip(tmp_path):
    class Drawing(torch.nn.Module):  # like an attention plugin drawing random rotations
        def __init__(self):
            super().__init__()
            self._gen = torch.Generator().manual_seed(0)

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), Drawing())
    torch.rand(5, generator=model[1]._gen)
    ckpt.save(tmp_path / "g.pt", {"rng": ckpt.capture_rng(model)})
    expected = torch.rand(3, generator=model[1]._gen)
    fresh = torch.nn.Sequential(torch.nn.Linear(2, 2), Drawing())
    ckpt.restore_rng(ckpt.load(tmp_path / "g.pt")["rng"], fresh)
    assert torch.equal(torch.rand(3, generator=fresh[1]._gen), expected)


def test_prune_keeps_last_k_and_links_stay_valid(tmp_path):
    for step in (2, 4, 6, 8):
        ckpt.save(ckpt.step_path(tmp_path, step), {"position": {"step": step}})
    ckpt.link_as(ckpt.step_path(tmp_path, 2), tmp_path / "ckpt_best.pt")
    removed = ckpt.prune(tmp_path, keep_last=2)
    assert sorted(p.name for p in removed) == ["ckpt_step2.pt", "ckpt_step4.pt"]
    assert [s for s, _ in ckpt.step_files(tmp_path)] == [8, 6]
    assert ckpt.load(tmp_path / "ckpt_best.pt")["position"]["step"] == 2


def test_corrupt_latest_checkpoint_resume_falls_back_to_previous(tmp_path, monkeypatch):
    set_env(monkeypatch)
    data = make_data(tmp_path / "data")
    sets = tiny_sets(data, **{"model.dropout": 0.1, "train.max_steps": 10, "checkpoint.every_steps": 3,
                              "checkpoint.keep_last": 3, "train.eval_every_steps": 10})  # no best-loss checkpoints between
    init_experiment("p", root=tmp_path, sets=sets)
    run_pretrain("p", root=tmp_path)  # checkpoints at 3, 6, 9, 10; the last three kept
    exp = tmp_path / "pretrain" / "p"
    ref = losses(exp)
    assert [s for s, _ in ckpt.step_files(exp)] == [10, 9, 6]
    for step in (10, 9):  # truncate (ckpt_last is a hard link of step 10) and garble
        path = ckpt.step_path(exp, step)
        path.write_bytes(path.read_bytes()[:1000] if step == 10 else b"garbage" * 100)
    run_pretrain("p", root=tmp_path, resume=True)
    events = [json.loads(x) for x in (exp / "events.jsonl").read_text().splitlines()]
    unusable = [e["path"] for e in events if e["event"] == "checkpoint_unusable"]
    assert unusable == ["ckpt_last.pt", "ckpt_step10.pt", "ckpt_step9.pt"]
    assert "truncated or corrupt" in next(e for e in events if e["event"] == "checkpoint_unusable")["message"]
    assert [e["path"] for e in events if e["event"] == "resume" and "path" in e] == ["ckpt_step6.pt"]
    got = losses(exp)
    assert list(got) == list(range(1, 11))  # rows after step 6 were rewritten, none duplicated
    np.testing.assert_allclose([got[s] for s in got], [ref[s] for s in got], rtol=1e-5)
    assert "WARNING" in (exp / "logs" / "train.log").read_text()
    assert ckpt.load(exp / "ckpt_last.pt")["position"]["step"] == 10  # good files written again
