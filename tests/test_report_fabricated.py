"""The comparison report on hand-made experiment folders: every failure kind, GPU memory, variants,
fallbacks and a folder with nothing usable (fast; the real runs are in test_eval_pipeline.py)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from effx.errors import EffxError
from effx.eval import build_report

GPU = {"type": "cuda", "name": "NVIDIA H100"}


def make_run(root: Path, name: str, *, seed=0, att="sdpa", f1=0.80, status="finished", cause=None, time=10.0,
             mem=1000.0, mem_kind="cuda_max_allocated", eval_json=True, lr=5e-4, loss=0.5, device=GPU, kind="finetune",
             max_length=64):
    d = root / kind / name
    d.mkdir(parents=True)
    cfg = {"seed": seed, "model": {"d_model": 32, "n_layers": 1, "max_seq_len": 64, "attention": {"type": att},
                                   "positional": {"type": "rope"}},
           "head": {"type": "classification", "pooling": "cls"}, "tokenizer": {"vocab_size": 400},
           "data": {"train": "a.csv", "max_length": max_length}, "train": {"batch_size": 8, "epochs": 2, "optimizer": {"lr": lr}}}
    if kind == "baseline":
        cfg = {"kind": "baseline", "seed": seed, "data": cfg["data"], "tfidf": {"ngram_max": 2}}
        (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    else:
        (d / "config.yaml").write_text(yaml.safe_dump({"seed": seed}))
        (d / "resolved_config.yaml").write_text(yaml.safe_dump({**cfg, "pretrain": {"name": "P", "path": str(root / "pretrain" / "P")}}))
    rows = [{"step": 5, "epoch": 1, "split": "train", "loss": loss, "tokens_per_s": 100.0},
            {"step": 5, "epoch": 1, "split": "validation", "loss": loss, "macro_F1": f1, "accuracy": f1,
             "time_per_epoch_s": time, "peak_mem_MiB": mem, "mem_kind": mem_kind},
            {"step": 10, "epoch": 2, "split": "validation", "loss": loss, "macro_F1": f1, "accuracy": f1,
             "time_per_epoch_s": time, "peak_mem_MiB": mem, "mem_kind": mem_kind}]
    pd.DataFrame(rows).to_csv(d / "metrics.csv", index=False)
    if status is not None:
        (d / "status.json").write_text(json.dumps({"status": status, "cause": cause, "step": 10, "epoch": 2}))
    (d / "run_info.json").write_text(json.dumps({"seed": seed, "device": device, "num_parameters": 1234}))
    if eval_json:
        res = {"metrics": {"accuracy": f1, "macro_F1": f1, "weighted_F1": f1, "AUROC": 0.9}, "tokens_per_s": 500.0}
        (d / "eval.json").write_text(json.dumps({"experiment": name, "results": {"validation": res}}))
    return d


@pytest.fixture()
def runs(tmp_path):
    r = tmp_path / "runs"
    for s, f1 in enumerate((0.900, 0.905, 0.908)):
        make_run(r, f"sdpa-s{s}", seed=s, f1=f1)
    for s, f1 in enumerate((0.895, 0.899, 0.901)):
        make_run(r, f"lsh-s{s}", seed=s, att="reformer_lsh", f1=f1, time=8.0, mem=900.0)
    for s, f1 in enumerate((0.890, 0.892)):
        make_run(r, f"bal-s{s}", seed=s, att="reformer_balanced", f1=f1, time=9.0, mem=700.0)
    make_run(r, "bal-s2", seed=2, att="reformer_balanced", status="failed", cause="out of memory at step 3", eval_json=False)
    make_run(r, "fav-s0", att="performer_favor", status="interrupted", cause="SIGTERM at step 4", eval_json=False)
    make_run(r, "fav-s1", seed=1, att="performer_favor", status="running", eval_json=False)
    make_run(r, "fav-s2", seed=2, att="performer_favor", status=None, eval_json=False)
    make_run(r, "nanloss", lr=10.0, loss="nan")  # written as the text nan
    make_run(r, "noeval", lr=1e-3, f1=0.7, eval_json=False)  # validation: falls back to metrics.csv
    make_run(r, "tfidf", kind="baseline", f1=0.85, time=2.0, mem=300.0, mem_kind="cpu_rss", device={"type": "cpu", "name": "x86"})
    (r / "finetune" / "never-run").mkdir()
    (r / "finetune" / "never-run" / "config.yaml").write_text("seed: 0\n")  # init only: not a run yet
    return r


def _by(df: pd.DataFrame, exp: str) -> pd.Series:
    names = df["experiments"].fillna("") + " " + df["failed_experiments"].fillna("")
    return df[names.str.split().map(lambda n: exp in n)].iloc[0]


def test_failure_kinds_are_named_and_excluded(runs, tmp_path):
    rep = build_report(runs, tmp_path / "rep")
    failed = pd.read_csv(rep.out / "failed_runs.csv").set_index("experiment")
    assert sorted(failed.index) == ["bal-s2", "fav-s0", "fav-s1", "fav-s2", "nanloss"]
    assert failed.loc["bal-s2", "cause"] == "out of memory at step 3"
    assert failed.loc["fav-s0", "status"] == "interrupted" and "SIGTERM" in failed.loc["fav-s0", "cause"]
    assert failed.loc["fav-s1", "status"] == "running" and "killed" in failed.loc["fav-s1", "cause"]
    assert failed.loc["fav-s2", "status"] == "missing" and "no status.json" in failed.loc["fav-s2", "cause"]
    assert "NaN/Inf loss" in failed.loc["nanloss", "cause"]
    df = pd.read_csv(rep.out / "results.csv")
    assert "never-run" not in " ".join(df["experiments"].fillna("") + df["failed_experiments"].fillna(""))
    bal = _by(df, "bal-s0")
    assert (bal["status"], bal["n_seeds"], bal["n_failed"], bal["seeds"]) == ("partial (1 failed)", 2, 1, "0 1")
    assert (bal["experiments"], bal["failed_experiments"]) == ("bal-s0 bal-s1", "bal-s2")
    assert bal["macro_F1_mean"] == pytest.approx(0.891) and bal["wnf_no_failures"] == "FAIL"
    assert bal["wnf_seeds"] == "FAIL" and bal["PASS_WNF"] == "FAIL"
    fav = _by(df, "fav-s0")
    assert (fav["status"], fav["n_seeds"], fav["PASS_WNF"]) == ("failed", 0, "FAIL")
    for name in ("ranking_by_macro_F1.csv", "ranking_by_cost.csv"):
        ranked = " ".join(pd.read_csv(rep.out / name)["experiments"])
        assert "fav-s" not in ranked and "nanloss" not in ranked and "bal-s2" not in ranked
        assert "bal-s0" in ranked and "noeval" in ranked


def test_gpu_memory_variants_and_pass(runs, tmp_path):
    df = build_report(runs, tmp_path / "rep").results
    lsh, sdpa, base = _by(df, "lsh-s0"), _by(df, "sdpa-s0"), _by(df, "tfidf")
    assert lsh["family"] == "Reformer" and _by(df, "bal-s0")["family"] == "Reformer"
    assert lsh["ref_exact"] == sdpa["config_id"] and lsh["ref_baseline"] == base["config_id"]
    assert sdpa["max_gpu_mem_MiB"] == 1000.0 and math.isnan(sdpa["peak_rss_MiB"])
    assert base["peak_rss_MiB"] == 300.0 and math.isnan(base["max_gpu_mem_MiB"])
    assert sdpa["device"] == "cuda: NVIDIA H100" and sdpa["infer_tokens_per_s"] == 500.0
    assert sdpa["macro_F1_spread"] == pytest.approx(0.008) and sdpa["PASS_WNF"] == "PASS"
    # reformer_lsh: +4.65 pp over baseline, 0.6 pp under SDPA, time -20 % -> passes every threshold
    assert [lsh[c] for c in ("wnf_vs_baseline", "wnf_vs_exact", "wnf_cost", "wnf_seeds", "wnf_spread")] == ["PASS"] * 5
    assert lsh["PASS_WNF"] == "PASS"
    # reformer_balanced: memory -30 % passes cost even though time is only -10 %
    assert _by(df, "bal-s0")["wnf_cost"] == "PASS"
    noeval = _by(df, "noeval")
    assert noeval["metrics_source"] == "metrics.csv:last-validation" and noeval["macro_F1_mean"] == pytest.approx(0.7)
    md = (tmp_path / "rep" / "comparison.md").read_text()
    assert "| Reformer | reformer_balanced | rope |" in md and "Device: cuda: NVIDIA H100 · batch: 8 · seq_len: 64" in md


def test_test_split_needs_eval_json(runs, tmp_path):
    rep = build_report(runs, tmp_path / "rep", split="test")
    failed = pd.read_csv(rep.out / "failed_runs.csv")
    assert "missing metrics for split 'test'" in " ".join(failed["cause"])
    assert (rep.results["n_seeds"] == 0).all()  # nothing has test metrics: nothing ranked, nothing crashes
    assert pd.read_csv(rep.out / "ranking_by_cost.csv").empty
    assert (rep.out / "quality_vs_memory.png").read_bytes().startswith(b"\x89PNG")


def test_metric_choice_and_errors(runs, tmp_path):
    rep = build_report(runs, tmp_path / "rep", metric="accuracy")
    assert (rep.out / "ranking_by_accuracy.csv").is_file()
    with pytest.raises(EffxError, match="unknown metric 'acc'"):
        build_report(runs, tmp_path / "rep", metric="acc")
    with pytest.raises(EffxError, match="no finetune or baseline experiments"):
        build_report(tmp_path / "rep" / "configs", tmp_path / "rep2")
    bad = tmp_path / "th.yaml"
    bad.write_text("quality:\n  exact_min_gain_over_baseline: 5\n")
    with pytest.raises(EffxError, match="extra fields found.*did you mean 'exact_min_gain_over_baseline_pp'"):
        build_report(runs, tmp_path / "rep", thresholds=bad)
    edited = tmp_path / "th2.yaml"
    edited.write_text("stability:\n  min_seeds: 2\n  allow_failed_runs: true\n")
    df = build_report(runs, tmp_path / "rep3", thresholds=edited).results
    assert _by(df, "bal-s0")["wnf_seeds"] == "PASS" and _by(df, "bal-s0")["wnf_no_failures"] == "PASS"
    assert "min_seeds: 2" in (tmp_path / "rep3" / "thresholds.yaml").read_text()


def test_one_seed_std_is_na_not_zero_in_every_output(runs, tmp_path):
    rep = build_report(runs, tmp_path / "rep")
    df = pd.read_csv(rep.out / "results.csv")
    one = _by(df, "noeval")  # a configuration with a single finished seed
    assert one["n_seeds"] == 1 and one["macro_F1_std"] == "n.a." and one["accuracy_std"] == "n.a."
    assert float(_by(df, "sdpa-s0")["macro_F1_std"]) > 0  # several seeds: a number
    rank = pd.read_csv(rep.out / "ranking_by_macro_F1.csv")
    assert rank.loc[rank["n_seeds"] == 1, "macro_F1_std"].eq("n.a.").all()
    md = (rep.out / "comparison.md").read_text()
    assert "0.7000 ± n.a." in md and "± 0.0000" not in md
    page = (rep.out / "report.html").read_text()
    assert "0.7000 ± n.a." in page and "± 0.0000" not in page and "&lt;NA&gt;" not in page and "<pre>" not in page


def test_quality_and_time_vs_seq_len_plot_only_when_runs_span_lengths(tmp_path):
    r = tmp_path / "runs"
    for n, f1, t in ((64, 0.80, 4.0), (128, 0.84, 9.0), (256, 0.86, 20.0)):
        make_run(r, f"sdpa-{n}", f1=f1, time=t, max_length=n)
        make_run(r, f"lsh-{n}", att="reformer_lsh", f1=f1 - 0.01, time=t * 0.7, max_length=n)
    rep = build_report(r, tmp_path / "rep")
    png = rep.out / "quality_vs_seq_len.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and rep.files["quality_vs_seq_len.png"] == png
    page = (rep.out / "report.html").read_text()
    assert 'id="quality_vs_seq_len"' in page and page.count("<h3>Comparison group") == 3
    single = tmp_path / "single"
    make_run(single, "sdpa-a", f1=0.8, max_length=64)
    make_run(single, "lsh-a", att="reformer_lsh", f1=0.79, max_length=64)
    rep1 = build_report(single, tmp_path / "rep1")
    assert not (rep1.out / "quality_vs_seq_len.png").exists()


def test_a_baseline_fitted_once_per_neural_length_is_one_configuration_of_one_seed(tmp_path):
    r = tmp_path / "runs"
    for n, f1 in ((64, 0.80), (128, 0.84)):
        make_run(r, f"sdpa-{n}", f1=f1, max_length=n)
        make_run(r, f"tfidf-{n}", kind="baseline", f1=0.85, max_length=n)  # TF-IDF reads whole texts
    make_run(r, "tfidf-s1", kind="baseline", seed=1, f1=0.87, max_length=64)
    df = build_report(r, tmp_path / "rep").results
    base = df[df["kind"] == "baseline"]
    assert len(base) == 1 and base.iloc[0]["n_seeds"] == 2 and base.iloc[0]["seeds"] == "0 1"
    assert base.iloc[0]["experiments"] == "tfidf-128 tfidf-s1"  # of the two seed-0 fits the first by name
    assert base.iloc[0]["macro_F1_mean"] == pytest.approx(0.86)  # (0.85 + 0.87) / 2, the repeat not counted
    md = (tmp_path / "rep" / "comparison.md").read_text()
    assert md.count("| TF-IDF+LR | tfidf_logreg |") == 2  # one row in each length's group, not two
