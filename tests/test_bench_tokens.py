"""effx bench-tokens (real-token throughput) and the HF BERT row of the step suite, on tiny settings."""
import json

import pytest

from effx.bench import plan
from effx.bench.settings import BenchSettings
from effx.bench.tokens import MODES, TokenSettings, mode_batches, real_ids, run_tokens_bench
from effx.errors import ConfigError
from effx.resources import SAMPLE_DIR

SAMPLE = SAMPLE_DIR / "agnews_train.csv"
TINY = dict(data=str(SAMPLE), max_length=48, batch=4, n_batches=2, repeats=1, texts=40, types=("sdpa",),
            vocab_size=200, d_model=32, n_layers=1, heads=2, d_ff=64)


def test_batches_fixed_are_full_and_variable_are_real_lengths():
    s = TokenSettings(**TINY)
    ids, stats = real_ids(s)
    assert stats["texts"] == 40 and 2 < stats["mean_len"] <= 48
    b = mode_batches(s, ids, stats["vocab"])
    assert all(x["attention_mask"].all() and x["input_ids"].shape == (4, 48) for x in b["fixed"])
    lengths = sorted(len(x) for x in ids)
    for kind in ("bucketed", "shuffled"):
        for x in b[kind]:
            real = x["attention_mask"].sum(1).tolist()
            assert x["input_ids"].shape[1] == max(real) and all(r in lengths for r in real)
    pad = lambda k: 1 - sum(int(x["attention_mask"].sum()) for x in b[k]) / sum(x["input_ids"].numel() for x in b[k])  # noqa: E731
    assert pad("bucketed") <= pad("shuffled")


def test_run_writes_results_with_every_mode(tmp_path):
    paths = run_tokens_bench(TokenSettings(**TINY), tmp_path, command="effx bench-tokens (test)")
    res = json.loads(paths["results"].read_text())
    assert [r["mode"] for r in res["rows"]] == list(MODES)
    fixed = next(r for r in res["rows"] if r["mode"] == "fixed")
    assert fixed["real_tokens"] == fixed["padded_tokens"] == 2 * 4 * 48 and fixed["vs_fixed"] == 1.0
    assert all(r["real_tokens_per_s"] > 0 for r in res["rows"])
    assert "variable, length-bucketed (default)" in paths["summary"].read_text()


def test_missing_data_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="--data: file .* not found"):
        run_tokens_bench(TokenSettings(**{**TINY, "data": str(tmp_path / "nope.csv")}), tmp_path, command="x")


def test_step_suite_adds_the_hf_row_only_when_transformers_is_installed(monkeypatch):
    import effx

    reg = effx.load_registry()
    s = BenchSettings(mode="step", seq_lens=(128, 512), types=("sdpa[fused]",), step_tokens=4096)
    for installed in (True, False):
        monkeypatch.setattr(plan, "available_peers", lambda peers, ok=installed: list(peers) if ok else [])
        labels = [(x["label"], x["n"], x["batch"]) for x in plan.step_specs(s, reg)]
        hf = [x for x in labels if x[0] == "hf-bert"]
        assert hf == ([("hf-bert", 128, 32), ("hf-bert", 512, 8)] if installed else [])
    s = BenchSettings(mode="step", seq_lens=(128,), types=("sdpa[fused]",), peers=False)
    assert all(x["source"] == "effx" for x in plan.step_specs(s, reg))


def test_hf_targets_compare_every_effx_row_with_the_peer():
    from effx.bench import report, targets

    rows = [{"suite": "step", "label": lab, "source": src, "seq_len": 128, "batch": 32, "status": "ok",
             "fwd_ms": f, "fwdbwd_ms": t, "fwdbwd_peak_MiB": 1.0, "exact": True}
            for lab, src, f, t in (("sdpa[fused]", "effx", 100.0, 300.0), ("hf-bert", "peer", 150.0, 360.0))]
    lines = targets.evaluate(report.frame(rows), None, BenchSettings())
    got = {ln["target"]: (ln["measured"], ln["met"]) for ln in lines}
    assert got["sdpa[fused] training step N=128 B=32: >= 1.3x hf-bert tokens/s"] == ("1.20x (300 vs 360 ms)", "no")
    assert got["sdpa[fused] forward N=128 B=32: >= 1.3x hf-bert tokens/s"] == ("1.50x (100 vs 150 ms)", "yes")
