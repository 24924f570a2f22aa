"""Validation macro-F1 against wall time (pretraining included) for every finetune under a root, with
the TF-IDF+LR baseline on the same split, and the test-set table.

    python scripts/quality_curve.py runs/quality_agnews   # writes quality_curve.png and quality.md there

A finetune's clock starts where its pretraining's ended (the pretraining's last ``wall_s``), so each
curve shows the whole cost of that recipe; a finetune without pretraining starts at 0.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib
import pandas as pd
import yaml

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _wall(metrics: Path) -> float:
    return float(pd.read_csv(metrics)["wall_s"].max()) if metrics.exists() else 0.0


def arm(root: Path, ft: Path) -> dict:
    """One finetune: its pretraining (or none), wall times, validation curve and test metrics."""
    resolved = yaml.safe_load((ft / "resolved_config.yaml").read_text())
    pre_name = (resolved.get("pretrain") or {}).get("name")
    pre_wall = _wall(root / "pretrain" / pre_name / "metrics.csv") if pre_name else 0.0
    metrics = pd.read_csv(ft / "metrics.csv")
    val = metrics[metrics["split"] == "validation"]
    test = json.loads((ft / "eval.json").read_text())["results"]["test"]["metrics"]
    pre_epochs = None
    if pre_name:
        pre_cfg = yaml.safe_load((root / "pretrain" / pre_name / "resolved_config.yaml").read_text())
        pre_epochs = pre_cfg["train"]["epochs"]
    return {"name": ft.name, "finetune_epochs": resolved["train"]["epochs"], "pretrain": pre_name, "pretrain_epochs": pre_epochs, "pretrain_wall_s": pre_wall,
            "finetune_wall_s": float(metrics["wall_s"].max()), "curve": val, "test": test}


def baseline(root: Path) -> dict:
    (only,) = [p for p in (root / "baseline").iterdir() if (p / "eval.json").exists()]
    return json.loads((only / "eval.json").read_text())["results"]


def plot(arms: list[dict], base: dict, out: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for a in arms:
        label = f"{a['pretrain_epochs']} pretraining epochs" if a["pretrain"] else "no pretraining"
        label += f", {a['finetune_epochs']} finetune epoch{'s' if a['finetune_epochs'] > 1 else ''}"
        x = (a["pretrain_wall_s"] + a["curve"]["wall_s"]) / 60
        ax.plot(x, a["curve"]["macro_F1"], marker="o", ms=3, label=f"effx, {label}")
    ax.axhline(base["validation"]["metrics"]["macro_F1"], color="grey", ls="--", label="TF-IDF+LR")
    ax.axvline(30, color="k", lw=0.6, ls=":", label="30-minute budget")
    ax.set_xlabel("wall time, minutes (pretraining included)")
    ax.set_ylabel("validation macro-F1")
    ax.set_ylim(0.80, None)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def table(arms: list[dict], base: dict) -> str:
    rows = ["| system | pretraining | finetune epochs | pretraining wall (s) | finetune wall (s) | total wall (s) | "
            "best validation macro-F1 | test macro-F1 | test accuracy |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for a in arms:
        pre = f"{a['pretrain_epochs']} epochs ({a['pretrain']})" if a["pretrain"] else "none"
        total = a["pretrain_wall_s"] + a["finetune_wall_s"]
        rows.append(f"| effx {a['name']} | {pre} | {a['finetune_epochs']} | {a['pretrain_wall_s']:.0f} | {a['finetune_wall_s']:.0f} | {total:.0f} | "
                    f"{a['curve']['macro_F1'].max():.4f} | {a['test']['macro_F1']:.4f} | {a['test']['accuracy']:.4f} |")
    t = base["test"]["metrics"]
    rows.append(f"| TF-IDF+LR | none | | | | | {base['validation']['metrics']['macro_F1']:.4f} | "
                f"{t['macro_F1']:.4f} | {t['accuracy']:.4f} |")
    return "\n".join(rows) + "\n"


def main(root: Path) -> None:
    arms = sorted((arm(root, ft) for ft in (root / "finetune").iterdir() if (ft / "eval.json").exists()),
                  key=lambda a: (a["pretrain_epochs"] or 0, a["name"]))
    base = baseline(root)
    plot(arms, base, root / "quality_curve.png")
    (root / "quality.md").write_text(table(arms, base))
    print((root / "quality.md").read_text())


if __name__ == "__main__":
    main(Path(sys.argv[1]))
