"""Print the Markdown tables of docs/BENCHMARKS.md from the files `benchmarks/bench_full.sh` wrote.

    python benchmarks/bench_tables.py [docs/bench] > /tmp/tables.md

Every table is a pivot of `results.csv` / `train.csv` / `machine.json` (no number is typed by hand):
layer time / memory / fidelity, peer and break-even ratios, memory slopes, the training step with
its roofline fraction and the product's cost rules at N=512, the same step in bf16 against fp32,
the long-sequence runs, the THP A/B.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pandas as pd

from effx.bench import targets
from effx.bench.report import md_table as table
from effx.bench.roofline import encoder_step_flops
from effx.bench.settings import BenchSettings

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/bench")
ORDER = ["performer_favor", "performer_favor_pp", "reformer_lsh", "reformer_balanced", "sdpa[fused]",
         "sdpa[explicit]", "performer-pytorch", "reformer-pytorch"]


def fmt(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "skipped"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}" if abs(x) < 10 else f"{x:.1f}"


def load(folder: str, name: str = "results.csv") -> pd.DataFrame:
    return pd.read_csv(ROOT / folder / name)


def machine(folder: str) -> dict:
    return json.loads((ROOT / folder / "machine.json").read_text(encoding="utf-8"))


def pivot(df: pd.DataFrame, col: str) -> pd.DataFrame:
    ok = df[df["status"] == "ok"]
    p = ok.pivot_table(index="label", columns="seq_len", values=col, aggfunc="first")
    labels = [lab for lab in ORDER if lab in set(df["label"])]
    return p.reindex(index=labels, columns=sorted(df["seq_len"].unique()))


def grid(p: pd.DataFrame, f=fmt) -> str:
    return table(["attention"] + [f"N={n}" for n in p.columns], [[lab] + [f(v) for v in p.loc[lab]] for lab in p.index])


def ratio_grid(num: pd.DataFrame, den: pd.DataFrame, pairs: list[tuple[str, str]]) -> list[list]:
    return [[a] + [f"{num.loc[b, n] / den.loc[a, n]:.2f}" if a in den.index and b in num.index
                   and not math.isnan(num.loc[b, n]) and not math.isnan(den.loc[a, n]) else "—"
                   for n in den.columns] for a, b in pairs]


def layer_section(folder: str) -> str:
    df = load(folder)
    t, f, m, e = (pivot(df, c) for c in ("fwdbwd_ms", "fwd_ms", "fwdbwd_peak_MiB", "rel_err"))
    parts = [f"### {folder}: forward + backward ms\n\n" + grid(t), f"### {folder}: forward ms\n\n" + grid(f),
             f"### {folder}: fwd+bwd extra peak MiB\n\n" + grid(m),
             f"### {folder}: relative error\n\n" + grid(e, lambda v: "skipped" if math.isnan(v) else f"{v:.3g}")]
    peer = {(r["label"], r["seq_len"]): r for r in targets.peer_rows(df)}
    pairs = sorted(dict.fromkeys((lab, r["peer"]) for (lab, _), r in peer.items()), key=lambda p: ORDER.index(p[0]))
    peer_rows = [[f"{a} vs {b}"] + [f"{peer[a, n]['speedup']:.2f}x / {peer[a, n]['mem_ratio']:.2f}" if (a, n) in peer
                                    else "—" for n in t.columns] for a, b in pairs]
    parts.append(f"### {folder}: peer speed-up (peer ms / effx ms) / memory ratio (effx / peer)\n\n"
                 + table(["pair"] + [f"N={n}" for n in t.columns], peer_rows))
    others = [lab for lab in t.index if lab != "sdpa[fused]"]
    parts.append(f"### {folder}: fused sdpa ms / type ms (> 1 = faster than fused sdpa)\n\n"
                 + table(["attention"] + [f"N={n}" for n in t.columns],
                         ratio_grid(t, t, [(lab, "sdpa[fused]") for lab in others])))
    parts.append(f"### {folder}: memory slope (log-log) from 2048 to 16384\n\n" + slopes(df, m))
    runs = pivot(df, "timed_runs") if "timed_runs" in df else None
    if runs is not None:
        parts.append(f"### {folder}: timed fwd+bwd runs per cell\n\n" + grid(runs, lambda v: "—" if math.isnan(v) else f"{v:.0f}"))
    return "\n\n".join(parts)


def slopes(df: pd.DataFrame, m: pd.DataFrame) -> str:
    """Endpoint slope 2048 -> 16384 beside the least-squares one the targets use."""
    rows = []
    for lab in m.index:
        if 2048 in m.columns and 16384 in m.columns and not m.loc[lab, [2048, 16384]].isna().any():
            end = math.log(m.loc[lab, 16384] / m.loc[lab, 2048]) / math.log(16384 / 2048)
            rows.append([lab, f"{end:.2f}", f"{targets.memory_slope(df, lab):.2f}"])
    return table(["attention", "endpoints 2048 -> 16384", "least squares 2k-16k"], rows)


def step_section() -> str:
    df = load("cpu-step")
    ok = df[(df["status"] == "ok") & (df["seq_len"] == 512)].set_index("label")
    meta = machine("cpu-step")
    roof = meta["roofline"]["fp32_gflops"]
    settings = BenchSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["settings"].items()})
    b = int(ok["batch"].iloc[0])
    flops = encoder_step_flops(b, 512, settings.d_model, settings.n_layers, settings.d_ff, exact_attention=True) / 1e9
    rows = [[lab, fmt(r.fwd_ms), fmt(r.fwdbwd_ms), fmt(r.fwdbwd_tokens_per_s), fmt(r.fwdbwd_peak_MiB), f"{r.timed_runs:.0f}"]
            for lab, r in ok.reindex([x for x in ORDER if x in ok.index]).iterrows()]
    out = ["### cpu-step: N=512, batch %d\n\n" % b + table(
        ["attention", "forward ms", "training step ms", "tokens/s", "step extra peak MiB", "timed runs"], rows)]
    roof_rows = [[r["label"], f"{r['achieved_gflops']:.1f} GFLOP/s", f"{100 * r['fraction']:.1f} %",
                  f"{100 * r['achieved_gflops'] / 165:.1f} %"]
                 for r in targets.roofline_rows(df, {**meta["roofline"], "status": "ok"}, settings)]
    out.append(f"### roofline: {flops:.1f} GFLOP per step; measured fp32 roofline {roof:.1f} GFLOP/s\n\n"
               + table(["attention", "achieved", "of measured roofline", "of the issue's 165"], roof_rows))
    rules: dict[str, list[str]] = {}
    for r in targets.cost_rules(df):
        rules.setdefault(r["label"], [r["label"]]).append(
            f"time {-100 * r['time_cut']:+.0f} %, memory {-100 * r['mem_cut']:+.0f} %: **{'holds' if r['holds'] else 'no'}**")
    out.append("### cost rules at N=512\n\n" + table(["rule", "vs sdpa[fused]", "vs sdpa[explicit]"],
                                                      [rules[lab] for lab in ORDER if lab in rules]))
    return "\n\n".join(out)


def bf16_section() -> str:
    """bf16 autocast against fp32 for the same step, the fp32 run right after the bf16 one."""
    if not (ROOT / "cpu-step-bf16" / "fp32" / "results.csv").exists():
        return ""
    runs = {dt: load(folder).query("status == 'ok'").set_index("label")
            for dt, folder in (("bf16", "cpu-step-bf16"), ("fp32", "cpu-step-bf16/fp32"))}
    labels = [lab for lab in ORDER if lab in runs["bf16"].index and lab in runs["fp32"].index]
    rows = []
    for lab in labels:
        b, f = runs["bf16"].loc[lab], runs["fp32"].loc[lab]
        rows.append([lab, fmt(f.fwdbwd_ms), fmt(b.fwdbwd_ms), f"{f.fwdbwd_ms / b.fwdbwd_ms:.2f}x",
                     fmt(f.fwdbwd_peak_MiB), fmt(b.fwdbwd_peak_MiB), f"{b.fwdbwd_peak_MiB / f.fwdbwd_peak_MiB:.2f}"])
    return "### cpu-step-bf16: training step N=512, fp32 vs bf16 autocast\n\n" + table(
        ["attention", "fp32 ms", "bf16 ms", "speed-up", "fp32 extra peak MiB", "bf16 extra peak MiB", "memory bf16 / fp32"],
        rows)


def train_section() -> str:
    df = load("cpu-train", "train.csv")
    sav = df[df["suite"] == "savers"].copy()
    sav["attention"] = sav["label"].str.split(" ").str[0]
    sav["mode"] = sav["label"].str.split(" ").str[1]
    modes = ["plain", "checkpointing", "accumulation", "checkpointing+accumulation"]
    out = []
    for col, what in (("fwdbwd_peak_MiB", "extra peak MiB"), ("fwdbwd_ms", "step ms")):
        rows = []
        for att, g in sav.groupby("attention", sort=False):
            g = g.set_index("mode")
            base = g.loc["plain", col]
            rows.append([att] + [fmt(g.loc[mo, col]) + ("" if mo == "plain" else f" ({100 * (g.loc[mo, col] / base - 1):+.0f} %)")
                                 for mo in modes])
        out.append(f"### savers: {what}\n\n" + table(["attention"] + modes, rows))
    long = df[df["suite"] == "train"]
    cap = machine("cpu-train")["settings"]["mem_cap_gib"] * 1024
    rows = []
    for lab, g in long.groupby("label", sort=False):
        g = g.set_index("seq_len")
        cells = [fmt(g.loc[n, "fwdbwd_peak_MiB"]) if g.loc[n, "status"] == "ok" else g.loc[n, "status"] for n in g.index]
        top = g.index.max()
        fits = all(g["status"] == "ok") and g["fwdbwd_peak_MiB"].max() <= cap
        rows.append([lab] + cells + [f"{g.loc[top, 'fwdbwd_ms'] / 1000:.1f}", "PASS" if fits else "FAIL"])
    ns = sorted(long["seq_len"].unique())
    out.append("### long training: extra peak MiB\n\n" + table(
        ["attention"] + [f"N={n}" for n in ns] + [f"step s at {ns[-1]}", f"within {cap / 1024:g} GiB"], rows))
    return "\n\n".join(out)


def thp_section() -> str:
    cells = {}
    for thp in (0, 1):
        df = load(f"cpu-layer-thp{thp}")
        cells[thp] = (pivot(df, "fwdbwd_ms"), pivot(df, "fwdbwd_peak_MiB"))
    t0 = cells[0][0]
    rows = [[lab] + [f"{fmt(cells[thp][0].loc[lab, n])} / {fmt(cells[thp][1].loc[lab, n])}"
                     for n in t0.columns for thp in (0, 1)] for lab in t0.index]
    head = ["attention"] + [f"N={n}, THP {thp}" for n in t0.columns for thp in (0, 1)]
    return "### THP A/B: fwd+bwd ms / extra peak MiB\n\n" + table(head, rows)


def machine_section() -> str:
    rows = []
    for part in ("cpu-layer", "cpu-step", "cpu-step-bf16", "cpu-step-bf16/fp32", "cpu-train", "cpu-fidelity-qk0.5",
                 "cpu-layer-thp0", "cpu-layer-thp1", "cpu-layer-breakeven"):
        if not (ROOT / part / "machine.json").exists():
            continue
        m = machine(part)
        r = m.get("roofline") or {}
        roof = f"{r['fp32_gflops']:.0f} GFLOP/s" if r else "(not measured)"
        small = (f"{r['fp32_small_gflops']:.0f} / {r['bf16_small_gflops']:,.0f} / {r['fp16_small_gflops']:.0f}"
                 if r else "—")
        la0, la1 = m.get("load_average_start"), m.get("load_average_end")
        rows.append([part, m["date_utc"][11:19], f"{la0[0]:.2f} -> {la1[0]:.2f}" if la0 and la1 else "?", roof, small,
                     m["git_commit"]])
    return "### machine per part\n\n" + table(
        ["part", "started (UTC)", "load 1-min start -> end", "fp32 roofline", "fp32 / bf16 / fp16 at 512^3", "commit"], rows)


def main() -> None:
    sections = [machine_section(), layer_section("cpu-layer"), layer_section("cpu-layer-breakeven"),
                layer_section("cpu-fidelity-qk0.5"), step_section(), bf16_section(), train_section(), thp_section()]
    print("\n\n".join(s for s in sections if s))


if __name__ == "__main__":
    main()
