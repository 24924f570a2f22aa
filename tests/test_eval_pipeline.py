"""Tiny REAL runs end to end: a sweep (2 attention types x 2 seeds + baselines), a run that fails
with NaN, then eval, predict, baseline and the comparison report built from them."""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import yaml
import pandas as pd
import pytest
from click.testing import CliRunner

from effx import load_registry
from effx.eval.sweep import load_spec, plan, run_job
from effx.resources import SAMPLE_DIR
from effx_cli.main import cli

pytestmark = pytest.mark.slow  # one module fixture trains and sweeps several tiny experiments end to end

ENV = {**os.environ, "WANDB_MODE": "disabled", "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
EFFX = [sys.executable, "-m", "effx_cli.main"]
OTHER = "performer_favor" if "performer_favor" in load_registry().names("attention") else "sdpa"
OTHER_PARAMS = "model.attention.nb_features: 16" if OTHER == "performer_favor" else "model.attention.impl: explicit"
DATA = ["data.max_length=64", "data.validation=null", "data.max_train_samples=240", "data.max_eval_samples=80",
        "train.epochs=1", "train.batch_size=32", "logging.progress_bar=false"]


def spec_text(tiny_fixed) -> str:
    """Two types x two finetune seeds of a tiny model, 2 finetune epochs."""
    other = {"model.attention.type": OTHER, **yaml.safe_load(OTHER_PARAMS)}
    return yaml.safe_dump({"name": "t", "fixed": {**tiny_fixed(240, 80), "finetune.train.epochs": 2},
                           "grid": {"finetune.seed": [0, 1]},
                           "variants": [{"model.attention.type": "sdpa"}, other], "eval_splits": ["validation"]},
                          sort_keys=False)  # order matters: finetune.train.epochs overrides train.epochs


SDPA_FT = ["t-s0-sdpa", "t-s1-sdpa"]
OTHER_FT = [f"t-s0-{OTHER}-16", f"t-s1-{OTHER}-16"] if OTHER == "performer_favor" else ["t-s0-sdpa-explicit", "t-s1-sdpa-explicit"]


def sweep(spec: Path, root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*EFFX, "sweep", str(spec), "--jobs", "2", "--root", str(root)], env=ENV,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def root(tmp_path_factory, tiny_fixed) -> Path:
    from effx.train import TrainingFailed, init_experiment, run_finetune

    base = tmp_path_factory.mktemp("runs")
    spec = base / "spec.yaml"
    spec.write_text(spec_text(tiny_fixed))
    res = sweep(spec, base / "root")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "started t-pre-sdpa" in res.stdout and "[2/2 done] finished" in res.stdout  # per-job progress
    nan_sets = [*DATA, "train.optimizer.lr=1e30", "train.clip_grad_norm=null"]
    init_experiment("t-nan", root=base / "root", sets=nan_sets, finetune=True)
    with pytest.raises(TrainingFailed):
        run_finetune("t-nan", "t-pre-sdpa", root=base / "root")
    return base / "root"


def status(root: Path, kind: str, name: str) -> dict:
    return json.loads((root / kind / name / "status.json").read_text())


# ----------------------------------------------------------------------------- sweep
def test_sweep_made_every_run_and_rerun_skips_finished_and_resumes_interrupted(root):
    pre = sorted(p.name for p in (root / "pretrain").iterdir())
    assert pre == sorted(["t-pre-sdpa", f"t-pre-{OTHER}-16" if OTHER == "performer_favor" else "t-pre-sdpa-explicit"])
    for name in SDPA_FT + OTHER_FT:
        assert status(root, "finetune", name)["status"] == "finished"
        assert "validation" in json.loads((root / "finetune" / name / "eval.json").read_text())["results"]
    assert len(list((root / "baseline").iterdir())) == 2  # one per (data, seed): the carved split differs
    # interrupt one run by hand; a second sweep continues it and leaves the others untouched
    st = root / "finetune" / SDPA_FT[1] / "status.json"
    st.write_text(json.dumps({**status(root, "finetune", SDPA_FT[1]), "status": "interrupted"}))
    untouched = {n: (root / "finetune" / n / "status.json").stat().st_mtime_ns for n in [SDPA_FT[0], *OTHER_FT]}
    spec, spec_dir = load_spec(root.parent / "spec.yaml")
    lines = []
    assert run_job(spec, spec_dir, plan(spec)[0], root, log=lines.append)  # the job of t-pre-sdpa, in-process
    log = "\n".join(lines)
    assert f"resume finetune/{SDPA_FT[1]}" in log and f"skip finetune/{SDPA_FT[0]}: finished" in log
    assert "skip pretrain/t-pre-sdpa: finished" in log and "skip baseline/" in log
    assert status(root, "finetune", SDPA_FT[1])["status"] == "finished"
    assert {n: (root / "finetune" / n / "status.json").stat().st_mtime_ns for n in untouched} == untouched


# ----------------------------------------------------------------------------- eval
def _independent_probs(exp_dir: Path):
    """Probabilities computed one example at a time (no batching, no padding), outside effx.eval."""
    import torch

    from effx.data import encode, load_splits
    from effx.train import load_for_inference

    inf = load_for_inference(exp_dir, ckpt="best")
    splits = load_splits(inf.config.data, inf.config.seed, label_names=inf.label_names)
    probs = []
    with torch.no_grad():
        for ids in encode(inf.tokenizer, splits.validation["text"], inf.config.data.max_length):
            x = torch.tensor([ids])
            probs.append(torch.softmax(inf.model(x, torch.ones_like(x, dtype=torch.bool)), -1)[0].numpy())
    return np.asarray(splits.validation["label"]), np.stack(probs)


def test_eval_metrics_match_an_independent_computation(root):
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    from effx.eval import evaluate

    exp = root / "finetune" / SDPA_FT[1]  # (SDPA_FT[0] keeps the sweep's own eval.json for the reproduce test)
    res = evaluate(SDPA_FT[1], split="validation", root=root)
    y, p = _independent_probs(exp)
    m = res["metrics"]
    assert set(m) == set(load_registry().names("metric")) >= {"accuracy", "macro_F1", "weighted_F1", "AUROC"}
    assert m["accuracy"] == pytest.approx(accuracy_score(y, p.argmax(1)))
    assert m["macro_F1"] == pytest.approx(f1_score(y, p.argmax(1), average="macro", labels=range(4), zero_division=0))
    # AUROC ranks near-tied scores of a barely trained model: padded batches move them by ~1e-7
    assert m["AUROC"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr", average="macro"), abs=5e-3)
    assert res["n_examples"] == len(y) == 80 and res["tokens_per_s"] > 0 and res["peak_rss_MiB"] > 50
    assert res["memory_column"] == "peak_rss_MiB" and "max_gpu_mem_MiB" not in res
    out = CliRunner().invoke(cli, ["eval", "-exp", SDPA_FT[1], "-split", "test", "--root", str(root)])
    assert out.exit_code == 0, out.output
    assert "macro_F1=" in out.output and "inference tokens/s=" in out.output and "peak_rss_MiB=" in out.output
    assert "split test: scored " in out.output  # names the split it scored
    assert [ln for ln in out.output.splitlines() if ln.startswith("test: ") and "macro_F1=" in ln]
    saved = json.loads((exp / "eval.json").read_text())["results"]
    assert set(saved) == {"validation", "test"} and saved["test"]["n_examples"] == 80
    bad = CliRunner().invoke(cli, ["eval", "-exp", "nope", "--root", str(root)])
    assert bad.exit_code == 1 and "Error: no finetune experiment 'nope'" in bad.output


# ----------------------------------------------------------------------------- predict
def test_predict_survives_empty_lines_long_text_and_invalid_bytes(root, tmp_path):
    src = tmp_path / "in.txt"
    src.write_bytes(b"Stocks fell sharply on Wall Street\n\n" + b"football " * 20000 + b"\nbad \xff\xfe bytes\n")
    out = tmp_path / "out.csv"
    res = CliRunner().invoke(cli, ["predict", "-exp", SDPA_FT[0], "--input", str(src), "--output", str(out),
                                   "--root", str(root)])
    assert res.exit_code == 0, res.output
    for needle in ("1 line(s) had bytes that are not UTF-8", "1 empty text(s)", "1 text(s) were longer"):
        assert needle in res.output
    df = pd.read_csv(out, keep_default_na=False)
    names = json.loads((root / "finetune" / SDPA_FT[0] / "labels.json").read_text())
    assert list(df["row"]) == [1, 2, 3, 4]
    assert df.loc[1, "note"] == "empty" and df.loc[1, "label"] == ""
    probs = df[[f"prob_{n}" for n in names]].drop(index=1).astype(float).to_numpy()
    assert np.allclose(probs.sum(1), 1.0, atol=1e-5)
    labels = df["label"].drop(index=1).astype(int)
    assert list(df["label_name"].drop(index=1)) == [names[i] for i in labels] and list(labels) == list(probs.argmax(1))
    assert "\ufffd" in df.loc[3, "text"] and len(df.loc[2, "text"]) > 100_000
    jl = tmp_path / "out.jsonl"
    assert CliRunner().invoke(cli, ["predict", "-exp", SDPA_FT[0], "--input", str(src), "--output", str(jl),
                                    "--root", str(root)]).exit_code == 0
    rows = [json.loads(line) for line in jl.read_text().splitlines()]
    assert rows[0]["probs"] == pytest.approx(dict(zip(names, probs[0])), abs=1e-6) and rows[1]["label"] is None


# ----------------------------------------------------------------------------- baseline
def _validation_texts(data: dict, seed: int) -> list[str]:
    from effx.config import DataConfig, structure
    from effx.data import load_splits

    return load_splits(structure(data, DataConfig), seed).validation["text"]


def test_baseline_uses_the_same_split_and_its_metrics_are_real(root):
    import yaml
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    for base in (root / "baseline").iterdir():
        cfg = yaml.safe_load((base / "config.yaml").read_text())
        ft = yaml.safe_load((root / "finetune" / cfg["like"] / "resolved_config.yaml").read_text())
        assert cfg["kind"] == "baseline" and cfg["seed"] == ft["seed"] and cfg["data"] == ft["data"]
        same = _validation_texts(cfg["data"], cfg["seed"])
        assert same == _validation_texts(ft["data"], ft["seed"])
        assert same != _validation_texts(ft["data"], ft["seed"] + 1)  # the check can tell splits apart
        from effx.config import DataConfig, structure
        from effx.data import load_splits

        sp = load_splits(structure(cfg["data"], DataConfig), cfg["seed"])
        vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, max_features=200_000).fit(sp.train["text"])
        clf = LogisticRegression(C=1.0, max_iter=1000, random_state=cfg["seed"])
        pred = clf.fit(vec.transform(sp.train["text"]), sp.train["label"]).predict(vec.transform(sp.validation["text"]))
        ev = json.loads((base / "eval.json").read_text())["results"]
        assert ev["validation"]["metrics"]["macro_F1"] == pytest.approx(
            f1_score(sp.validation["label"], pred, average="macro", labels=range(4), zero_division=0))
        assert status(root, "baseline", base.name)["status"] == "finished"
        for f in ("metrics.csv", "run_info.json", "labels.json"):
            assert (base / f).is_file()


def test_baseline_cli_with_set_and_without_data(root, tmp_path):
    train = SAMPLE_DIR / "agnews_train.csv"
    res = CliRunner().invoke(cli, ["baseline", "-exp", "b-set", "--root", str(tmp_path), "--set", f"data.train={train}",
                                   "--set", "data.max_train_samples=200", "--set", "tfidf.ngram_max=1"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("validation: ") and "macro_F1=" in res.output
    assert (tmp_path / "baseline" / "b-set" / "eval.json").is_file()
    assert CliRunner().invoke(cli, ["baseline", "-exp", "b", "--root", str(tmp_path)]).exit_code == 2
    typo = CliRunner().invoke(cli, ["baseline", "-exp", "b", "--root", str(tmp_path), "--set", "data.train=x.csv",
                                    "--set", "logreg.CC=2"])
    assert typo.exit_code == 1 and "logreg: extra fields found (CC)" in typo.output


# ----------------------------------------------------------------------------- report
COLUMNS = ["config_id", "family", "variant", "attention_type", "attention_params", "positional", "d_model", "n_layers",
           "n_heads", "d_ff", "seq_len", "batch_size", "lr", "epochs", "dtype", "num_parameters", "device", "n_seeds",
           "seeds", "n_failed", "macro_F1_best", "macro_F1_mean", "macro_F1_std", "macro_F1_spread", "accuracy_mean",
           "weighted_F1_mean", "AUROC_mean", "time_per_epoch_s", "train_tokens_per_s", "infer_tokens_per_s",
           "max_gpu_mem_MiB", "peak_rss_MiB", "status", "failed_experiments", "wnf_vs_baseline", "wnf_vs_exact", "wnf_cost", "wnf_seeds",
           "wnf_spread", "wnf_no_failures", "PASS_WNF", "experiments", "target_macro_F1", "time_to_target_s",
           "pretrain_wall_s", "time_to_target_total_s", "target_reached"]


class _Imgs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.captions, self._cap, self.external = {}, [], False, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs[a.get("alt")] = a.get("src", "")
        if tag in ("script", "link") or (tag == "img" and not a.get("src", "").startswith("data:")):
            self.external.append(tag)
        self._cap = tag == "figcaption"

    def handle_data(self, data):
        if self._cap:
            self.captions.append(data)
            self._cap = False


@pytest.fixture(scope="module")
def report(root, tmp_path_factory):
    from effx.eval import build_report

    return build_report(root, tmp_path_factory.mktemp("report"))


def _metric(root: Path, names: list[str], m: str = "macro_F1") -> list[float]:
    return [json.loads((root / "finetune" / n / "eval.json").read_text())["results"]["validation"]["metrics"][m]
            for n in names]


def test_results_csv_every_column_and_seed_grouping(root, report):
    df = pd.read_csv(report.out / "results.csv")
    assert [c for c in COLUMNS if c not in df.columns] == []
    assert sorted(df["family"]) == sorted(["SDPA", "SDPA" if OTHER == "sdpa" else "Performer", "SDPA", "TF-IDF+LR"])
    for names in (SDPA_FT, OTHER_FT):
        row = df[df["experiments"] == " ".join(sorted(names))].iloc[0]
        vals = _metric(root, names)
        assert (row["n_seeds"], row["seeds"], row["n_failed"], row["status"]) == (2, "0 1", 0, "finished")
        assert row["macro_F1_mean"] == pytest.approx(np.mean(vals)) and row["macro_F1_best"] == pytest.approx(max(vals))
        assert row["macro_F1_std"] == pytest.approx(np.std(vals, ddof=1))
        assert row["macro_F1_spread"] == pytest.approx(max(vals) - min(vals))
        assert row["accuracy_mean"] == pytest.approx(np.mean(_metric(root, names, "accuracy")))
        per_epoch = [pd.read_csv(root / "finetune" / n / "metrics.csv").dropna(subset=["time_per_epoch_s"])
                     .groupby("epoch")["time_per_epoch_s"].last().mean() for n in names]
        assert row["time_per_epoch_s"] == pytest.approx(np.mean(per_epoch))
        assert row["peak_rss_MiB"] > 0 and math.isnan(row["max_gpu_mem_MiB"]) and row["device"].startswith("cpu")
        assert (row["seq_len"], row["batch_size"], row["d_model"], row["epochs"]) == (64, 32, 32, 2)
    assert df[df["attention_type"] == OTHER].iloc[-1]["num_parameters"] > 0
    base = df[df["family"] == "TF-IDF+LR"].iloc[0]
    assert base["n_seeds"] == 2 and base["PASS_WNF"] == "n.a." and math.isnan(base["seq_len"])
    sdpa = df[df["experiments"] == " ".join(sorted(SDPA_FT))].iloc[0]
    pre_wall = pd.read_csv(root / "pretrain" / "t-pre-sdpa" / "metrics.csv")["wall_s"].max()
    assert sdpa["pretrain_wall_s"] == pytest.approx(pre_wall) and sdpa["target_reached"].endswith("/2")


def test_failed_run_is_listed_with_cause_and_excluded_from_rankings(report):
    failed = pd.read_csv(report.out / "failed_runs.csv")
    assert list(failed["experiment"]) == ["t-nan"] and "nan" in failed["cause"][0].lower()
    assert failed["status"][0] == "failed"
    df = pd.read_csv(report.out / "results.csv")
    row = df[df["failed_experiments"] == "t-nan"].iloc[0]
    assert pd.isna(row["experiments"])
    assert (row["status"], row["n_seeds"], row["n_failed"], row["PASS_WNF"]) == ("failed", 0, 1, "FAIL")
    assert math.isnan(row["macro_F1_mean"])
    for name in ("ranking_by_macro_F1.csv", "ranking_by_cost.csv"):
        rank = pd.read_csv(report.out / name)
        assert "t-nan" not in " ".join(rank["experiments"]) and len(rank) == 3
        assert "failed_experiments" not in rank
        assert list(rank["rank"]) == [1, 2, 3]
    by_f1 = pd.read_csv(report.out / "ranking_by_macro_F1.csv")["macro_F1_mean"]
    assert list(by_f1) == sorted(by_f1, reverse=True)
    by_cost = pd.read_csv(report.out / "ranking_by_cost.csv")["time_per_epoch_s"]
    assert list(by_cost) == sorted(by_cost)


def test_pass_wnf_on_real_rows_follows_the_numbers(report):
    df = pd.read_csv(report.out / "results.csv").set_index("config_id")
    base = df[df["family"] == "TF-IDF+LR"]
    sdpa_id = df[(df["experiments"] == " ".join(SDPA_FT))].index[0]
    sdpa = df.loc[sdpa_id]
    gain = (sdpa["macro_F1_mean"] - base["macro_F1_mean"].iloc[0]) * 100
    assert sdpa["ref_baseline"] == base.index[0]
    assert sdpa["wnf_vs_baseline"] == ("PASS" if gain >= 5 else "FAIL")
    assert sdpa["wnf_seeds"] == "FAIL"  # 2 seeds < 3
    assert sdpa["wnf_spread"] == ("PASS" if sdpa["macro_F1_spread"] * 100 <= 1 else "FAIL")
    assert sdpa["PASS_WNF"] == "FAIL"
    if OTHER == "performer_favor":
        other = df[df["experiments"] == " ".join(OTHER_FT)].iloc[0]
        assert other["ref_exact"] == sdpa_id
        drop = (sdpa["macro_F1_mean"] - other["macro_F1_mean"]) * 100
        assert other["wnf_vs_exact"] == ("PASS" if drop <= 1 else "FAIL")
        fast = other["time_per_epoch_s"] <= 0.8 * sdpa["time_per_epoch_s"]
        small = other["peak_rss_MiB"] <= 0.7 * sdpa["peak_rss_MiB"]
        assert other["wnf_cost"] == ("PASS" if fast or small else "FAIL")


def test_markdown_table_html_and_plots(report):
    md = (report.out / "comparison.md").read_text()
    assert md.startswith(f"# SDPA vs {'Performer vs ' if OTHER == 'performer_favor' else ''}TF-IDF+LR\n")  # the families present
    assert "Device: cpu" in md and "batch: 32" in md and "seq_len: 64" in md
    assert "| SDPA | sdpa |" in md and "| TF-IDF+LR | tfidf_logreg |" in md and "| t-nan | sdpa |" in md
    if OTHER == "performer_favor":
        assert "| Performer | performer_favor |" in md
    page = (report.out / "report.html").read_text()
    parser = _Imgs()
    parser.feed(page)
    import base64

    for stem in ("quality_vs_time_per_epoch", "quality_vs_memory"):
        png = (report.out / f"{stem}.png").read_bytes()
        assert png.startswith(b"\x89PNG")
        assert base64.b64decode(parser.imgs[stem].split(",", 1)[1]) == png
        assert f"{stem}.png" in parser.captions
    assert parser.external == [] and "Comparison group" in page and "t-nan" in page


def test_reproduce_report_only_recreates_results_csv(report):
    before = (report.out / "results.csv").read_text()
    (report.out / "results.csv").unlink()
    res = subprocess.run(["bash", str(report.out / "reproduce.sh"), "--report-only"], env={**ENV, "EFFX": " ".join(EFFX)},
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (report.out / "results.csv").read_text() == before


@pytest.mark.slow
def test_reproduce_sh_retrains_and_recreates_results_csv(root, tmp_path):
    """Full reproduction on a subset (one pretraining, one finetune, its baseline): same results.csv
    apart from the measured cost columns."""
    from effx.eval import build_report

    sub = tmp_path / "sub"
    base = next(b for b in (root / "baseline").iterdir() if "like: t-s0-sdpa" in (b / "config.yaml").read_text())
    for src in (root / "pretrain" / "t-pre-sdpa", root / "finetune" / SDPA_FT[0], base):
        shutil.copytree(src, sub / src.parent.name / src.name)
    rep = build_report(sub, tmp_path / "rep")
    res = subprocess.run(["bash", str(rep.out / "reproduce.sh")], capture_output=True, text=True, timeout=600,
                         env={**ENV, "EFFX": " ".join(EFFX), "REPRO_ROOT": str(tmp_path / "again")})
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    old = pd.read_csv(rep.out / "results.csv")
    new = pd.read_csv(tmp_path / "again" / "report" / "results.csv")
    measured = ["time_per_epoch_s", "time_per_step_s", "train_tokens_per_s", "infer_tokens_per_s", "peak_rss_MiB",
                "max_gpu_mem_MiB", "time_to_target_s", "pretrain_wall_s", "time_to_target_total_s"]
    pd.testing.assert_frame_equal(old.drop(columns=measured), new.drop(columns=measured))
    assert (tmp_path / "again" / "finetune" / SDPA_FT[0] / "ckpt_best.pt").is_file()
