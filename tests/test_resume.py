"""Resume after kill -9 and after SIGTERM: per-step losses match an uninterrupted run (fp32, CPU)."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_train_helpers import effx_cmd, losses, make_data, rows, run_effx, set_env, sub_env, tiny_sets  # noqa: E402

from effx.train import init_experiment, run_pretrain  # noqa: E402

pytestmark = pytest.mark.slow  # subprocesses killed and restarted: minutes in all (full suite / CI only)

STEPS = 28


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run (in this process) and the data / settings every test here shares."""
    mp = pytest.MonkeyPatch()
    set_env(mp)
    root = tmp_path_factory.mktemp("ref")
    data = make_data(root / "data", n_train=112)
    sets = tiny_sets(data, True, **{"model.dropout": 0.1, "train.epochs": 2, "checkpoint.keep_last": 2})
    init_experiment("ref", root=root, sets=sets)
    run_pretrain("ref", root=root)
    yield sets, losses(root / "pretrain" / "ref"), [float(r["loss"]) for r in rows(root / "pretrain" / "ref", "validation")]
    mp.undo()


def _start_and_wait(root: Path, min_step: int) -> subprocess.Popen:
    proc = subprocess.Popen(effx_cmd("pretrain", "-exp", "run"), env=sub_env(root), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    metrics = root / "pretrain" / "run" / "metrics.csv"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(rows(root / "pretrain" / "run")) >= min_step:
            return proc
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"run did not reach step {min_step}: {proc.communicate()[0][-2000:]}")


def _events(exp: Path) -> list[dict]:
    return [json.loads(x) for x in (exp / "events.jsonl").read_text().splitlines()]


def test_kill_9_then_resume_matches_uninterrupted_run(tmp_path, monkeypatch, reference):
    sets, ref, ref_val = reference
    set_env(monkeypatch)
    init_experiment("run", root=tmp_path, sets=[*sets, "checkpoint.every_steps=1"])
    exp = tmp_path / "pretrain" / "run"
    proc = _start_and_wait(tmp_path, min_step=8)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    logged = max(int(r["step"]) for r in rows(exp))
    assert logged < STEPS  # really killed mid-run
    status = json.loads((exp / "status.json").read_text())
    assert status["status"] == "running"  # kill -9 leaves no chance to write anything

    done = run_effx(tmp_path, "pretrain", "-exp", "run", "-resume")
    assert done.returncode == 0, done.stderr[-2000:]
    resumed_from = [e for e in _events(exp) if e["event"] == "resume" and "path" in e][-1]
    assert logged - resumed_from["step"] <= 1  # at most one step lost
    got = losses(exp)
    assert list(got) == list(range(1, STEPS + 1))
    np.testing.assert_allclose([got[s] for s in got], [ref[s] for s in got], rtol=1e-5, atol=1e-6)
    got_val = [float(r["loss"]) for r in rows(exp, "validation")]
    np.testing.assert_allclose(got_val, ref_val, rtol=1e-5)
    assert json.loads((exp / "status.json").read_text())["status"] == "finished"


def test_sigterm_checkpoints_marks_interrupted_and_resumes(tmp_path, monkeypatch, reference):
    sets, ref, _ = reference
    set_env(monkeypatch)
    init_experiment("run", root=tmp_path, sets=sets)  # checkpoints only at epoch ends: the signal must save
    exp = tmp_path / "pretrain" / "run"
    proc = _start_and_wait(tmp_path, min_step=5)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 128 + signal.SIGTERM, out[-2000:]  # 143: the shell convention for SIGTERM
    assert "Interrupted" in out and "-resume" in out and "Traceback" not in out
    status = json.loads((exp / "status.json").read_text())
    assert status["status"] == "interrupted" and "checkpoint saved" in status["cause"]
    saved = [e for e in _events(exp) if e["event"] == "checkpoint"][-1]
    assert saved["step"] == status["step"] == max(int(r["step"]) for r in rows(exp))  # no step lost
    done = run_effx(tmp_path, "pretrain", "-exp", "run", "-resume")
    assert done.returncode == 0, done.stderr[-2000:]
    got = losses(exp)
    assert list(got) == list(range(1, STEPS + 1))
    np.testing.assert_allclose([got[s] for s in got], [ref[s] for s in got], rtol=1e-5, atol=1e-6)
