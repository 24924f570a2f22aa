"""Sweep spec parsing and expansion (no training here; the real sweep runs in test_eval_pipeline.py)."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from effx.errors import ConfigError
from effx.eval.sweep import SweepSpec, combinations, load_spec, plan, route
from effx_cli.main import cli


def test_route_sends_keys_to_the_right_configs():
    assert route("model.attention.type") == ("pretrain",)
    assert route("tokenizer.vocab_size") == ("pretrain",)
    assert route("head.pooling") == ("finetune",)
    assert route("seed") == ("pretrain", "finetune")
    assert route("train.optimizer.lr") == ("pretrain", "finetune")
    assert route("finetune.train.optimizer.lr") == ("finetune",)
    assert route("pretrain.train.epochs") == ("pretrain",)
    with pytest.raises(ConfigError, match="modle.d_model"):
        route("modle.d_model")


def test_grid_times_variants_with_fixed_settings():
    spec = SweepSpec(name="x", fixed={"train.epochs": 1}, grid={"seed": [0, 1, 2], "model.positional.type": ["sin", "rope"]},
                     variants=[{"model.attention.type": "sdpa"}, {"model.attention.type": "performer_favor"}])
    combos = combinations(spec)
    assert len(combos) == 12
    assert all(c["train.epochs"] == 1 for c in combos)
    assert {(c["seed"], c["model.positional.type"], c["model.attention.type"]) for c in combos} == {
        (s, p, a) for s in (0, 1, 2) for p in ("sin", "rope") for a in ("sdpa", "performer_favor")}


def test_plan_one_job_per_pretraining_and_shared_baselines():
    spec = SweepSpec(name="x", grid={"finetune.seed": [0, 1, 2]},
                     variants=[{"model.attention.type": "sdpa"}, {"model.attention.type": "reformer_lsh"}])
    jobs = plan(spec)
    assert [j.name for j in jobs] == ["x-pre-sdpa", "x-pre-reformer_lsh"]
    assert [f.name for f in jobs[0].finetunes] == ["x-s0-sdpa", "x-s1-sdpa", "x-s2-sdpa"]
    assert [f.seed for f in jobs[1].finetunes] == [0, 1, 2]
    assert 'model.attention.type="reformer_lsh"' in jobs[1].sets
    assert jobs[0].finetunes[1].sets == ("seed=1",)
    # one baseline per (data, seed), owned by the first job that needs it
    assert len(jobs[0].baselines) == 3 and jobs[1].baselines == ()
    assert [like for _, like in jobs[0].baselines] == ["x-s0-sdpa", "x-s1-sdpa", "x-s2-sdpa"]


def test_seed_in_both_configs_means_one_pretraining_per_seed():
    jobs = plan(SweepSpec(name="x", grid={"seed": [0, 1]}, baseline=False))
    assert [j.name for j in jobs] == ["x-pre-s0", "x-pre-s1"]
    assert jobs[1].sets == ("seed=1",) and jobs[1].finetunes[0].sets == ("seed=1",)
    assert all(j.baselines == () for j in jobs)


def test_spec_file_is_strict(tmp_path):
    bad = tmp_path / "s.yaml"
    bad.write_text("name: x\ngird: {seed: [0]}\n")
    with pytest.raises(ConfigError, match="gird.*grid"):
        load_spec(bad)
    bad.write_text("name: x\ngrid: {seed: 0}\n")
    with pytest.raises(ConfigError, match="grid.seed: expected a non-empty list"):
        load_spec(bad)
    bad.write_text("name: x\neval_splits: [dev]\n")
    with pytest.raises(ConfigError, match="dev"):
        load_spec(bad)


def test_cli_list_prints_the_plan_and_help(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("name: y\ngrid:\n  finetune.seed: [0, 1]\n")
    res = CliRunner().invoke(cli, ["sweep", str(spec), "--list"])
    assert res.exit_code == 0, res.output
    assert res.output.strip() == "y-pre: y-s0 y-s1 | baselines: y-tfidf-" + plan(load_spec(spec)[0])[0].baselines[0][0][-6:] \
        + " y-tfidf-" + plan(load_spec(spec)[0])[0].baselines[1][0][-6:]
    for cmd in ("sweep", "eval", "predict", "baseline"):
        assert CliRunner().invoke(cli, [cmd, "--help"]).exit_code == 0


def test_sweep_progress_lines_count_jobs_and_estimate_the_rest():
    from effx.eval.sweep_progress import SweepProgress

    now = [0.0]
    lines: list[str] = []
    p = SweepProgress(total=4, parallel=2, log=lines.append, clock=lambda: now[0])
    p.start("a", "logs/a.log")
    p.start("b", "logs/b.log")
    now[0] = 60.0
    p.finish("a", 0, "logs/a.log")
    assert lines[0] == "[0/4 done] started a (log: logs/a.log)"
    assert lines[2] == "[1/4 done] finished a in 1m00s; about 1m30s left"  # 3 left, 2 at a time, 60 s each
    p.start("c", "logs/c.log")
    now[0] = 180.0
    p.finish("b", 1, "logs/b.log")  # took 180 s: mean 120 s, 2 left, 2 at a time
    assert lines[-1] == "[2/4 done] FAILED (exit 1; see logs/b.log) b in 3m00s; about 2m00s left"
    p.start("d", "logs/d.log")
    now[0] = 200.0
    p.finish("c", 0, "logs/c.log")
    p.finish("d", 0, "logs/d.log")
    assert lines[-1] == "[4/4 done] finished d in 20s; all done, 1 failed"


def test_zero_pretraining_steps_means_a_finetune_from_scratch_with_its_own_architecture():
    spec = SweepSpec(name="q", fixed={"model.d_model": 64, "tokenizer.vocab_size": 500, "mlm.mask_prob": 0.2,
                                      "head.pooling": "mean"},
                     grid={"pretrain.train.max_steps": [0, 300]})
    scratch, pretrained = plan(spec)
    assert (scratch.name, scratch.pretrained) == ("q-scratch-0", False)
    assert (pretrained.name, pretrained.pretrained) == ("q-pre-300", True)
    assert [f.pretrained for f in scratch.finetunes] == [False]
    assert [f.pretrained for f in pretrained.finetunes] == [True]
    # without pretraining the finetune carries the architecture and tokenizer, never MLM or pretrain.* keys
    assert set(scratch.finetunes[0].sets) == {"model.d_model=64", "tokenizer.vocab_size=500", 'head.pooling="mean"'}
    assert set(pretrained.finetunes[0].sets) == {'head.pooling="mean"'}
    by_epochs = plan(SweepSpec(name="e", grid={"pretrain.train.epochs": [0, 5]}, baseline=False))
    assert [(j.name, j.pretrained) for j in by_epochs] == [("e-scratch-0", False), ("e-pre-5", True)]


def test_list_marks_jobs_without_pretraining(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("name: q\nbaseline: false\ngrid:\n  pretrain.train.max_steps: [0, 10]\n")
    res = CliRunner().invoke(cli, ["sweep", str(spec), "--list"])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines() == ["q-scratch-0 (no pretraining): q-0", "q-pre-10: q-10"]
