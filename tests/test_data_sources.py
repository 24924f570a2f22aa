"""Several files per split: lists of paths, globs and ``{path, text_field, label_field, format}``
entries in any supported format, concatenated in order; one-line errors naming the entry."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from test_train_helpers import make_data, set_env, tiny_sets  # noqa: E402

from effx.config import DataConfig, DataFile, structure  # noqa: E402
from effx.data import load_splits  # noqa: E402
from effx.errors import ConfigError, EffxError  # noqa: E402


@pytest.fixture()
def files(tmp_path):
    d = tmp_path / "in"
    (d / "shards").mkdir(parents=True)
    pd.DataFrame({"text": [f"csv {i}" for i in range(4)], "label": [0, 1, 0, 1]}).to_csv(d / "a.csv", index=False)
    (d / "b.jsonl").write_text("".join(json.dumps({"body": f"json {i}", "y": i % 2}) + "\n" for i in range(3)))
    (d / "c.txt").write_text("plain one\n\nplain two\nplain three\n")
    for k in range(2):
        pd.DataFrame({"text": [f"shard{k} {i}" for i in range(2)], "label": [1, 0]}).to_parquet(
            d / "shards" / f"s{k}.parquet", index=False)
    return d


def load(tmp_path, need_labels=False, **kw):
    kw.setdefault("max_overlap_fraction", 1.0)  # validation reuses a training file here
    cfg = structure(kw, DataConfig, root="data")
    return load_splits(cfg, 0, need_labels=need_labels, cache_dir=str(tmp_path / "hf"))


def test_list_of_formats_globs_and_per_file_fields_for_pretraining(tmp_path, files):
    train = [str(files / "a.csv"), {"path": str(files / "b.jsonl"), "text_field": "body", "label_field": "y"},
             str(files / "c.txt"), str(files / "shards" / "*.parquet")]
    s = load(tmp_path, train=train, validation=str(files / "a.csv"))
    assert s.train["text"] == ([f"csv {i}" for i in range(4)] + [f"json {i}" for i in range(3)]
                               + ["plain one", "plain two", "plain three"] + ["shard0 0", "shard0 1", "shard1 0", "shard1 1"])
    assert s.train["label"] == [0, 1, 0, 1, 0, 1, 0, -1, -1, -1, 1, 0, 1, 0]  # the text file is unlabelled


def test_list_for_classification_maps_labels_across_files(tmp_path, files):
    train = [str(files / "a.csv"), {"path": str(files / "b.jsonl"), "text_field": "body", "label_field": "y"}]
    s = load(tmp_path, need_labels=True, train=train, validation=str(files / "a.csv"))
    assert len(s.train) == 7 and s.train["label"] == [0, 1, 0, 1, 0, 1, 0] and s.label_names == ["0", "1"]


@pytest.mark.parametrize("train,needles", [
    (["{d}/a.csv", "{d}/nothing/*.csv"], ["data.train[1]: no file matches", "nothing/*.csv"]),
    (["{d}/a.csv", "{d}/b.jsonl"], ["data.train[1] (b.jsonl): column 'text' not found (available: body, y)",
                                    "text_field of that entry"]),
    (["{d}/a.csv", "{d}/c.txt"], ["data.train[1] (c.txt): column 'label' not found"]),  # classification needs labels
    (["{d}/missing.csv"], ["data.train[0]: file", "missing.csv not found"]),
])
def test_bad_entries_are_one_line_errors_naming_the_entry(tmp_path, files, train, needles):
    with pytest.raises(EffxError) as exc:
        load(tmp_path, need_labels=True, train=[t.format(d=files) for t in train], validation=str(files / "a.csv"))
    msg = str(exc.value)
    assert "\n" not in msg and all(n in msg for n in needles), msg


def test_config_shape_errors_and_round_trip():
    cfg = structure({"train": ["x.csv", {"path": "y.txt", "text_field": "t"}]}, DataConfig)
    assert cfg.train == ["x.csv", DataFile(path="y.txt", text_field="t")]
    for bad, needle in (({"train": []}, "non-empty list"), ({"train": [{"file": "x"}]}, "data.train: [0]"),
                        ({"train": [{"path": "x", "format": "xls"}]}, "format: expected one of")):
        with pytest.raises(ConfigError, match=needle.replace("[", r"\[")):
            structure(bad, DataConfig, root="data")


def test_pretraining_on_a_list_of_files(tmp_path, monkeypatch, files):
    from effx.train import experiment_dir, init_experiment, run_pretrain

    set_env(monkeypatch)
    data = make_data(tmp_path / "data", n_train=48, n_val=16)
    corpus = json.dumps([data["train"], {"path": str(files / "c.txt")}])
    init_experiment("pre", root=tmp_path, sets=tiny_sets(data, **{"train.max_steps": 2, "data.train": corpus}))
    cfg = yaml.safe_load((experiment_dir("pretrain", "pre", tmp_path) / "config.yaml").read_text())
    assert cfg["data"]["train"][1] == {"path": str(files / "c.txt"), "text_field": None, "label_field": None,
                                       "format": None}
    run_pretrain("pre", root=tmp_path)
    events = [json.loads(x) for x in (experiment_dir("pretrain", "pre", tmp_path) / "events.jsonl").read_text().splitlines()]
    assert next(e for e in events if e["event"] == "data")["train_examples"] == 48 + 3
