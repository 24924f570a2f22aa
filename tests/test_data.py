"""Loading records: every local format, label mapping, splits, and one-line errors for bad input."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest

from effx.config import DataConfig
from effx.data import load_splits, read_file
from effx.errors import EffxError
from effx.resources import SAMPLE_DIR

SAMPLE = SAMPLE_DIR
ROWS = [
    {"review": "good film", "sentiment": "pos"},
    {"review": "bad film", "sentiment": "neg"},
    {"review": "great acting", "sentiment": "pos"},
    {"review": "dull plot", "sentiment": "neg"},
    {"review": "fine", "sentiment": "meh"},
]


def write(path: Path, rows: list[dict]) -> Path:
    df = pd.DataFrame(rows)
    suffix = path.suffix
    if suffix == ".csv":
        df.to_csv(path, index=False)
    elif suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif suffix == ".json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    elif suffix == ".parquet":
        df.to_parquet(path, index=False)
    return path


def load(tmp_path: Path, seed: int = 0, need_labels: bool = True, **kw):
    kw.setdefault("max_overlap_fraction", 1.0)  # these tests read one small file as several splits
    return load_splits(DataConfig(**kw), seed, need_labels=need_labels, cache_dir=str(tmp_path / "hf"))


@pytest.mark.parametrize("suffix", [".csv", ".json", ".jsonl", ".parquet"])
def test_every_format_reads_fields_and_maps_string_labels(tmp_path, suffix):
    train = write(tmp_path / f"train{suffix}", ROWS)
    val = write(tmp_path / f"val{suffix}", [ROWS[1], ROWS[0]])
    s = load(tmp_path, train=str(train), validation=str(val), text_field="review", label_field="sentiment")
    assert s.label_names == ["meh", "neg", "pos"]  # sorted, so stable across runs
    assert s.train["text"] == [r["review"] for r in ROWS]
    assert s.train["label"] == [2, 1, 2, 1, 0]
    assert s.validation["label"] == [1, 2]
    assert s.test is None
    assert s.train.features["label"].dtype == "int64" and s.train.column_names == ["text", "label"]


def test_format_override_and_plain_text_one_record_per_line(tmp_path):
    p = tmp_path / "corpus.dat"
    p.write_text("first line\n\nsecond line\n  \nthird\n", encoding="utf-8")
    with pytest.raises(EffxError, match=r"cannot tell the format .*\.dat.*data\.format"):
        load(tmp_path, train=str(p), need_labels=False)
    s = load(tmp_path, train=str(p), format="text", need_labels=False, validation=str(p))
    assert s.train["text"] == ["first line", "second line", "third"]  # blank lines are not records
    assert s.train["label"] == [-1, -1, -1] and s.label_names is None


def test_int_labels_keep_ids_and_take_names_from_label_name_column(tmp_path):
    s = load(tmp_path, train=str(SAMPLE / "agnews_train.csv"), validation=str(SAMPLE / "agnews_validation.csv"),
             test=str(SAMPLE / "agnews_test.csv"))
    assert s.label_names == ["World", "Sports", "Business", "Sci/Tech"] and s.num_classes == 4
    assert (len(s.train), len(s.validation), len(s.test)) == (2000, 500, 500)
    raw = pd.read_csv(SAMPLE / "agnews_test.csv")
    assert s.test["label"] == raw["label"].tolist() and s.test["text"] == raw["text"].tolist()


def test_int_labels_without_names_are_named_by_id(tmp_path):
    rows = [{"text": f"t{i}", "label": i % 3} for i in range(9)]
    s = load(tmp_path, train=str(write(tmp_path / "a.jsonl", rows)))
    assert s.label_names == ["0", "1", "2"]


def test_given_label_names_fix_the_ids(tmp_path):
    train = write(tmp_path / "t.csv", ROWS)
    s = load_splits(DataConfig(train=str(train), validation=str(train), text_field="review", label_field="sentiment",
                               max_overlap_fraction=1.0),
                    0, label_names=["pos", "neg", "meh"], cache_dir=str(tmp_path / "hf"))
    assert s.train["label"] == [0, 1, 0, 1, 2]


def test_unknown_string_label_in_validation_is_an_error(tmp_path):
    train = write(tmp_path / "t.csv", ROWS)
    val = write(tmp_path / "v.csv", [{"review": "x", "sentiment": "angry"}])
    with pytest.raises(EffxError, match=r"data\.validation: labels \['angry'\] are not among"):
        load(tmp_path, train=str(train), validation=str(val), text_field="review", label_field="sentiment")


def test_validation_carved_from_train_with_seed(tmp_path):
    rows = [{"text": f"row {i}", "label": i % 2} for i in range(200)]
    cfg = dict(train=str(write(tmp_path / "t.parquet", rows)), validation_fraction=0.1)
    a, b, c = load(tmp_path, 1, **cfg), load(tmp_path, 1, **cfg), load(tmp_path, 2, **cfg)
    assert len(a.validation) == 20 and len(a.train) == 180
    assert a.validation["text"] == b.validation["text"] != c.validation["text"]
    assert set(a.train["text"]) | set(a.validation["text"]) == {r["text"] for r in rows}
    assert not set(a.train["text"]) & set(a.validation["text"])
    ids = [int(t.split()[1]) for t in a.train["text"]]
    assert ids == sorted(ids)  # file order kept


def test_max_samples_take_a_seeded_subset_not_the_head(tmp_path):
    rows = [{"text": f"row {i}", "label": int(i >= 100)} for i in range(200)]  # sorted by label, like IMDb
    p = str(write(tmp_path / "t.csv", rows))
    s = load(tmp_path, train=p, validation=p, test=p, max_train_samples=50, max_eval_samples=30)
    assert (len(s.train), len(s.validation), len(s.test)) == (50, 30, 30)
    assert 0 < sum(s.train["label"]) < 50  # both classes present


def test_need_labels_false_without_label_column_gives_minus_one(tmp_path):
    rows = [{"text": f"row {i}"} for i in range(10)]
    p = str(write(tmp_path / "t.jsonl", rows))
    s = load(tmp_path, train=p, validation=p, need_labels=False)
    assert s.train["label"] == [-1] * 10 and s.label_names is None
    with pytest.raises(EffxError, match=r"column 'label' not found \(available: text\)"):
        load(tmp_path, train=p, validation=p)


def test_missing_column_names_it_and_lists_available(tmp_path):
    p = str(write(tmp_path / "t.csv", ROWS))
    with pytest.raises(EffxError) as err:
        load(tmp_path, train=p, text_field="body", label_field="sentiment")
    msg = str(err.value)
    assert "column 'body' not found" in msg and "available: review, sentiment" in msg and "data.text_field" in msg
    assert "\n" not in msg


def test_missing_file_is_one_line_error(tmp_path):
    with pytest.raises(EffxError, match=r"data\.train: file .*nope\.csv not found"):
        load(tmp_path, train=str(tmp_path / "nope.csv"))


def test_non_utf8_bytes_name_the_line(tmp_path):
    p = tmp_path / "latin.csv"
    p.write_bytes("text,label\nok,0\ncaf\xe9,1\n".encode("latin-1"))
    with pytest.raises(EffxError, match=r"not UTF-8 text \(byte 0xe9 on line 3\); re-save the file as UTF-8"):
        load(tmp_path, train=str(p))


def test_empty_split_is_an_error(tmp_path):
    p = tmp_path / "empty.csv"
    p.write_text("text,label\n", encoding="utf-8")
    with pytest.raises(EffxError, match=r"data\.test: .*empty\.csv has no records"):
        load(tmp_path, train=str(SAMPLE / "agnews_validation.csv"), test=str(p))


def test_malformed_json_is_one_line_error(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"text": "a", "label": 0}\n{"text": "b", "lab\n', encoding="utf-8")
    with pytest.raises(EffxError, match=r"data\.train: could not read .*bad\.jsonl as jsonl"):
        read_file(p, cache_dir=str(tmp_path / "hf"))


def test_mixed_label_types_are_an_error(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text('{"text": "a", "label": 0}\n{"text": "b", "label": 1.5}\n', encoding="utf-8")
    with pytest.raises(EffxError, match=r"must hold integer ids or strings"):
        load(tmp_path, train=str(p), validation=str(p))


def test_hub_name_offline_fails_at_once_with_local_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(EffxError) as err:
        load(tmp_path, hub_name="ag_news")
    assert time.perf_counter() - start < 1.0
    msg = str(err.value)
    assert "data.hub_name 'ag_news'" in msg and "offline (HF_DATASETS_OFFLINE=1)" in msg
    assert "data.train" in msg and "data.validation" in msg and "local" in msg and "\n" not in msg


def test_hub_name_without_network_fails_before_loading(tmp_path, monkeypatch):
    import datasets

    import effx.data.loading as loading

    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def no_network(*a, **k):
        raise OSError("unreachable")

    def must_not_run(*a, **k):
        raise AssertionError("load_dataset must not be called offline")

    monkeypatch.setattr(loading.socket, "create_connection", no_network)
    monkeypatch.setattr(datasets, "load_dataset", must_not_run)
    with pytest.raises(EffxError, match=r"offline \(huggingface\.co cannot be reached\); set data\.train"):
        load(tmp_path, hub_name="imdb")


def test_no_data_and_both_sources_are_errors(tmp_path):
    with pytest.raises(EffxError, match="no training data configured"):
        load(tmp_path)
    with pytest.raises(EffxError, match="both data.train and data.hub_name"):
        load(tmp_path, train=str(SAMPLE / "agnews_train.csv"), hub_name="ag_news")


def test_too_small_train_for_validation_fraction(tmp_path):
    p = str(write(tmp_path / "t.csv", ROWS[:1]))
    with pytest.raises(EffxError, match="too few to hold out"):
        load(tmp_path, train=p, text_field="review", label_field="sentiment")


@pytest.mark.parametrize("content", ["", "text,label\n"])
def test_empty_train_file_is_an_error(tmp_path, content):
    p = tmp_path / "e.csv"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(EffxError, match=r"data\.train: .*e\.csv has no records"):
        load(tmp_path, train=str(p))


def test_tsv_is_tab_separated(tmp_path):
    p = tmp_path / "t.tsv"
    p.write_text("text\tlabel\nhello, world\t1\nbye\t0\n", encoding="utf-8")
    s = load(tmp_path, train=str(p), validation=str(p))
    assert s.train["text"] == ["hello, world", "bye"] and s.train["label"] == [1, 0]


def test_empty_label_cells_are_named(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("text,label\na,1\nb,\nc,0\n", encoding="utf-8")
    with pytest.raises(EffxError, match=r"data\.train: 1 rows have no 'label' value \(first at row 1\)"):
        load(tmp_path, train=str(p), validation=str(p))


def test_bad_validation_fraction_is_an_error(tmp_path):
    with pytest.raises(EffxError, match=r"validation_fraction: must be in \(0, 1\), got 1.0"):  # the field's bounds
        load(tmp_path, train=str(SAMPLE / "agnews_validation.csv"), validation_fraction=1.0)


def test_hanging_network_probe_is_bounded(tmp_path, monkeypatch):
    import effx.data.loading as loading

    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    def hang(*_a, **_k):
        time.sleep(3)
        raise OSError("timed out")  # like a real hung connect, after the probe gave up

    monkeypatch.setattr(loading.socket, "create_connection", hang)
    start = time.perf_counter()
    assert not loading._reachable("huggingface.co", 443, timeout=0.3)
    assert time.perf_counter() - start < 2.0
