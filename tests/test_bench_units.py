"""Unit tests of the bench's measuring and bookkeeping (no subprocess)."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

import effx
from effx.bench import memory, runner, targets
from effx.bench.report import frame
from effx.bench.roofline import encoder_step_flops
from effx.bench.settings import BenchSettings, parse_int_list
from effx.bench.workloads import LayerWorkload, fidelity_rows
from effx.errors import ConfigError


def test_peak_meter_measures_an_allocation_honestly():
    meter = memory.PeakMeter("cpu")
    meter.start()
    x = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
    del x
    extra = meter.extra()
    assert 60 < extra < 80, extra  # the peak survives the free; nothing much else counted


def test_extrapolation_and_predicted_skips():
    hist = [{"seq_len": 1024, "batch": 1, "status": "ok", "fwdbwd_peak_MiB": 100.0, "fwdbwd_ms": 100.0},
            {"seq_len": 2048, "batch": 1, "status": "ok", "fwdbwd_peak_MiB": 400.0, "fwdbwd_ms": 200.0}]
    assert runner._extrapolate([(1024, 100.0), (2048, 400.0)], 4096) == pytest.approx(1600.0)  # slope 2
    assert runner._extrapolate([(2048, 400.0)], 4096) is None  # one point: the watchdog decides
    reason = runner.predicted_skip(hist, 4096, 1, mem_cap_gib=1.0, time_cap_s=100)
    assert reason.startswith("predicted peak 1.6 GiB > memory cap 1 GiB")
    assert runner.predicted_skip(hist, 4096, 1, mem_cap_gib=2.0, time_cap_s=100) is None
    assert "time cap 0.3 s" in runner.predicted_skip(hist, 4096, 1, mem_cap_gib=2.0, time_cap_s=0.3)
    failed = hist + [{"seq_len": 4096, "status": "failed"}]
    assert runner.predicted_skip(failed, 8192, 1, 100, 100) == "not run: N=4096 was already failed"


def test_prediction_is_per_sequence_when_batch_shrinks_with_n():
    # constant tokens per step: 32 x 512 then 16 x 1024, linear memory per token -> flat total
    hist = [{"seq_len": 512, "batch": 32, "status": "ok", "fwdbwd_peak_MiB": 2048.0, "fwdbwd_ms": 1000.0},
            {"seq_len": 1024, "batch": 16, "status": "ok", "fwdbwd_peak_MiB": 2048.0, "fwdbwd_ms": 1000.0}]
    assert runner.predicted_skip(hist, 4096, 4, mem_cap_gib=3.0, time_cap_s=10) is None
    assert "memory cap" in runner.predicted_skip(hist, 4096, 4, mem_cap_gib=1.5, time_cap_s=10)


def test_over_cap_marks_a_run_that_slipped_past_the_watchdog():
    ok = {"status": "ok", "fwd_peak_MiB": 10.0, "fwdbwd_peak_MiB": 2000.0}
    assert runner.over_cap(ok, 1.0)["status"] == "skipped"
    assert runner.over_cap(ok, 2.0)["status"] == "ok"


def test_encoder_flops_by_hand():
    # one layer, B=1, N=2, d=4, dff=8: dense 2*2*4*(16+16)=512, attention 2*2*1*4*4=64, x3 for fwd+bwd
    assert encoder_step_flops(1, 2, 4, 1, 8, exact_attention=True) == 3 * (512 + 64)
    assert encoder_step_flops(1, 2, 4, 1, 8, exact_attention=False) == 3 * 512
    # the configuration: 4 layers, d 256, dff 1024, B 32, N 512
    assert encoder_step_flops(32, 512, 256, 4, 1024, True) == pytest.approx(412.3e9, rel=1e-3)


def test_parse_int_list():
    assert parse_int_list("1024, 512,512", "seq-lens") == (512, 1024)
    with pytest.raises(ConfigError, match="--seq-lens: expected comma-separated integers"):
        parse_int_list("512,1k", "seq-lens")
    with pytest.raises(ConfigError, match="positive"):
        parse_int_list("0", "seq-lens")


def test_fidelity_reference_is_exact_attention():
    spec = {"device": "cpu", "dtype": "fp32", "batch": 1, "heads": 2, "n": 64, "head_dim": 8, "fidelity_rows": 16}
    work = LayerWorkload(spec, torch.nn.functional.scaled_dot_product_attention, torch.nn.Identity())
    assert work.fidelity(work.forward()) == (pytest.approx(0.0, abs=1e-6), "softmax(QK^T)V")
    uniform = LayerWorkload(spec, lambda q, k, v: v.mean(-2, keepdim=True).expand_as(v), torch.nn.Identity())
    assert uniform.fidelity(uniform.forward())[0] > 0.1
    assert len(fidelity_rows(1000, 16)) == 16 and fidelity_rows(8, 16).tolist() == list(range(8))


def _rows():
    rows = []
    for n, fused, perf, peer in [(512, 10, 12, 20), (1024, 30, 20, 40), (2048, 100, 40, 80), (4096, 400, 80, 160)]:
        for label, ms, src, exact in [("sdpa[fused]", fused, "effx", True), ("performer_favor", perf, "effx", False),
                                      ("performer-pytorch", peer, "peer", False)]:
            rows.append({"suite": "layer", "label": label, "source": src, "exact": exact, "seq_len": n, "batch": 1,
                         "fwdbwd_ms": ms, "fwdbwd_peak_MiB": n / 8 if not exact else n / 4, "status": "ok"})
    rows += [{"suite": "step", "label": "sdpa[fused]", "source": "effx", "exact": True, "seq_len": 512, "batch": 32,
              "fwdbwd_ms": 1000.0, "fwdbwd_peak_MiB": 1000.0, "status": "ok"},
             {"suite": "step", "label": "performer_favor", "source": "effx", "exact": False, "seq_len": 512,
              "batch": 32, "fwdbwd_ms": 850.0, "fwdbwd_peak_MiB": 650.0, "status": "ok"}]
    return frame(rows)


def test_targets_from_rows():
    df = _rows()
    assert targets.break_even(df, "performer_favor") == 1024
    assert targets.break_even(df, "performer-pytorch") == 2048
    assert targets.memory_slope(df, "performer_favor") == pytest.approx(1.0)
    peers = targets.peer_rows(df)
    assert peers[-1]["seq_len"] == 4096 and peers[-1]["speedup"] == pytest.approx(2.0)
    rule = targets.cost_rules(df)[0]
    assert rule["time_cut"] == pytest.approx(0.15) and rule["mem_cut"] == pytest.approx(0.35) and rule["holds"]
    roof = targets.roofline_rows(df, {"status": "ok", "fp32_gflops": 800.0}, BenchSettings())
    assert roof[0]["fraction"] == pytest.approx(412.3 / 800, rel=1e-3)
    lines = {t["target"]: t["met"] for t in targets.evaluate(df, {"status": "ok", "fp32_gflops": 800.0}, BenchSettings())}
    assert lines["performer_favor faster than sdpa[fused] (fwd+bwd) from N=1024"] == "yes"
    assert lines["sdpa[fused] training step N=512 B=32: >= 50 % of fp32 matmul roofline"] == "yes"


def test_settings_refuse_fp16_cpu_and_bad_sizes():
    from effx.bench.settings import validate

    with pytest.raises(ConfigError, match="fp16 on CPU is refused"):
        validate(BenchSettings(dtype="fp16", device="cpu"))
    with pytest.raises(ConfigError, match="--reps must be positive"):
        validate(BenchSettings(reps=0))
    with pytest.raises(ConfigError, match=r"--min-time-s must be >= 0, got -1.0"):
        validate(BenchSettings(min_time_s=-1.0))
    assert validate(BenchSettings(dtype="bf16")).dtype == "bf16"


def test_frame_keeps_column_order_for_partial_rows():
    df = frame([{"suite": "layer", "label": "x", "seq_len": 4, "batch": 2, "status": "skipped", "reason": "r"}])
    assert df.iloc[0]["reason"] == "r" and pd.isna(df.iloc[0]["fwdbwd_tokens_per_s"])


def test_qk_std_scales_queries_and_keys_only():
    spec = {"device": "cpu", "dtype": "fp32", "batch": 1, "heads": 4, "n": 256, "head_dim": 64, "fidelity_rows": 8,
            "qk_std": 0.5}
    work = LayerWorkload(spec, torch.nn.functional.scaled_dot_product_attention, torch.nn.Identity())
    assert float(work.q.std()) == pytest.approx(0.5, rel=0.05) and float(work.k.std()) == pytest.approx(0.5, rel=0.05)
    assert float(work.v.std()) == pytest.approx(1.0, rel=0.05)


def test_interrupted_run_keeps_the_rows_measured_so_far(monkeypatch):
    """Ctrl-C / `timeout -s INT` mid-run returns the finished rows so the bench still writes them."""
    base = {"suite": "layer", "source": "effx", "batch": 1, "dtype": "fp32", "device": "cpu", "reps": 1,
            "warmup": 0, "time_cap_s": 1.0}
    specs = [{**base, "label": f"t{i}", "n": 128} for i in range(3)]
    calls = []

    def fake_isolated(ctx, spec, cap, timeout):
        calls.append(spec["label"])
        if spec["label"] == "t1":
            raise KeyboardInterrupt
        return {"status": "failed", "reason": "fake"}

    monkeypatch.setattr(runner, "run_isolated", fake_isolated)
    lines = []
    rows = runner.run_rows(None, specs, 1.0, 1.0, lines.append)
    assert [r["label"] for r in rows] == ["t0"] and calls == ["t0", "t1"]
    assert lines[-1] == "interrupted: writing the 1 configurations measured so far"


def test_short_runs_repeat_until_min_time(monkeypatch):
    """reps is a floor: a short run repeats until the timed runs add up to min_time_s (capped)."""
    import time as _time

    from effx.bench import worker

    meter = memory.PeakMeter("cpu")
    meter.start()
    spec = {"device": "cpu", "reps": 3, "warmup": 1, "time_cap_s": 5.0, "min_time_s": 0.0}
    res, _ = worker.phase(lambda: _time.sleep(0.002), spec, meter)
    assert res["runs"] == 3 and 1.5 < res["ms"] < 200  # real clock: only a lower bound is exact
    # A fake clock makes the count exact: 1/256 s a run, min_time 16/256 s -> 16 timed runs.
    monkeypatch.setattr(worker, "timed", lambda fn, device: (1 / 256, fn()))
    res, _ = worker.phase(lambda: None, {**spec, "min_time_s": 16 / 256}, meter)
    assert res["runs"] == 16 and res["ms"] == 1000 / 256
    res, _ = worker.phase(lambda: None, {**spec, "min_time_s": 10.0}, meter)
    assert res["runs"] == worker.MAX_RUNS


def test_flash_row_forces_the_flash_kernel_and_stays_exact():
    """The ``sdpa[flash]`` row (listed on CUDA only) runs fused sdpa with every other kernel
    disabled; PyTorch's CPU flash kernel lets the same code path run here."""
    from effx.bench.plan import variants
    from effx.bench.workloads import effx_layer, kernel_context

    registry = effx.load_registry()
    assert ("sdpa[flash]", "sdpa", {"impl": "fused"}, "flash") in variants(registry, ("sdpa",), "cuda")
    assert all(variant != "flash" for *_, variant in variants(registry, ("sdpa",), "cpu"))
    with kernel_context({"type": "sdpa", "variant": "flash"}):
        assert torch.backends.cuda.flash_sdp_enabled() and not torch.backends.cuda.math_sdp_enabled()
    assert torch.backends.cuda.math_sdp_enabled()  # restored on exit
    spec = {"device": "cpu", "dtype": "fp32", "batch": 2, "heads": 2, "n": 96, "head_dim": 16,
            "fidelity_rows": 24, "type": "sdpa", "config": {"impl": "fused"}, "variant": "flash"}
    work = effx_layer(spec)
    assert work.fidelity(work.forward())[0] < 1e-5
    work.train_step()  # backward under flash-only: no "No available kernel" error


