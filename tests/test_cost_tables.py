"""benchmarks/cost_tables.py on synthetic bench_cost.sh output: every ratio and goal verdict it prints."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "cost_tables.py"


@pytest.fixture(scope="module")
def ct():
    spec = importlib.util.spec_from_file_location("cost_tables", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def stamps(folder: Path, command: str = "effx something") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "command.txt").write_text(command + "\n")
    (folder / "uptime.txt").write_text(
        "start 2026-12-02T10:00:00Z\nuptime:  10:00:00 up 1:00,  0 user,  load average: 1.01, 0.50, 0.20\n"
        "cpu: Test CPU (1 usable cores)\naffinity: 0\nthreads: 1\ncommit: abc1234\n"
        "end 2026-12-02T10:05:00Z\nuptime:  10:05:00 up 1:05,  0 user,  load average: 1.02, 0.90, 0.40\n"
        "cpu: Test CPU (1 usable cores)\naffinity: 0\nthreads: 1\ncommit: abc1234\n")


def tokens(root: Path, vs: dict[str, float]) -> None:
    stamps(root / "tokens-agnews")
    rows = []
    for att, ratio in vs.items():
        for mode, r in (("fixed", 1.0), ("bucketed", ratio), ("shuffled", 0.5), ("bucketed_padded", 0.8)):
            rows.append({"attention": att, "mode": mode, "real_tokens": 900, "padded_tokens": 1000,
                         "real_tokens_per_s": 1000.0 * r, "vs_fixed": r, "vs_fixed_per_pass": [r, r]})
    (root / "tokens-agnews" / "tokens.json").write_text(json.dumps({
        "command": "effx bench-tokens --data x", "rows": rows,
        "settings": {"types": list(vs), "max_length": 128, "batch": 32, "n_batches": 5, "repeats": 2,
                     "n_layers": 4, "d_model": 256, "heads": 4, "d_ff": 1024, "dtype": "fp32"},
        "lengths": {"texts": 100, "mean_len": 50.0, "median_len": 48, "p90_len": 80, "truncated": 1}}))


def layer(folder: Path, ms: dict[str, float], roofline: float = 240.0, threads: int = 1) -> None:
    stamps(folder)
    rows = [{"suite": "layer", "label": lab, "seq_len": 16384, "batch": 1, "status": "ok", "fwdbwd_ms": t,
             "fwdbwd_peak_MiB": 100.0} for lab, t in ms.items()]
    pd.DataFrame(rows).to_csv(folder / "results.csv", index=False)
    (folder / "machine.json").write_text(json.dumps({
        "command": "effx bench --mode layer", "peers": {}, "settings": {"heads": 4, "head_dim": 64, "threads": threads},
        "roofline": {"fp32_gflops": roofline, "roofline_size": 2048, "threads": threads}}))


def test_real_token_ratio_and_goal(ct, tmp_path):
    tokens(tmp_path, {"sdpa": 0.96, "reformer_lsh": 0.90})
    out = ct.tokens_section(tmp_path, "tokens-agnews", "AG News")
    lines = {line.split(" | ")[0].lstrip("| "): line for line in out.splitlines() if line.startswith("| ")}
    assert "| 96.0% | 0.96 0.96 | **met** | 50.0% | 80.0% |" in lines["sdpa"]
    assert "| 90.0% | 0.90 0.90 | **not met** |" in lines["reformer_lsh"]
    assert "real share of the bucketed batches 90.0%" in out
    assert "`effx bench-tokens --data x`" in out and "load average 1.01, 0.50, 0.20 at start" in out
    assert "CPU Test CPU (1 usable cores)" in out


def test_performer_flops_match_the_issue_count(ct):
    assert ct.performer_flops(16384, 1, 4, 64, 256) / 1e9 == pytest.approx(25.77, abs=0.01)


def test_roofline_fraction(ct, tmp_path, monkeypatch):
    layer(tmp_path / "layer16k", {"performer_favor": 283.0}, roofline=240.0)
    monkeypatch.setattr(ct, "performer_features", lambda: 256)
    out = ct.roofline_section(tmp_path)
    # 25.77 GFLOP / 0.283 s = 91 GFLOP/s = 37.9 % of 240
    assert "| 16384 | 1 | 25.8 | 283 | 91 | 240 | 37.9% | **not met** |" in out
    layer(tmp_path / "layer16k", {"performer_favor": 150.0}, roofline=240.0)
    assert "| 71.6% | **met** |" in ct.roofline_section(tmp_path)


def test_peer_rerun_against_reference(ct, tmp_path):
    layer(tmp_path / "ref", {"performer_favor": 100.0, "performer-pytorch": 390.0,
                             "reformer_lsh": 100.0, "reformer-pytorch": 310.0}, threads=2)
    layer(tmp_path / "layer16k", {"performer_favor": 100.0, "performer-pytorch": 360.0,
                                  "reformer_lsh": 100.0, "reformer-pytorch": 270.0})
    out = ct.peers_section(tmp_path, tmp_path / "ref")
    assert "| performer_favor vs performer-pytorch | 16384 | 100 | 360 | 3.60x | 1.00 | 3.90x | -7.7% | **met** |" in out
    assert "| reformer_lsh vs reformer-pytorch | 16384 | 100 | 270 | 2.70x | 1.00 | 3.10x | -12.9% | **not met** |" in out
    assert "(2 thread(s))" in out and "Not measured" not in out
    layer(tmp_path / "layer16k", {"performer_favor": 100.0, "performer-pytorch": 470.0})  # +20.5 %
    assert "| 4.70x | 1.00 | 3.90x | +20.5% | **met** (faster by more than 10%) |" in ct.peers_section(tmp_path, tmp_path / "ref")


def test_missing_peer_is_named(ct, tmp_path):
    layer(tmp_path / "ref", {"performer_favor": 100.0, "performer-pytorch": 390.0})
    layer(tmp_path / "layer16k", {"performer_favor": 100.0, "performer-pytorch": 400.0, "reformer_lsh": 100.0})
    out = ct.peers_section(tmp_path, tmp_path / "ref")
    assert "Not measured (peer not installed): reformer-pytorch." in out
    assert "| 4.00x | 1.00 | 3.90x | +2.6% | **met** |" in out


def test_hf_step_and_inference(ct, tmp_path):
    stamps(tmp_path / "hf-step")
    (tmp_path / "hf-step" / "hf-peer-ab.json").write_text(json.dumps({
        "command": "python benchmarks/hf_peer_ab.py", "transformers": "5.0", "torch": "2.0", "reps": 5,
        "rows": [{"dtype": "fp32", "n": 128, "batch": 32, "effx_step_ms": 500.0, "hf_step_ms": 700.0,
                  "effx_fwd_ms": 100.0, "hf_fwd_ms": 110.0},
                 {"dtype": "bf16", "n": 512, "batch": 8, "effx_step_ms": 500.0, "hf_step_ms": 600.0,
                  "effx_fwd_ms": 100.0, "hf_fwd_ms": 200.0}]}))
    out = ct.hf_step_section(tmp_path)
    assert "| fp32 | 128 x 32 | 500 | 700 | 1.40x | **met** | 100 | 110 | 1.10x |" in out
    assert "| bf16 | 512 x 8 | 500 | 600 | 1.20x | **not met** | 100 | 200 | 2.00x |" in out
    stamps(tmp_path / "infer-agnews")
    (tmp_path / "infer-agnews" / "predict-hf-ab.json").write_text(json.dumps({
        "command": "python benchmarks/predict_hf_ab.py", "max_length": 128, "batch": 64,
        "lengths": {"texts": 10, "mean_len": 40.0},
        "rows": [{"dtype": "fp32", "effx_texts_per_s": 200.0, "effx_tokens_per_s": 8000.0,
                  "hf_texts_per_s": 100.0, "hf_tokens_per_s": 4000.0}]}))
    out = ct.infer_section(tmp_path)
    assert "| AG News test | 128 | 40 | fp32 | 200 | 100 | 8,000 | 4,000 | 2.00x | **met** |" in out
    assert "IMDb test: not measured" in out


def test_finetune_curves_and_plot(ct, tmp_path):
    folder = tmp_path / "finetune-bf16"
    stamps(folder, "effx init -exp ft-fp32 --set train.dtype=fp32\neffx finetune -exp ft-fp32\n"
                   "effx init -exp ft-bf16 --set train.dtype=bf16\neffx finetune -exp ft-bf16")
    for dt, f1 in (("fp32", [0.5, 0.8]), ("bf16", [0.52, 0.79])):
        run = folder / "finetune" / f"ft-{dt}"
        run.mkdir(parents=True)
        pd.DataFrame({"step": [10, 10, 20], "split": ["train", "validation", "validation"],
                      "macro_F1": [None, *f1], "wall_s": [1.0, 2.0, 10.0 if dt == "fp32" else 5.0]}
                     ).to_csv(run / "metrics.csv", index=False)
        (folder / f"ft-{dt}.wall_s").write_text("30.5\n")
    out = ct.finetune_section(tmp_path, plot=True)
    assert "| 10 | 0.5000 | 0.5200 | +0.0200 |" in out and "| 20 | 0.8000 | 0.7900 | -0.0100 |" in out
    assert "| bf16 | 0.7900 | 0.7900 | 5 | 30 |" in out
    assert "Final bf16 - fp32: -0.0100 macro-F1; training wall fp32 / bf16: 2.00x" in out
    assert (folder / "curve.png").stat().st_size > 1000
    assert ("Command: `effx init -exp ft-fp32 --set train.dtype=fp32`; `effx finetune -exp ft-fp32`; "
            "then the same with `fp32` -> `bf16`") in out


def test_missing_parts_say_so(ct, tmp_path):
    out = ct.render(tmp_path, tmp_path / "ref")
    assert out.count("(not measured:") == 7 and "IMDb test" not in out


def test_fill_replaces_only_the_marked_section(ct, tmp_path):
    doc = tmp_path / "B.md"
    doc.write_text(f"# top\n\n{ct.BEGIN}\nold placeholder\n{ct.END}\n\n## after\n")
    ct.fill(doc, "new tables\n")
    assert doc.read_text() == f"# top\n\n{ct.BEGIN}\nnew tables\n{ct.END}\n\n## after\n"
    doc.write_text("no markers\n")
    with pytest.raises(SystemExit, match="needs one"):
        ct.fill(doc, "x\n")
    assert doc.read_text() == "no markers\n"
