"""What a run reports about itself: validation cadence, time per epoch only for full epochs, wall time
summed over resumes, the time estimate, and ``effx eval`` on a run that did not finish."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from test_train_helpers import SCRATCH_ARCH, ft_sets, make_data, rows, set_env, tiny_sets  # noqa: E402

from effx.train import experiment_dir, init_experiment, run_finetune, run_pretrain  # noqa: E402
from effx_cli.main import cli  # noqa: E402



@pytest.fixture()
def env(tmp_path, monkeypatch):
    set_env(monkeypatch)
    return tmp_path, make_data(tmp_path / "data")  # 192 train rows: 24 steps of 8 per epoch


def test_max_steps_run_validates_along_the_way_and_reports_no_partial_epoch(env, capsys):
    root, data = env
    init_experiment("pre", root=root, sets=tiny_sets(data, **{"train.max_steps": 10, "train.epochs": 3}))
    run_pretrain("pre", root=root)
    exp = experiment_dir("pretrain", "pre", root)
    val = rows(exp, "validation")
    assert [int(r["step"]) for r in val] == [2, 4, 6, 8, 10]  # 5 validations, not only the last step
    assert all(r["time_per_epoch_s"] == "" for r in val)  # 10 of 24 steps is no epoch
    assert all(float(r["time_per_step_s"]) > 0 for r in rows(exp))
    info = json.loads((exp / "run_info.json").read_text())
    assert (info["steps_per_epoch"], info["total_steps"], info["eval_every_steps"]) == (24, 10, 2)
    err = capsys.readouterr().out  # the plan goes to stdout; stderr is kept for the one error line
    assert "10 optimizer steps of 8 examples (3 epoch(s) of 24 steps, cut to train.max_steps=10)" in err
    assert "time estimate:" in err and "remaining 7 steps" in err and "(plus 4 validations)" in err

    from effx.eval.runs import read_metrics_csv, training_cost

    cost = training_cost(read_metrics_csv(exp), {}, "validation", info)
    per_step = sum(float(r["time_per_step_s"]) for r in rows(exp)) / len(rows(exp))
    assert cost["time_per_epoch_s"] == pytest.approx(24 * per_step)
    assert cost["time_per_epoch_source"].startswith("extrapolated")


def test_full_epochs_report_measured_time_and_validate_each_epoch(env):
    root, data = env
    init_experiment("pre", root=root, sets=tiny_sets(data, **{"train.epochs": 6}))
    run_pretrain("pre", root=root)
    exp = experiment_dir("pretrain", "pre", root)
    val = rows(exp, "validation")
    assert [int(r["step"]) for r in val] == [24, 48, 72, 96, 120, 144]  # an epoch is shorter than 144/5 steps
    assert all(float(r["time_per_epoch_s"]) > 0 for r in val)

    from effx.eval.runs import read_metrics_csv, training_cost

    cost = training_cost(read_metrics_csv(exp), {}, "validation", json.loads((exp / "run_info.json").read_text()))
    assert cost["time_per_epoch_source"] == "measured"
    assert cost["time_per_epoch_s"] == pytest.approx(sum(float(r["time_per_epoch_s"]) for r in val) / 6)


def test_wall_time_accumulates_over_resume(env):
    root, data = env
    init_experiment("pre", root=root, sets=tiny_sets(data, **{"train.max_steps": 6, "checkpoint.every_steps": 1}))
    run_pretrain("pre", root=root)
    exp = experiment_dir("pretrain", "pre", root)
    before = max(float(r["wall_s"]) for r in rows(exp) + rows(exp, "validation"))
    cfg = yaml.safe_load((exp / "config.yaml").read_text())
    cfg["train"]["max_steps"] = 8
    (exp / "config.yaml").write_text(yaml.safe_dump(cfg))
    run_pretrain("pre", root=root, resume=True)
    after = [float(r["wall_s"]) for r in rows(exp) if int(r["step"]) > 6]
    assert len(after) == 2 and min(after) > before


def test_eval_of_an_unfinished_run_says_so(env, monkeypatch):
    root, data = env
    init_experiment("ft", root=root, finetune=True, pretrained=False,
                    sets=ft_sets(data, **{"train.max_steps": 2, **SCRATCH_ARCH}))
    run_finetune("ft", None, root=root)
    exp = experiment_dir("finetune", "ft", root)
    monkeypatch.setenv("EFFX_ROOT", str(root))
    ok = CliRunner().invoke(cli, ["eval", "-exp", "ft", "-split", "validation"])
    assert ok.exit_code == 0 and "not of a finished run" not in ok.output, ok.output
    status = json.loads((exp / "status.json").read_text())
    (exp / "status.json").write_text(json.dumps({**status, "status": "interrupted", "cause": "interrupted at step 2"}))
    result = CliRunner().invoke(cli, ["eval", "-exp", "ft", "-split", "validation"])
    assert result.exit_code == 0, result.output
    warning = [line for line in result.output.splitlines() if line.startswith("Warning:") and "finish" in line]
    assert len(warning) == 1 and "did not finish (status interrupted at step 2" in warning[0], result.output
    saved = json.loads((exp / "eval.json").read_text())["results"]["validation"]
    assert saved["run_status"] == "interrupted" and math.isfinite(saved["metrics"]["accuracy"])
