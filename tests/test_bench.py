"""``effx bench --quick`` end to end (the CI smoke run of the cost benchmark), through the real CLI."""
from __future__ import annotations

import math

import pandas as pd
import pytest
from click.testing import CliRunner

import effx
from effx.bench.report import COLUMNS
from effx_cli.main import cli

pytestmark = pytest.mark.slow  # `effx bench --quick` end to end: every attention type in fresh processes


def invoke(*args: str):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    result = invoke("bench", "--quick", "--seq-lens", "128,256", "--no-peers", "--out", str(out), "--threads", "1")
    assert result.exit_code == 0, result.output
    return out, pd.read_csv(out / "results.csv"), result.output


def test_quick_csv_has_every_column_and_registered_type(quick):
    out, df, _ = quick
    assert list(df.columns) == COLUMNS
    names = effx.load_registry().names("attention")
    for name in names:
        assert (df["type"] == name).any(), f"no rows for registered attention '{name}'"
    assert {"sdpa[fused]", "sdpa[explicit]"} <= set(df["label"]), "both sdpa paths must be separate rows"
    for suite in ("layer", "step"):
        got = df[df["suite"] == suite]
        assert set(got["type"]) == set(names)
        assert sorted(set(got["seq_len"])) == [128, 256]


def test_quick_numbers_are_finite_and_positive(quick):
    _, df, _ = quick
    assert (df["status"] == "ok").all(), df[df["status"] != "ok"][["label", "seq_len", "reason"]].to_string()
    for col in ("fwd_ms", "fwdbwd_ms", "fwd_tokens_per_s", "fwdbwd_tokens_per_s", "baseline_MiB"):
        assert df[col].map(math.isfinite).all() and (df[col] > 0).all(), col
    for col in ("fwd_peak_MiB", "fwdbwd_peak_MiB"):
        assert df[col].map(math.isfinite).all() and (df[col] >= 0).all(), col
    tok = df["batch"] * df["seq_len"] / (df["fwdbwd_ms"] / 1000)
    assert (abs(tok / df["fwdbwd_tokens_per_s"] - 1) < 1e-3).all()
    step = df[df["suite"] == "step"]
    assert (step["batch"] == 512 // step["seq_len"]).all(), "--quick keeps 512 tokens per step"


def test_quick_fidelity_exact_is_exact_and_approximations_differ(quick):
    _, df, _ = quick
    layer = df[df["suite"] == "layer"]
    exact = layer[layer["exact"]]
    assert (exact["rel_err"] < 1e-4).all(), exact[["label", "rel_err"]]
    approx = layer[~layer["exact"]]
    assert approx["rel_err"].map(math.isfinite).all()
    # at N=128 a Reformer's chunks (64, one look back) cover every key, so only N=256 must differ
    assert (approx[approx["seq_len"] == 256]["rel_err"] > 1e-4).all(), approx[["label", "seq_len", "rel_err"]]
    shared = layer["fidelity_ref"].str.startswith("shared")
    assert (~shared | layer["type"].str.startswith("reformer")).all(), "shared-QK reference only for Reformers"
    assert not shared[layer["exact"]].any()
    assert df[df["suite"] == "step"]["rel_err"].isna().all()


def test_quick_writes_plots_table_and_machine(quick):
    out, df, output = quick
    for name in ("time_layer.png", "memory_layer.png", "time_step.png", "memory_step.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name
    summary = (out / "summary.md").read_text()
    assert "| sdpa[explicit] | 256 |" in summary and "Matmul roofline" in summary
    meta = pd.read_json(out / "machine.json", typ="series")
    assert meta["threads"] == 1 and meta["dtype"] == "fp32" and "THP_MEM_ALLOC_ENABLE" in meta["allocator_env"]
    assert not list(out.glob(".*")), "temporary files left behind"


def test_tiny_memory_cap_skips_with_reason(tmp_path):
    result = invoke("bench", "--quick", "--mode", "layer", "--types", "sdpa[explicit]", "--seq-lens", "512,1024",
                    "--batch", "8", "--mem-cap-gib", "0.001", "--no-peers", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    df = pd.read_csv(tmp_path / "results.csv")
    assert list(df["seq_len"]) == [512, 1024]
    assert (df["status"] == "skipped").all()
    assert "memory cap" in df["reason"][0]  # killed by the watchdog or measured past the cap
    assert df["reason"][1] == "not run: N=512 was already skipped"


def test_tiny_time_cap_skips_with_reason(tmp_path):
    result = invoke("bench", "--quick", "--mode", "layer", "--types", "sdpa[fused]", "--seq-lens", "256",
                    "--time-cap-s", "1e-9", "--no-peers", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    row = pd.read_csv(tmp_path / "results.csv").iloc[0]
    assert row["status"] == "skipped" and "> time cap" in row["reason"] and row["reason"].startswith("forward")


def test_fp16_on_cpu_is_refused_with_reason(tmp_path):
    result = invoke("bench", "--quick", "--dtype", "fp16", "--device", "cpu", "--out", str(tmp_path))
    assert result.exit_code == 1
    assert "fp16 on CPU is refused" in result.output and "bf16" in result.output
    assert not (tmp_path / "results.csv").exists()


def test_unknown_type_is_one_line_error(tmp_path):
    result = invoke("bench", "--quick", "--types", "sdpz", "--out", str(tmp_path))
    assert result.exit_code == 1
    assert "unknown attention 'sdpz'" in result.output and "Did you mean 'sdpa'?" in result.output
    assert "Traceback" not in result.output


def test_bench_train_quick_reports_savers_long_steps_and_refusal(tmp_path):
    result = invoke("bench-train", "--quick", "--types", "sdpa[fused]", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    df = pd.read_csv(tmp_path / "train.csv")
    savers = df[df["suite"] == "savers"]
    assert list(savers["label"]) == [f"sdpa[fused] {v}" for v in
                                     ("plain", "checkpointing", "accumulation", "checkpointing+accumulation")]
    assert list(savers["micro_batches"]) == [1, 1, 4, 4] and list(savers["checkpointing"]) == [False, True, False, True]
    assert (df["status"] == "ok").all() and (df["fwdbwd_peak_MiB"] > 0).all()
    assert sorted(df[df["suite"] == "train"]["seq_len"]) == [256, 512]
    summary = (tmp_path / "summary.md").read_text()
    assert "input length 513 exceeds model.max_seq_len=512" in summary and "| PASS |" in summary


@pytest.mark.parametrize("cmd", ["bench", "bench-train", "bench-report"])
def test_help(cmd):
    result = invoke(cmd, "--help")
    assert result.exit_code == 0 and ("--quick" in result.output or "FOLDER" in result.output)


def test_bench_report_rerenders_the_same_summary(quick, tmp_path):
    import shutil

    out, _, _ = quick
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "summary.md").unlink()
    (copy / "time_layer.png").unlink()
    result = invoke("bench-report", str(copy))
    assert result.exit_code == 0, result.output
    assert (copy / "summary.md").read_text() == (out / "summary.md").read_text()
    assert (copy / "time_layer.png").exists()
    bad = invoke("bench-report", str(tmp_path / "missing"))
    assert bad.exit_code == 1 and "not a finished `effx bench` folder" in bad.output