def _short_rows(fwd_perf: float = 3.0):
    """A --quick run: N=128,256 only; performer faster than sdpa at both."""
    rows = []
    for n in (128, 256):
        for label, fwd, fb, exact in [("sdpa[fused]", 2.0, 6.0, True), ("performer_favor", fwd_perf, 4.0, False)]:
            rows.append({"suite": "layer", "label": label, "source": "effx", "exact": exact, "seq_len": n, "batch": 1,
                         "fwd_ms": fwd, "fwdbwd_ms": fb, "fwdbwd_peak_MiB": n / 8, "status": "ok"})
    return frame(rows)


def test_verdicts_only_for_measured_lengths():
    lines = {t["target"]: t for t in targets.evaluate(_short_rows(), None, BenchSettings())}
    even = lines["performer_favor faster than sdpa[fused] (fwd+bwd) from N=1024"]
    assert even["measured"] == "from N=128"
    assert even["met"] == "not measured: largest N measured is 256"  # was "yes" from a run up to 256
    assert lines["performer_favor peak memory linear in N (log-log slope <= 1.1, 2k-16k)"]["met"] == "not measured"
    assert targets.break_even_verdict(1024, 1024, 16384) == "yes"
    assert targets.break_even_verdict(2048, 1024, 16384) == "no"
    assert targets.break_even_verdict(None, 1024, 512) == "not measured: largest N measured is 512"


