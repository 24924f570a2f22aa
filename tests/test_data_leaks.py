"""Validation and test data stay apart from the training data: the template's sample files do not
follow a user's own training file, overlap is counted (warning) or refused (error), carved
validation never shares a text with training, and the shipped sample is never mixed with user data."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from test_train_helpers import SAMPLE, make_data, set_env, tiny_sets  # noqa: E402

from effx.config import DataConfig  # noqa: E402
from effx.data import load_splits  # noqa: E402
from effx.errors import EffxError  # noqa: E402
from effx.train import experiment_dir, init_experiment, run_pretrain  # noqa: E402


@pytest.fixture()
def env(tmp_path, monkeypatch):
    set_env(monkeypatch)
    return tmp_path, make_data(tmp_path / "data")


def write_csv(path: Path, texts: list[str]) -> str:
    pd.DataFrame({"text": texts, "label": [i % 2 for i in range(len(texts))]}).to_csv(path, index=False)
    return str(path)


def test_init_with_own_train_drops_the_templates_sample_validation_and_test(env):
    root, data = env
    for finetune in (False, True):
        init_experiment("e", root=root, finetune=finetune, force=True, sets=[f"data.train={data['train']}"])
        cfg = yaml.safe_load((experiment_dir("finetune" if finetune else "pretrain", "e", root) / "config.yaml").read_text())
        assert cfg["data"]["train"] == data["train"]
        assert cfg["data"]["validation"] is None and cfg["data"]["test"] is None  # was data/sample/agnews_*.csv
    init_experiment("k", root=root, sets=[f"data.train={data['train']}", f"data.test={data['validation']}"])
    cfg = yaml.safe_load((experiment_dir("pretrain", "k", root) / "config.yaml").read_text())
    assert cfg["data"]["test"] == data["validation"] and cfg["data"]["validation"] is None
    init_experiment("d", root=root)  # the template alone keeps its own, consistent sample files
    cfg = yaml.safe_load((experiment_dir("pretrain", "d", root) / "config.yaml").read_text())
    assert cfg["data"]["validation"].endswith("agnews_validation.csv")


def test_shipped_sample_validation_next_to_own_training_data_is_refused(env):
    root, data = env
    init_experiment("p", root=root, sets=tiny_sets(data, **{"data.validation": str(SAMPLE / "agnews_validation.csv")}))
    with pytest.raises(EffxError, match=r"data.validation is effx's shipped sample \(agnews_validation.csv\) but "
                                        r"data.train is your own data"):
        run_pretrain("p", root=root)


def test_overlap_above_the_limit_is_an_error_with_the_count(tmp_path):
    train = write_csv(tmp_path / "train.csv", [f"text number {i}" for i in range(100)])
    val = write_csv(tmp_path / "val.csv", [f"Text  number {i} " for i in range(0, 60, 3)] + [f"new {i}" for i in range(20)])
    with pytest.raises(EffxError) as exc:
        load_splits(DataConfig(train=train, validation=val), 0, cache_dir=str(tmp_path / "hf"))
    assert "data.validation: 20 of 40 rows (50.0%) also occur in the training data" in str(exc.value)
    assert "data.max_overlap_fraction" in str(exc.value) and "\n" not in str(exc.value)
    s = load_splits(DataConfig(train=train, validation=val, max_overlap_fraction=0.6), 0, cache_dir=str(tmp_path / "hf"))
    assert s.overlap == {"validation": 20} and "20 of 40 rows" in s.warnings[0]


def test_small_overlap_is_a_warning_in_the_run(env):
    root, data = env
    train = pd.read_csv(data["train"])
    val = pd.read_csv(data["validation"])
    val.loc[0, "text"] = train.loc[5, "text"].upper()  # one of 48 validation rows is a training text
    val.to_csv(data["validation"], index=False)
    init_experiment("p", root=root, sets=tiny_sets(data, **{"train.max_steps": 1}))
    run_pretrain("p", root=root)
    exp = experiment_dir("pretrain", "p", root)
    events = [json.loads(x) for x in (exp / "events.jsonl").read_text().splitlines()]
    assert next(e for e in events if e["event"] == "data")["overlap_with_train"] == {"validation": 1}
    assert "data.validation: 1 of 48 rows also occur in the training data" in (exp / "logs" / "train.log").read_text()


def test_carved_validation_holds_duplicates_out_together(tmp_path):
    texts = [f"row {i % 50}" for i in range(200)]  # every text four times
    s = load_splits(DataConfig(train=write_csv(tmp_path / "t.csv", texts)), 0, cache_dir=str(tmp_path / "hf"))
    assert not set(s.train["text"]) & set(s.validation["text"])
    assert len(s.validation) % 4 == 0 and len(s.train) + len(s.validation) == 200 and s.overlap == {"validation": 0}


def test_eval_split_overlap_is_reported(tmp_path):
    from effx.config import ExperimentConfig
    from effx.eval.evaluate import split_records

    train = write_csv(tmp_path / "train.csv", [f"text number {i}" for i in range(100)])
    test = write_csv(tmp_path / "test.csv", ["text number 7"] + [f"other {i}" for i in range(39)])
    cfg = ExperimentConfig(data=DataConfig(train=train, test=test))
    texts, labels, warnings = split_records(cfg, tmp_path, "test", None)
    assert len(texts) == 40 and warnings == [
        "data.test: 1 of 40 rows also occur in the training data (same text up to case and spacing); "
        "they are scored on text the model trained on"]
