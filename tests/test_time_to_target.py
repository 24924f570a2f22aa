"""Time-to-accuracy in ``effx eval -compare``: the target (TF-IDF+LR validation macro-F1 minus a margin),
the first validation crossing per seed, pretraining wall time added, and how a resumed run's wall time
is read - on hand-made run folders, the resumed one written by the real metrics writer."""
from __future__ import annotations

import json
import math
import sys
import types
from pathlib import Path

import pandas as pd
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from test_report_fabricated import make_run  # noqa: E402

from effx.eval import build_report  # noqa: E402
from effx.eval.runs import load_run  # noqa: E402
from effx.eval.time_to_target import finetune_time, pretrain_wall  # noqa: E402


def write_curve(folder: Path, curve: list[tuple[int, float, float]]) -> None:
    """metrics.csv with one train and one validation row per ``(step, macro_F1, wall_s)``."""
    rows = []
    for step, f1, wall in curve:
        rows += [{"step": step, "epoch": 1, "split": "train", "loss": 0.5, "tokens_per_s": 100.0, "wall_s": wall - 1},
                 {"step": step, "epoch": 1, "split": "validation", "loss": 0.5, "macro_F1": f1, "accuracy": f1,
                  "time_per_epoch_s": 10.0, "peak_mem_MiB": 1000.0, "mem_kind": "cuda_max_allocated", "wall_s": wall}]
    pd.DataFrame(rows).to_csv(folder / "metrics.csv", index=False)


def finetune(root: Path, name: str, seed: int, curve, pretrain: str | None = "P", lr: float = 5e-4) -> Path:
    d = make_run(root, name, seed=seed, f1=curve[-1][1], lr=lr)
    write_curve(d, curve)
    cfg = yaml.safe_load((d / "resolved_config.yaml").read_text())
    cfg["pretrain"] = {"name": pretrain, "path": str(root / "pretrain" / pretrain) if pretrain else None}
    (d / "resolved_config.yaml").write_text(yaml.safe_dump(cfg))
    res = {"metrics": {"accuracy": 0.5, "macro_F1": 0.5}}  # test scores play no part in the target
    ev = json.loads((d / "eval.json").read_text())
    (d / "eval.json").write_text(json.dumps({**ev, "results": {**ev["results"], "test": res}}))
    return d


def baseline(root: Path, name: str, seed: int, val_f1: float, fit_s: float, test_f1: float = 0.5) -> Path:
    """A baseline folder as ``effx baseline`` writes it: fit time on the train row, validation and test scores."""
    d = make_run(root, name, seed=seed, kind="baseline", f1=val_f1, mem_kind="cpu_rss", device={"type": "cpu", "name": "x86"})
    rows = [{"step": 1, "epoch": 1, "split": "train", "loss": 0.3, "time_per_epoch_s": fit_s, "peak_mem_MiB": 300.0,
             "mem_kind": "cpu_rss"},
            {"step": 1, "epoch": 1, "split": "validation", "loss": 0.4, "macro_F1": val_f1, "accuracy": val_f1}]
    pd.DataFrame(rows).to_csv(d / "metrics.csv", index=False)
    res = {s: {"metrics": {"accuracy": f, "macro_F1": f}} for s, f in (("validation", val_f1), ("test", test_f1))}
    (d / "eval.json").write_text(json.dumps({"experiment": name, "results": res}))
    return d


def pretraining(root: Path, name: str, walls: list[float]) -> None:
    d = root / "pretrain" / name
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump({"seed": 0}))
    pd.DataFrame({"step": range(1, len(walls) + 1), "split": "train", "loss": 5.0, "wall_s": walls}).to_csv(
        d / "metrics.csv", index=False)


@pytest.fixture()
def runs(tmp_path) -> Path:
    r = tmp_path / "runs"
    for seed, f1, fit in ((0, 0.78, 2.0), (1, 0.84, 4.0), (2, 0.84, 6.0)):  # mean 0.82 -> target 0.80
        baseline(r, f"tfidf-s{seed}", seed, f1, fit)
    pretraining(r, "P", [50.0, 120.0, 119.5])  # the largest wall_s is the pretraining's total
    finetune(r, "sdpa-s0", 0, [(100, 0.70, 10.0), (200, 0.81, 20.0), (300, 0.79, 30.0), (400, 0.90, 40.0)])
    finetune(r, "sdpa-s1", 1, [(100, 0.79, 15.0), (200, 0.80, 60.0), (300, 0.85, 90.0)])  # 0.80 counts (inclusive)
    finetune(r, "sdpa-s2", 2, [(100, 0.75, 12.0), (200, 0.79, 24.0)])  # never reaches 0.80
    finetune(r, "scratch-s0", 0, [(100, 0.85, 33.0)], pretrain=None, lr=1e-3)
    finetune(r, "orphan-s0", 0, [(100, 0.85, 44.0)], pretrain="gone", lr=2e-3)  # pretrain/gone is not there
    return r


def _row(df: pd.DataFrame, exp: str) -> pd.Series:
    return df[df["experiments"].fillna("").str.split().map(lambda names: exp in names)].iloc[0]


