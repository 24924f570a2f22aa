"""Finetuning without pretraining (``effx init --finetune --no-pretrain``, ``effx finetune`` without
``-pretrain``) and finetune ``--set`` errors that name the user's own ``--set``."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from test_train_helpers import SCRATCH_ARCH, ft_sets, make_data, set_env  # noqa: E402

from effx_cli.main import cli  # noqa: E402



@pytest.fixture()
def env(tmp_path, monkeypatch):
    set_env(monkeypatch)
    monkeypatch.chdir(tmp_path)
    return tmp_path, make_data(tmp_path / "data", n_train=64, n_val=16)


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def sets(items: dict | list) -> list[str]:
    items = [f"{k}={v}" for k, v in items.items()] if isinstance(items, dict) else items
    return [x for item in items for x in ("--set", item)]


def one_line_error(result, *needles: str) -> str:
    out = result.output.strip()
    assert result.exit_code != 0 and out.startswith("Error: ") and "\n" not in out, out
    for n in needles:
        assert n in out, out
    return out


def test_finetune_set_of_an_inherited_key_names_the_users_set(env):
    out = one_line_error(invoke("init", "-exp", "x", "--finetune", "--set", "model.attention.type=sdpa"),
                         "--set model.attention.type=sdpa", "--no-pretrain", "effx init -exp PRE")
    assert "finetune.yaml" not in out
    one_line_error(invoke("init", "-exp", "x", "--finetune", "--set", "mlm.mask_prob=0.2"),
                   "--set mlm.mask_prob=0.2", "not a finetune setting")


def test_no_pretrain_config_has_the_architecture(env):
    root, data = env
    result = invoke("init", "-exp", "s", "--finetune", "--no-pretrain", *sets(ft_sets(data)), *sets(SCRATCH_ARCH))
    assert result.exit_code == 0, result.output
    assert "-pretrain" not in result.output
    cfg = yaml.safe_load((root / "finetune" / "s" / "config.yaml").read_text())
    assert list(cfg) == ["seed", "head", "data", "train", "checkpoint", "logging", "model", "tokenizer"]
    assert cfg["model"]["d_model"] == 32 and cfg["model"]["positional"]["type"] == "relative"  # the template default
    one_line_error(invoke("init", "-exp", "t", "--no-pretrain"), "--no-pretrain", "--finetune")
    one_line_error(invoke("init", "-exp", "t", "--finetune", "--no-pretrain", "--set", "tokenizer.vocab_size=900",
                          "--set", "model.vocab_size=500"), "tokenizer.vocab_size (900) exceeds model.vocab_size")


def test_finetune_without_pretraining_trains_and_says_so(env):
    root, data = env
    over = {"train.max_steps": 3, **SCRATCH_ARCH}
    assert invoke("init", "-exp", "s", "--finetune", "--no-pretrain", *sets(ft_sets(data, **over))).exit_code == 0
    result = invoke("finetune", "-exp", "s")
    assert result.exit_code == 0, result.output
    exp = root / "finetune" / "s"
    resolved = yaml.safe_load((exp / "resolved_config.yaml").read_text())
    assert resolved["pretrain"]["name"] is None and "no pretraining" in resolved["pretrain"]["none"]
    assert resolved["model"]["d_model"] == 32 and (exp / "tokenizer.json").is_file()
    info = json.loads((exp / "run_info.json").read_text())
    assert "no pretraining" in info["pretrain"]["none"]
    from effx.eval.results import results_table
    from effx.eval.runs import load_runs

    table = results_table(load_runs(root), "validation")
    assert table.loc[0, "pretraining"] == "none" and int(table.loc[0, "max_steps"]) == 3
    one_line_error(invoke("finetune", "-exp", "s", "-pretrain", "p", "-resume"), "no experiment pretrain/p")
    result = invoke("finetune", "-exp", "s", "-resume")
    assert result.exit_code == 0, result.output


def test_finetune_without_pretrain_needs_a_model_section(env):
    _, data = env
    assert invoke("init", "-exp", "f", "--finetune", *sets(ft_sets(data))).exit_code == 0
    one_line_error(invoke("finetune", "-exp", "f"), "no model section", "-pretrain PRE", "--no-pretrain")
