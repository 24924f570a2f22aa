"""The precision rules of effx.train.precision: bf16 where the hardware has it, fp16 refused on CPU."""
import pytest
import torch

from effx.errors import ConfigError
from effx.train import precision

AMX = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
PLAIN = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n"


def test_bf16_recommended_only_where_the_cpu_has_bf16_units(tmp_path):
    for text, want in ((AMX, "bf16"), (PLAIN, "fp32"), ("flags: avx512_bf16\n", "bf16"), ("", "fp32")):
        info = tmp_path / "cpuinfo"
        info.write_text(text)
        assert precision.recommended_dtype("cpu", info) == want, text
    assert precision.recommended_dtype("cpu", tmp_path / "missing") == "fp32"


def test_fp16_on_cpu_is_one_rule_everywhere():
    with pytest.raises(ConfigError, match="train.dtype fp16 on CPU is refused.*use bf16"):
        precision.Precision("fp16", torch.device("cpu"))
    from effx.bench.settings import BenchSettings, validate

    with pytest.raises(ConfigError, match="--dtype fp16 on CPU is refused"):
        validate(BenchSettings(dtype="fp16", device="cpu"))
    precision.check_fp16("bf16", "cpu")
    precision.check_fp16("fp16", "cuda")


def test_inference_dtype_follows_training_dtype_where_fast(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(precision, "cpu_flags", lambda cpuinfo=None: {"amx_bf16"})
    assert precision.inference_dtype("bf16", cpu) is torch.bfloat16
    assert precision.inference_dtype("fp32", cpu) is None
    assert precision.inference_dtype("fp16", cpu) is None  # a GPU-trained fp16 model predicts in fp32 on CPU
    monkeypatch.setattr(precision, "cpu_flags", lambda cpuinfo=None: set())
    assert precision.inference_dtype("bf16", cpu) is None


@pytest.mark.parametrize("flags,want", [({"amx_bf16"}, "bf16"), (set(), "fp32")])
def test_effx_init_writes_the_recommended_dtype(tmp_path, monkeypatch, flags, want):
    import yaml
    from click.testing import CliRunner

    from effx_cli.main import cli

    monkeypatch.setattr(precision, "cpu_flags", lambda cpuinfo=None: flags)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = CliRunner().invoke(cli, ["init", "-exp", "e", "--root", str(tmp_path)])
    assert out.exit_code == 0, out.output
    text = (tmp_path / "pretrain" / "e" / "config.yaml").read_text()
    assert yaml.safe_load(text)["train"]["dtype"] == want
    assert f"# train.dtype {want}:" in text
    out = CliRunner().invoke(cli, ["init", "-exp", "f", "--root", str(tmp_path), "--set", "train.dtype=fp32"])
    assert yaml.safe_load((tmp_path / "pretrain" / "f" / "config.yaml").read_text())["train"]["dtype"] == "fp32"
