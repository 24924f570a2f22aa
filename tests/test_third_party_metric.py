"""A third-party metric, installed as a distribution with an entry point (a throwaway folder on
``sys.path``, never the running environment), with its config from YAML, reaches every place a
metric is reported: ``metrics.csv``, W&B, ``events.jsonl`` / ``eval.json`` and the comparison report."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from test_train_helpers import SCRATCH_ARCH, ft_sets, make_data, set_env  # noqa: E402

import effx.plugins  # noqa: E402
from effx_cli.main import cli  # noqa: E402

OFFSET = 5.0
MODULE = '''
import attrs
import numpy as np

import effx


@attrs.frozen
class ShiftConfig:
    offset: float = 0.0


class ShiftedAccuracy(effx.Metric):
    """Accuracy plus a configured offset: its value shows that the YAML config reached it."""

    name = "shifted_accuracy"
    Config = ShiftConfig

    def __call__(self, y_true, y_prob):
        return float((np.asarray(y_prob).argmax(1) == np.asarray(y_true)).mean() + self.config.offset)


@effx.hookimpl
def effx_metric_types():
    return [ShiftedAccuracy]
'''


def install_metric_dist(site: Path) -> None:
    """What ``pip install --target site`` leaves behind: the module and its dist-info with the entry point."""
    info = site / "effx_toy_metric-0.0.1.dist-info"
    info.mkdir(parents=True)
    (site / "effx_toy_metric.py").write_text(MODULE, encoding="utf-8")
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: effx-toy-metric\nVersion: 0.0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[effx]\ntoy_metric = effx_toy_metric\n", encoding="utf-8")


@pytest.fixture()
def env(tmp_path, monkeypatch):
    set_env(monkeypatch)
    monkeypatch.setenv("EFFX_LOAD_PLUGINS", "sdpa,positional,toy_metric")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    install_metric_dist(tmp_path / "site")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(effx.plugins, "_DEFAULT", None)  # the next load_registry() sees the new dist
    monkeypatch.chdir(tmp_path)
    return tmp_path, make_data(tmp_path / "data", n_train=64, n_val=32)


def invoke(*args: str):
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result


def sets(items: dict | list) -> list[str]:
    items = [f"{k}={v}" for k, v in items.items()] if isinstance(items, dict) else items
    return [x for item in items for x in ("--set", item)]


def record_wandb(monkeypatch) -> list[dict]:
    """Record what the trainer hands to W&B (the W&B run itself still runs, offline)."""
    from effx.train.wandb_log import WandbLogger

    logged: list[dict] = []
    real = WandbLogger.log

    def log(self, data: dict, step: int) -> None:
        logged.append(dict(data))
        real(self, data, step)

    monkeypatch.setattr(WandbLogger, "log", log)
    return logged


def offline_run_file(exp: Path) -> bytes:
    files = sorted(exp.glob("wandb/offline-run-*/run-*.wandb"))
    assert files, f"no offline W&B run under {exp / 'wandb'}"
    return files[-1].read_bytes()


@pytest.mark.slow
def test_third_party_metric_reaches_training_logs_wandb_eval_and_report(env, monkeypatch):
    root, data = env
    logged = record_wandb(monkeypatch)
    assert "shifted_accuracy" in effx.load_registry().names("metric")
    invoke("init", "-exp", "m", "--finetune", "--no-pretrain",
           *sets(ft_sets(data, **{"logging.wandb.mode": "offline"})), *sets(SCRATCH_ARCH))
    path = root / "finetune" / "m" / "config.yaml"
    cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    cfg["train"]["metrics"] = {"shifted_accuracy": {"offset": OFFSET}}  # the metric's own config, from YAML
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    invoke("finetune", "-exp", "m")
    exp = root / "finetune" / "m"

    with open(exp / "metrics.csv", newline="", encoding="utf-8") as fh:
        val = [r for r in csv.DictReader(fh) if r["split"] == "validation"]
    assert val and all(float(r["shifted_accuracy"]) == pytest.approx(float(r["accuracy"]) + OFFSET, abs=1e-5)
                       for r in val)

    val_logs = [d for d in logged if "val/accuracy" in d]
    assert len(val_logs) == len(val)
    assert all(d["val/shifted_accuracy"] == pytest.approx(d["val/accuracy"] + OFFSET) for d in val_logs)
    assert b"val/shifted_accuracy" in offline_run_file(exp)  # and W&B wrote it into its offline run

    events = [json.loads(line) for line in (exp / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    done = next(e for e in events if e["event"] == "finished")["validation"]
    assert done["shifted_accuracy"] == pytest.approx(done["accuracy"] + OFFSET)

    invoke("eval", "-exp", "m", "-split", "validation")
    scored = json.loads((exp / "eval.json").read_text(encoding="utf-8"))["results"]["validation"]["metrics"]
    assert scored["shifted_accuracy"] == pytest.approx(scored["accuracy"] + OFFSET)

    invoke("eval", "-compare", str(root), "--out", str(root / "report"))
    results = pd.read_csv(root / "report" / "results.csv")
    row = results[results["variant"] != "tfidf_logreg"].iloc[0]
    assert row["shifted_accuracy_mean"] == pytest.approx(row["accuracy_mean"] + OFFSET)


def test_a_bad_metric_section_is_a_one_line_error(env):
    root, data = env
    invoke("init", "-exp", "b", "--finetune", "--no-pretrain", *sets(ft_sets(data)), *sets(SCRATCH_ARCH))
    path = root / "finetune" / "b" / "config.yaml"
    cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    for section, needle in (({"shifted_accuracy": {"ofset": 1.0}}, "train.metrics.shifted_accuracy: extra fields "
                                                                     "found (ofset); did you mean 'offset'?"),
                            ({"no_such_metric": {}}, "train.metrics: unknown metric 'no_such_metric'")):
        cfg["train"]["metrics"] = section
        path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
        result = CliRunner().invoke(cli, ["finetune", "-exp", "b"])
        out = result.output.strip()
        assert result.exit_code != 0 and needle in out and "\n" not in out, out
