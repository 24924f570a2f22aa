"""Draw the small real data sample shipped in ``core/data/sample/`` (package data ``effx/data/sample``) (run from anywhere).

    python core/data/sample/make_sample.py [--src ../shared/data] [--out core/data/sample]

* AG News train/validation: 2,000 + 500 rows drawn uniformly without replacement (numpy
  ``default_rng(SEED)``) from the rows of ``agnews/train_subset.parquet`` whose ``sources`` contain
  ``yxhong-tw`` -- the 11,997-row uniform random 10% of the official train split (see DATA.md).
* AG News test: 500 rows drawn the same way from the full official test split ``agnews/test.parquet``.
* IMDb unlabelled: 1,000 reviews drawn the same way from ``imdb/unsup.parquet``, one per line, for MLM.

Re-running the script reproduces the files byte for byte.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

SEED = 20261126
COLUMNS = ["text", "label", "label_name"]


def draw(df: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    rows = rng.choice(len(df), size=n, replace=False)
    return df.iloc[rows][COLUMNS].reset_index(drop=True)


def main() -> None:
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=here.parents[3] / "shared" / "data")
    ap.add_argument("--out", type=Path, default=here)
    args = ap.parse_args()
    rng = np.random.default_rng(SEED)

    train = pd.read_parquet(args.src / "agnews" / "train_subset.parquet")
    uniform = train[train["sources"].str.contains("yxhong-tw", regex=False)].reset_index(drop=True)
    both = draw(uniform, 2500, rng)
    test = draw(pd.read_parquet(args.src / "agnews" / "test.parquet"), 500, rng)
    unsup = draw(pd.read_parquet(args.src / "imdb" / "unsup.parquet"), 1000, rng)

    args.out.mkdir(parents=True, exist_ok=True)
    write = dict(index=False, encoding="utf-8", lineterminator="\n")
    both.iloc[:2000].to_csv(args.out / "agnews_train.csv", **write)
    both.iloc[2000:].to_csv(args.out / "agnews_validation.csv", **write)
    test.to_csv(args.out / "agnews_test.csv", **write)
    assert not unsup["text"].str.contains("\n").any()
    (args.out / "imdb_unsup.txt").write_text("\n".join(unsup["text"]) + "\n", encoding="utf-8")
    for f in sorted(args.out.glob("*.csv")) + [args.out / "imdb_unsup.txt"]:
        print(f"{f.name}: {f.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
