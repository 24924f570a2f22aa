"""The one JSON and one CSV writer (effx.atomic) that training, evaluation and the bench share."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from effx.atomic import write_csv, write_json


def test_json_writer_stores_non_finite_as_null_and_other_values_as_text(tmp_path):
    path = write_json(tmp_path / "a" / "x.json", {"f": math.nan, "g": [1.5, math.inf], "p": Path("/x/y"), "n": 2})
    assert json.loads(path.read_text()) == {"f": None, "g": [1.5, None], "p": "/x/y", "n": 2}
    assert path.read_text().endswith("}\n") and not list(path.parent.glob(".*.tmp"))


def test_csv_writer_has_no_index_and_honours_the_float_format(tmp_path):
    df = pd.DataFrame({"a": [1, 2], "b": [1 / 3, 2.0]})
    assert write_csv(tmp_path / "d.csv", df).read_text() == "a,b\n1,0.3333333333333333\n2,2.0\n"
    assert write_csv(tmp_path / "e.csv", df, float_format="%.3g").read_text() == "a,b\n1,0.333\n2,2\n"