def test_load_distorted_rows_are_flagged():
    clean = targets.evaluate(_short_rows(fwd_perf=3.0), None, BenchSettings())
    assert not [t for t in clean if "load-distorted" in t["measured"]]
    bad = [t for t in targets.evaluate(_short_rows(fwd_perf=5.0), None, BenchSettings())
           if "load-distorted" in t["measured"]]
    assert len(bad) == 1 and bad[0]["measured"].startswith("2 row(s) look load-distorted: layer performer_favor N=128")
    assert bad[0]["met"].startswith("no")
    from effx.bench import report

    assert "load-distorted? forward slower than forward+backward" in report.results_table(_short_rows(5.0), "layer")


def test_missing_peers_are_named_in_one_line(monkeypatch):
    from effx import BenchPeer
    from effx.bench import plan

    class Reg:  # one attention that declares one peer
        def __init__(self, module):
            self.peer = BenchPeer(label="some-peer", module=module, build=lambda spec: None, version="1.1.4")

        def names(self, kind):
            return ["toy"]

        def get(self, kind, name):
            return type("E", (), {"cls": type("C", (), {"bench_peers": (self.peer,)})})

    monkeypatch.setattr(plan, "STEP_PEERS", {})
    line = plan.missing_peers_line(BenchSettings(peers=True), Reg("no_such_peer_module_xyz"))
    assert line.startswith("peers not installed, not compared: some-peer (no_such_peer_module_xyz)")
    assert "pip install some-peer==1.1.4" in line
    assert "\n" not in line and "--no-peers" in line
    assert plan.missing_peers_line(BenchSettings(peers=False), Reg("no_such_peer_module_xyz")) is None
    assert plan.missing_peers_line(BenchSettings(peers=True), Reg("json")) is None