def test_target_first_crossing_and_reached_count(runs, tmp_path):
    df = pd.read_csv(build_report(runs, tmp_path / "rep", split="test").out / "results.csv")
    assert list(df.columns[-5:]) == ["target_macro_F1", "time_to_target_s", "pretrain_wall_s",
                                     "time_to_target_total_s", "target_reached"]
    assert df["target_macro_F1"].tolist() == pytest.approx([0.80] * len(df))  # validation mean - 2 pp, not test
    sdpa = _row(df, "sdpa-s0")
    assert sdpa["target_reached"] == "2/3"  # s2 peaks at 0.79
    assert sdpa["time_to_target_s"] == pytest.approx((20.0 + 60.0) / 2)  # first crossing, not best / last row
    assert sdpa["pretrain_wall_s"] == pytest.approx(120.0)
    assert sdpa["time_to_target_total_s"] == pytest.approx((20.0 + 60.0) / 2 + 120.0)


def test_pretraining_scratch_missing_and_baseline_rows(runs, tmp_path):
    df = pd.read_csv(build_report(runs, tmp_path / "rep").out / "results.csv")
    scratch = _row(df, "scratch-s0")
    assert (scratch["pretrain_wall_s"], scratch["time_to_target_total_s"], scratch["target_reached"]) == (0.0, 33.0, "1/1")
    orphan = _row(df, "orphan-s0")
    assert orphan["time_to_target_s"] == 44.0 and orphan["target_reached"] == "1/1"
    assert math.isnan(orphan["pretrain_wall_s"]) and math.isnan(orphan["time_to_target_total_s"])
    base = _row(df, "tfidf-s0")
    assert base["target_reached"] == "2/3"  # 0.78 < 0.80
    assert base["time_to_target_s"] == pytest.approx(5.0) and base["time_to_target_total_s"] == pytest.approx(5.0)
    assert base["pretrain_wall_s"] == 0.0


def test_margin_from_the_thresholds_file_and_the_tables(runs, tmp_path):
    th = tmp_path / "th.yaml"
    th.write_text("quality:\n  time_to_target_drop_pp: 5.0\n")
    rep = build_report(runs, tmp_path / "rep", thresholds=th)
    sdpa = _row(rep.results, "sdpa-s0")
    assert sdpa["target_macro_F1"] == pytest.approx(0.77) and sdpa["target_reached"] == "3/3"
    assert sdpa["time_to_target_s"] == pytest.approx((20.0 + 15.0 + 24.0) / 3)
    md = (rep.out / "comparison.md").read_text()
    assert "| time to target [s] | reached |" in md
    assert f"| {(20.0 + 15.0 + 24.0) / 3 + 120.0:.1f} | 3/3 |" in md
    assert "validation macro_F1 ≥ TF-IDF+LR − 5 pp = 0.7700" in md and "pretraining included" in md
    page = (rep.out / "report.html").read_text()
    head = page.split('<table class="headline">', 1)[1].split("</table>", 1)[0]
    assert "<th>time to target [s]</th><th>reached</th>" in head and ">3/3</td>" in head
    assert "TF-IDF+LR − 5 pp = 0.7700" in page.split('<table class="headline">', 1)[1].split("<h2>", 1)[0]


def test_no_baseline_means_no_target(tmp_path):
    r = tmp_path / "runs"
    pretraining(r, "P", [10.0])
    finetune(r, "sdpa-s0", 0, [(100, 0.9, 5.0)])
    rep = build_report(r, tmp_path / "rep")
    df = pd.read_csv(rep.out / "results.csv")
    row = df.iloc[0]
    for col in ("target_macro_F1", "time_to_target_s", "time_to_target_total_s", "target_reached"):
        assert pd.isna(row[col]), col
    assert row["pretrain_wall_s"] == 10.0  # known without a target
    assert "| 1,000.0 | – | – |" in (rep.out / "comparison.md").read_text()  # memory, then no time, no count


def test_resumed_run_counts_the_wall_time_of_every_attempt(tmp_path, monkeypatch):
    """Written by the real metrics writer: the second attempt continues wall_s from the rows it keeps, so
    the crossing row's wall_s is the total (not the time since the restart, and not counted twice)."""
    from effx.train import runfiles

    clock = types.SimpleNamespace(now=1000.0)
    monkeypatch.setattr(runfiles, "time", types.SimpleNamespace(time=lambda: clock.now))
    exp = finetune(tmp_path / "runs", "ft", 0, [(1, 0.1, 1.0)], pretrain=None)
    (exp / "metrics.csv").unlink()

    def attempt(start: float, resume_step: int | None, rows: list[tuple[float, int, float]]) -> None:
        clock.now = start
        files = runfiles.RunFiles(exp, metric_names=["macro_F1"])
        files.open(resume_step)
        for now, step, f1 in rows:
            clock.now = now
            files.metric({"step": step, "epoch": 1, "split": "validation", "macro_F1": f1})
        files.close()

    attempt(1000.0, None, [(1010.0, 100, 0.70), (1020.0, 200, 0.75), (1030.0, 300, 0.78)])  # killed after 300
    attempt(5000.0, 200, [(5005.0, 300, 0.79), (5015.0, 400, 0.85)])  # resumed from the step-200 checkpoint
    run = load_run(exp)
    assert finetune_time(run, 0.80) == pytest.approx(20.0 + 15.0)
    assert math.isnan(finetune_time(run, 0.86))  # never reached
    assert pretrain_wall(run) == 0.0
