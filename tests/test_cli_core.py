import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from effx_cli.main import cli


def test_help_of_every_command():
    runner = CliRunner()
    assert runner.invoke(cli, ["--help"]).exit_code == 0
    for name in cli.commands:
        res = runner.invoke(cli, [name, "--help"])
        assert res.exit_code == 0, (name, res.output)


def test_plugins_lists_everything_with_fields():
    out = CliRunner().invoke(cli, ["plugins"]).output
    for needle in ("attention  sdpa", "impl: 'auto' | 'fused' | 'explicit' = 'auto'", "explicit_max_len: int = 512", "positional sin", "positional learned",
                   "positional relative", "positional rope", "head       classification",
                   "pooling: 'cls' | 'mean' | 'max' = 'cls'", "head       mlm", "metric     accuracy",
                   "metric     macro_F1", "metric     weighted_F1", "metric     AUROC", "effx-attention-sdpa 0.1.0"):
        assert needle in out, needle


def test_plugins_json():
    rows = json.loads(CliRunner().invoke(cli, ["plugins", "--json"]).output)
    sdpa = next(r for r in rows if r["name"] == "sdpa")
    assert sdpa["dist"] == "effx-attention-sdpa" and sdpa["fields"][0]["name"] == "impl"


@pytest.mark.slow
def test_load_only_listed_plugins_through_the_cli():
    import os

    res = subprocess.run([sys.executable, "-m", "effx_cli.main", "plugins"], capture_output=True, text=True,
                         env={**os.environ, "EFFX_LOAD_PLUGINS": "positional"})
    assert res.returncode == 0 and "sdpa" not in res.stdout and "rope" in res.stdout


@pytest.mark.parametrize("yaml_text,expected", [
    ("model: {n_layer: 2}\n", "Error: model: extra fields found (n_layer); did you mean 'n_layers'?"),
    ("model: {attention: {type: perfomer}}\n", "Error: model.attention: unknown attention 'perfomer'."),
    ("model: {d_model: four}\n", "Error: model.d_model: expected int, got 'four'"),
    ("model: {max_seq_len: 32, d_model: 32, n_heads: 2, d_ff: 32, n_layers: 1, vocab_size: 10}\n",
     "Error: input length 40 exceeds model.max_seq_len=32; truncate the input (data.max_length) or raise "
     "model.max_seq_len in the config"),
])
@pytest.mark.slow
def test_user_mistakes_through_the_cli(tmp_path, yaml_text, expected):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml_text)
    res = subprocess.run([sys.executable, "-m", "effx_cli.main", "validate", str(cfg), "--seq-len", "40"],
                         capture_output=True, text=True)
    assert res.returncode == 1
    assert res.stderr.startswith(expected), res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr


def test_validate_ok(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: {d_model: 32, n_heads: 2, d_ff: 32, n_layers: 1, vocab_size: 10}\n")
    res = CliRunner().invoke(cli, ["validate", str(cfg), "--seq-len", "20"])
    assert res.exit_code == 0 and "forward at length 20 OK" in res.output and "trainable parameters" in res.output
