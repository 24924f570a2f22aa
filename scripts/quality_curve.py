"""Validation macro-F1 against wall time (pretraining included) with the TF-IDF+LR baseline.

    python scripts/quality_curve.py runs/quality_agnews   # writes quality_curve.png and quality.md
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib
import pandas as pd

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(root: Path) -> None:
    pre = root / "pretrain" / "pre" / "metrics.csv"
    offset = float(pd.read_csv(pre)["wall_s"].max()) if pre.exists() else 0.0
    ft = pd.read_csv(root / "finetune" / "ft" / "metrics.csv")
    val = ft[ft["split"] == "validation"]
    test = json.loads((root / "finetune" / "ft" / "eval.json").read_text())["results"]["test"]["metrics"]
    base = json.loads((root / "baseline" / "tfidf" / "eval.json").read_text())["results"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot((offset + val["wall_s"]) / 60, val["macro_F1"], marker="o", label="effx (validation)")
    ax.axhline(base["validation"]["metrics"]["macro_F1"], color="grey", ls="--", label="TF-IDF+LR (validation)")
    ax.axvline(offset / 60, color="k", lw=0.5)
    ax.set_xlabel("wall time, minutes (pretraining included)")
    ax.set_ylabel("macro-F1")
    ax.legend()
    fig.tight_layout()
    fig.savefig(root / "quality_curve.png", dpi=120)
    (root / "quality.md").write_text(
        f"| system | test macro-F1 | test accuracy |\n| --- | ---: | ---: |\n"
        f"| effx | {test['macro_F1']:.4f} | {test['accuracy']:.4f} |\n"
        f"| TF-IDF+LR | {base['test']['metrics']['macro_F1']:.4f} | {base['test']['metrics']['accuracy']:.4f} |\n\n"
        f"pretraining wall {offset:.0f} s, total {(offset + val['wall_s'].max()):.0f} s\n")
    print((root / "quality.md").read_text())


if __name__ == "__main__":
    main(Path(sys.argv[1]))
