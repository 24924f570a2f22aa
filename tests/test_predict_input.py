"""Reading prediction input: CSV / JSONL / plain text, empty lines and non-UTF-8 bytes."""
from __future__ import annotations

import pytest

from effx.errors import EffxError
from effx.eval.predict import PredictSummary, decode, read_texts


def test_plain_text_keeps_empty_lines_and_counts_invalid_bytes(tmp_path):
    p = tmp_path / "in.txt"
    p.write_bytes(b"first\r\n\nbad \xff\xfe bytes\n  \nlast\n")
    texts, bad = read_texts(p)
    assert texts == ["first", "", "bad \ufffd\ufffd bytes", "  ", "last"]
    assert bad == 1


def test_decode_counts_lines_not_bytes():
    text, bad = decode(b"\xffa\xff\nok\n\xc3\n")
    assert bad == 2 and text.count("\ufffd") == 3


def test_csv_and_jsonl(tmp_path):
    c = tmp_path / "in.csv"
    c.write_bytes(b'id,body\n1,"hello, world"\n2,\n3,caf\xe9\n')
    texts, bad = read_texts(c, text_field="body")
    assert texts == ["hello, world", "", "caf\ufffd"] and bad == 1
    j = tmp_path / "in.jsonl"
    j.write_text('{"text": "a"}\n\n{"text": null}\n{"text": "b"}\n', encoding="utf-8")
    assert read_texts(j) == (["a", "", "", "b"], 0)


@pytest.mark.parametrize("name, body, field, match", [
    ("in.csv", "id,body\n1,x\n", "text", "no column 'text'.*--text-field"),
    ("in.jsonl", '{"text": "a"}\n{oops\n', "text", "line 2: invalid JSON"),
    ("in.jsonl", '{"body": "a"}\n', "text", "line 1: no field 'text'"),
])
def test_bad_input_is_one_line_error(tmp_path, name, body, field, match):
    p = tmp_path / name
    p.write_text(body, encoding="utf-8")
    with pytest.raises(EffxError, match=match) as exc:
        read_texts(p, text_field=field)
    assert "\n" not in str(exc.value)


def test_missing_file(tmp_path):
    with pytest.raises(EffxError, match="cannot read --input"):
        read_texts(tmp_path / "nope.txt")


def test_summary_warnings_name_every_case(tmp_path):
    w = PredictSummary(5, 1, 2, 3, tmp_path / "o.csv").warnings()
    assert len(w) == 3 and "3 line(s)" in w[0] and "1 empty" in w[1] and "2 text(s)" in w[2]
    assert PredictSummary(5, 0, 0, 0, tmp_path / "o.csv").warnings() == []
