"""``effx init / pretrain / finetune`` through Click's CliRunner: spellings, roots, one-line errors."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from test_train_helpers import ft_sets, make_data, set_env, tiny_sets  # noqa: E402

from effx_cli.main import cli  # noqa: E402


@pytest.fixture()
def env(tmp_path, monkeypatch):
    set_env(monkeypatch)
    monkeypatch.chdir(tmp_path)
    return tmp_path, make_data(tmp_path / "data")


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def _sets(items: list[str]) -> list[str]:
    return [x for item in items for x in ("--set", item)]


def one_line_error(result, *needles: str) -> str:
    assert result.exit_code == 1, result.output
    out = result.output.strip()
    assert out.startswith("Error: ") and "\n" not in out and "Traceback" not in out, out
    for n in needles:
        assert n in out, out
    return out


@pytest.mark.parametrize("cmd", ["init", "pretrain", "finetune"])
def test_help(cmd):
    result = invoke(cmd, "--help")
    assert result.exit_code == 0 and "-exp, --exp" in result.output and "--root" in result.output


def test_init_writes_full_config_and_refuses_overwrite(env):
    root, data = env
    result = invoke("init", "-exp", "a", *_sets(tiny_sets(data)))
    assert result.exit_code == 0, result.output
    cfg = yaml.safe_load((root / "pretrain" / "a" / "config.yaml").read_text())
    assert cfg["model"]["d_model"] == 32 and cfg["model"]["attention"] == {"type": "sdpa", "impl": "auto",
                                                                    "explicit_max_len": 512}
    assert cfg["train"]["optimizer"]["betas"] == [0.9, 0.999] and cfg["checkpoint"]["keep_last"] == 2
    one_line_error(invoke("init", "--exp", "a"), "already exists", "--force")
    assert invoke("init", "--exp", "a", "--force", "--set", "train.optimizer.lr=3e-4").exit_code == 0
    cfg = yaml.safe_load((root / "pretrain" / "a" / "config.yaml").read_text())
    assert cfg["train"]["optimizer"]["lr"] == 3e-4 and cfg["model"]["d_model"] == 256  # template default again


def test_init_default_template_points_at_shipped_sample(env):
    root, _ = env
    assert invoke("init", "-exp", "d").exit_code == 0
    cfg = yaml.safe_load((root / "pretrain" / "d" / "config.yaml").read_text())
    assert Path(cfg["data"]["train"]).is_file() and cfg["data"]["train"].endswith("agnews_train.csv")
    assert invoke("init", "-exp", "f", "--finetune").exit_code == 0
    ft = yaml.safe_load((root / "finetune" / "f" / "config.yaml").read_text())
    assert list(ft) == ["seed", "head", "data", "train", "checkpoint", "logging"]
    assert ft["head"] == {"type": "classification", "num_classes": 4, "pooling": "mean", "dropout": 0.1}


def test_init_switching_component_type_drops_old_fields(env):
    root, _ = env
    assert invoke("init", "-exp", "r", "--set", "model.positional.type=rope").exit_code == 0
    cfg = yaml.safe_load((root / "pretrain" / "r" / "config.yaml").read_text())
    assert cfg["model"]["positional"]["type"] == "rope" and "base" in cfg["model"]["positional"]


@pytest.mark.parametrize("args,needles", [
    (["init", "-exp", "x", "--set", "train.optimizr.lr=1"], ["train: extra fields found (optimizr)", "optimizer"]),
    (["init", "-exp", "x", "--set", "model.d_model=big"], ["model.d_model: expected int"]),
    (["init", "-exp", "x", "--set", "nokey"], ["expected key=value"]),
    (["init", "-exp", "a/b"], ["invalid experiment name"]),
    (["init", "-exp", "x", "--finetune", "--set", "model.d_model=64"], ["'model' is inherited"]),
    (["init", "-exp", "x", "--template", "missing.yaml"], ["missing.yaml not found"]),
    (["pretrain", "-exp", "nope"], ["no experiment pretrain/nope", "effx init -exp nope"]),
    (["finetune", "-exp", "nope", "-pretrain", "p"], ["no experiment finetune/nope", "--finetune"]),
])
def test_user_mistakes_are_one_line_errors(env, args, needles):
    one_line_error(invoke(*args), *needles)


def test_resume_without_checkpoint_and_bad_yaml(env):
    root, data = env
    assert invoke("init", "-exp", "p", *_sets(tiny_sets(data))).exit_code == 0
    one_line_error(invoke("pretrain", "-exp", "p", "-resume"), "nothing to resume")
    (root / "pretrain" / "p" / "config.yaml").write_text("model: {d_model: [}\n")
    one_line_error(invoke("pretrain", "-exp", "p"), "invalid YAML")


def test_finetune_architecture_change_is_one_line_error(env):
    root, data = env
    assert invoke("init", "-exp", "p", *_sets(tiny_sets(data))).exit_code == 0
    assert invoke("init", "-exp", "f", "--finetune", *_sets(ft_sets(data))).exit_code == 0
    path = root / "finetune" / "f" / "config.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["model"] = {"n_layers": 3}
    path.write_text(yaml.safe_dump(cfg))
    one_line_error(invoke("finetune", "-exp", "f", "-pretrain", "p"), "model.n_layers cannot differ", "(1 there, 3 here)")
    cfg.pop("model")
    path.write_text(yaml.safe_dump(cfg))
    one_line_error(invoke("finetune", "-exp", "f", "-pretrain", "p", "-ckpt", "best"), "ckpt_best.pt not found")


def test_pretrain_and_finetune_via_cli_with_root_and_env(env, tmp_path, monkeypatch):
    _, data = env
    other = tmp_path / "elsewhere"
    sets = _sets(tiny_sets(data, **{"train.max_steps": 2}))
    assert invoke("init", "-exp", "p", "--root", str(other), *sets).exit_code == 0
    assert (other / "pretrain" / "p" / "config.yaml").is_file()
    result = invoke("pretrain", "--exp", "p", "--root", str(other))
    assert result.exit_code == 0, result.output
    assert "finished at step 2" in result.output and str(other / "pretrain" / "p") in result.output
    monkeypatch.setenv("EFFX_ROOT", str(other))
    assert invoke("init", "--exp", "f", "--finetune", *_sets(ft_sets(data, **{"train.max_steps": 2}))).exit_code == 0
    result = invoke("finetune", "--exp", "f", "--pretrain", "p", "--ckpt", "last")
    assert result.exit_code == 0, result.output
    assert "macro_F1=" in result.output and (other / "finetune" / "f" / "head.pt").is_file()
    one_line_error(invoke("pretrain", "-exp", "p"), "already has a run (status: finished)")
    result = invoke("pretrain", "-exp", "p", "-resume")  # finished: resume is a no-op that keeps the history
    assert result.exit_code == 0 and "finished at step 2" in result.output


def test_init_keeps_root_relative_paths_and_absolutises_others(tmp_path, monkeypatch):
    from effx.train.experiment import fill_data_paths

    root, cwd = tmp_path / "root", tmp_path / "cwd"
    (root / "d").mkdir(parents=True)
    (cwd / "e").mkdir(parents=True)
    (root / "d" / "train.csv").write_text("text,label\n")
    (cwd / "e" / "val.csv").write_text("text,label\n")
    monkeypatch.chdir(cwd)
    raw = {"data": {"train": "d/train.csv", "validation": "e/val.csv", "test": "nowhere.csv"}}
    fill_data_paths(raw, root)
    assert raw["data"]["train"] == "d/train.csv"  # resolved against the root at run time
    assert raw["data"]["validation"] == str((cwd / "e" / "val.csv").resolve())
    assert raw["data"]["test"] == "nowhere.csv"  # left for the run to report
