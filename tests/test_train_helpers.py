"""Shared helpers of the training tests (tiny configs on a slice of the shipped AG News sample).

Imported by the other ``test_train*`` / ``test_resume*`` / ``test_ddp*`` / ``test_checkpoint*`` /
``test_cli_experiment*`` modules; it holds no tests itself.
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from effx.resources import SAMPLE_DIR

REPO = Path(__file__).resolve().parents[1]
SAMPLE = SAMPLE_DIR
ENV = {"WANDB_MODE": "disabled", "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
       "EFFX_LOAD_PLUGINS": "sdpa,positional", "TOKENIZERS_PARALLELISM": "false"}


def set_env(monkeypatch) -> None:
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("EFFX_ROOT", raising=False)


def make_data(folder: Path, n_train: int = 192, n_val: int = 48, classes: tuple[int, ...] = (0, 1, 2, 3)) -> dict:
    """Write train/validation CSVs (text,label) from the shipped sample; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", n_train), ("validation", n_val)):
        with open(SAMPLE / f"agnews_{split}.csv", newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.DictReader(fh) if int(r["label"]) in classes][:n]
        path = folder / f"{split}.csv"
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["text", "label"])
            w.writerows((r["text"], classes.index(int(r["label"]))) for r in rows)
        out[split] = str(path)
    return out


def fixed_tokenizer(data: dict) -> str:
    """Train the WordPiece tokenizer once and save it: runs that must be compared step for step use
    it via ``tokenizer.path`` (training a tokenizer twice can break frequency ties differently)."""
    from effx.config import TokenizerConfig
    from effx.data import save_tokenizer, train_tokenizer

    path = Path(data["train"]).with_name("tokenizer.json")
    if not path.exists():
        with open(data["train"], newline="", encoding="utf-8") as fh:
            texts = [r["text"] for r in csv.DictReader(fh)]
        save_tokenizer(train_tokenizer(texts, TokenizerConfig(vocab_size=400)), path)
    return str(path)


def tiny_sets(data: dict, fixed_tok: bool = False, **over) -> list[str]:
    """``--set`` items for a tiny, fast model and run (d_model 32, 1 layer, vocab 400, length 32)."""
    base = {
        "model.vocab_size": 400, "tokenizer.vocab_size": 400, "model.d_model": 32, "model.n_layers": 1,
        "model.n_heads": 2, "model.d_ff": 64, "model.max_seq_len": 64, "data.max_length": 32,
        "data.train": data["train"], "data.validation": data["validation"], "data.test": None,
        "train.batch_size": 8, "train.eval_batch_size": 64, "train.epochs": 1, "train.log_every_steps": 1,
        "logging.progress_bar": False, "logging.wandb.mode": "disabled",
        "checkpoint.every_epochs": 1, "checkpoint.keep_last": 2,
    }
    if fixed_tok:
        base["tokenizer.path"] = fixed_tokenizer(data)
    base.update(over)
    return [f"{k}={'null' if v is None else v}" for k, v in base.items()]


def ft_sets(data: dict, **over) -> list[str]:
    base = {"data.train": data["train"], "data.validation": data["validation"], "data.test": None,
            "data.max_length": 32, "train.batch_size": 8, "train.epochs": 1, "train.log_every_steps": 1,
            "logging.progress_bar": False, "logging.wandb.mode": "disabled", "head.num_classes": 4}
    base.update(over)
    return [f"{k}={'null' if v is None else v}" for k, v in base.items()]


def rows(exp_dir: Path, split: str = "train") -> list[dict]:
    with open(Path(exp_dir) / "metrics.csv", newline="", encoding="utf-8") as fh:
        return [r for r in csv.DictReader(fh) if r["split"] == split]


def losses(exp_dir: Path) -> dict[int, float]:
    return {int(r["step"]): float(r["loss"]) for r in rows(exp_dir)}


def effx_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "effx_cli.main", *args]


def sub_env(root: Path) -> dict:
    env = {**os.environ, **ENV, "EFFX_ROOT": str(root)}
    return env


def run_effx(root: Path, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(effx_cmd(*args), env=sub_env(root), capture_output=True, text=True, timeout=timeout)


# a complete small architecture for finetunes without pretraining
SCRATCH_ARCH = {"model.vocab_size": 400, "tokenizer.vocab_size": 400, "model.d_model": 32, "model.n_layers": 1,
                "model.n_heads": 2, "model.d_ff": 64, "model.max_seq_len": 64}
