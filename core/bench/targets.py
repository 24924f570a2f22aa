"""The targets of issue 6, evaluated from the rows of one run (never from numbers typed in).

* peers: at the largest N both ran (16384 in a full run), fwd+bwd speed-up of each effx Performer /
  Reformer type over performer-pytorch / reformer-pytorch, and the ratio of extra peak memory;
* break-even: the smallest N from which a type is faster (fwd+bwd) than fused sdpa at every
  larger measured N;
* memory slope: least-squares log-log slope of the fwd+bwd extra peak from N=2048 to 16384;
* roofline: matmul FLOPs of the encoder training step at N=512 over its time, as a fraction of
  the measured fp32 matmul throughput;
* cost rules (SPEC WNF-1) at N=512: Performer time <= -20 % or memory <= -30 % of sdpa,
  Reformer -15 % / -25 %, against each sdpa path.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .roofline import encoder_step_flops

FAMILIES = {"performer": ("performer-pytorch", 1.3, 1024, 0.20, 0.30),
            "reformer": ("reformer-pytorch", 1.5, 4096, 0.15, 0.25)}
FUSED = "sdpa[fused]"


def family(label: str) -> str | None:
    return next((f for f in FAMILIES if label.startswith(f)), None)


def _ok(df: pd.DataFrame, suite: str) -> pd.DataFrame:
    return df[(df["suite"] == suite) & (df["status"] == "ok")]


def _effx_labels(df: pd.DataFrame) -> list[str]:
    sub = df[(df["source"] == "effx") & (df["label"].map(family).notna())]
    return list(dict.fromkeys(sub["label"]))


def peer_rows(df: pd.DataFrame) -> list[dict]:
    """Every (effx type, peer, N) both measured: speed-up and memory ratio, fwd+bwd."""
    ok = _ok(df, "layer").set_index(["label", "seq_len"])
    out = []
    for label in _effx_labels(df):
        peer = FAMILIES[family(label)][0]
        for n in sorted({n for (lab, n) in ok.index if lab == label}):
            if (peer, n) not in ok.index:
                continue
            a, b = ok.loc[(label, n)], ok.loc[(peer, n)]
            out.append({"label": label, "peer": peer, "seq_len": n, "speedup": b.fwdbwd_ms / a.fwdbwd_ms,
                        "mem_ratio": a.fwdbwd_peak_MiB / b.fwdbwd_peak_MiB,
                        "effx_ms": a.fwdbwd_ms, "peer_ms": b.fwdbwd_ms,
                        "effx_mib": a.fwdbwd_peak_MiB, "peer_mib": b.fwdbwd_peak_MiB})
    return out


def break_even(df: pd.DataFrame, label: str, ref: str = FUSED) -> int | None:
    """Smallest N from which ``label`` beats ``ref`` at every larger N both measured."""
    ok = _ok(df, "layer")
    a = ok[ok["label"] == label].set_index("seq_len")["fwdbwd_ms"]
    b = ok[ok["label"] == ref].set_index("seq_len")["fwdbwd_ms"]
    common = sorted(set(a.index) & set(b.index))
    best = None
    for n in reversed(common):
        if a[n] < b[n]:
            best = n
        else:
            break
    return best


def memory_slope(df: pd.DataFrame, label: str, lo: int = 2048, hi: int = 16384) -> float | None:
    ok = _ok(df, "layer")
    g = ok[(ok["label"] == label) & ok["seq_len"].between(lo, hi)]
    if len(g) < 2:
        return None
    return float(np.polyfit(np.log(g["seq_len"]), np.log(g["fwdbwd_peak_MiB"].clip(lower=1e-3)), 1)[0])


def roofline_rows(df: pd.DataFrame, roofline: dict | None, settings) -> list[dict]:
    """Achieved matmul throughput of the N=512 training step for every exact (sdpa) row."""
    if not roofline or roofline.get("status") != "ok":
        return []
    ok = _ok(df, "step")
    out = []
    for r in ok[(ok["seq_len"] == 512) & (ok["exact"].astype(bool)) & (ok["source"] == "effx")].itertuples():
        flops = encoder_step_flops(r.batch, 512, settings.d_model, settings.n_layers, settings.d_ff, True)
        gflops = flops / (r.fwdbwd_ms / 1000) / 1e9
        out.append({"label": r.label, "batch": r.batch, "step_gflop": flops / 1e9, "step_ms": r.fwdbwd_ms,
                    "achieved_gflops": gflops, "roofline_gflops": roofline["fp32_gflops"],
                    "fraction": gflops / roofline["fp32_gflops"]})
    return out


HF_PEER, HF_SPEEDUP = "hf-bert", 1.3


def hf_rows(df: pd.DataFrame) -> list[dict]:
    """Every (effx step row, N) the HF BERT peer also ran: tokens/s ratio, training step and forward."""
    ok = _ok(df, "step").set_index(["label", "seq_len"])
    out = []
    for (label, n), r in ok.iterrows():
        if r["source"] != "effx" or (HF_PEER, n) not in ok.index:
            continue
        hf = ok.loc[(HF_PEER, n)]
        out.append({"label": label, "seq_len": n, "batch": r["batch"], "train_speedup": hf.fwdbwd_ms / r["fwdbwd_ms"],
                    "fwd_speedup": hf.fwd_ms / r["fwd_ms"], "effx_ms": r["fwdbwd_ms"], "hf_ms": hf.fwdbwd_ms,
                    "effx_fwd_ms": r["fwd_ms"], "hf_fwd_ms": hf.fwd_ms})
    return out


def cost_rules(df: pd.DataFrame, n: int = 512) -> list[dict]:
    """SPEC WNF-1 at N=512 on the training step: time or memory reduction against each sdpa path."""
    ok = _ok(df, "step")
    at = ok[ok["seq_len"] == n].set_index("label")
    refs = [lab for lab in at.index if lab.startswith("sdpa[")]
    out = []
    for label in at.index:
        fam = family(label)
        if fam is None:
            continue
        _, _, _, t_cut, m_cut = FAMILIES[fam]
        for ref in refs:
            dt = 1 - at.loc[label, "fwdbwd_ms"] / at.loc[ref, "fwdbwd_ms"]
            dm = 1 - at.loc[label, "fwdbwd_peak_MiB"] / at.loc[ref, "fwdbwd_peak_MiB"]
            out.append({"label": label, "vs": ref, "time_cut": dt, "mem_cut": dm, "time_rule": t_cut,
                        "mem_rule": m_cut, "holds": bool(dt >= t_cut or dm >= m_cut)})
    return out


def _pct(x: float) -> str:
    return f"{100 * x:+.0f} %"


def evaluate(df: pd.DataFrame, roofline: dict | None, settings) -> list[dict]:
    """One line per target: what was measured, and met / not met / not measured."""
    lines = []
    peers = peer_rows(df)
    layer = bool((df["suite"] == "layer").any())
    for label in _effx_labels(df) if layer else []:
        peer, need, even_target, _, _ = FAMILIES[family(label)]
        mine = [p for p in peers if p["label"] == label]
        if mine:
            top = mine[-1]
            met = top["speedup"] >= need and top["mem_ratio"] <= 1.0
            lines.append({"target": f"{label} >= {need}x faster than {peer} at N={top['seq_len']} fwd+bwd, "
                                    "no more peak memory",
                          "measured": f"{top['speedup']:.2f}x ({top['effx_ms']:.0f} vs {top['peer_ms']:.0f} ms); "
                                      f"memory {top['mem_ratio']:.2f}x ({top['effx_mib']:.0f} vs {top['peer_mib']:.0f} MiB)",
                          "met": "yes" if met and top["seq_len"] >= 16384 else ("no" if not met else "partly: N<16384")})
        even = break_even(df, label)
        lines.append({"target": f"{label} faster than {FUSED} (fwd+bwd) from N={even_target}",
                      "measured": f"from N={even}" if even else "never faster in the measured range",
                      "met": "yes" if even is not None and even <= even_target else "no"})
        slope = memory_slope(df, label)
        lines.append({"target": f"{label} peak memory linear in N (log-log slope <= 1.1, 2k-16k)",
                      "measured": "not measured" if slope is None else f"slope {slope:.2f}",
                      "met": "not measured" if slope is None else ("yes" if slope <= 1.1 else "no")})
    for peer in dict.fromkeys(df[(df["source"] == "peer") & (df["suite"] == "layer")]["label"]):
        even = break_even(df, peer)
        lines.append({"target": f"(context) {peer} faster than {FUSED} (fwd+bwd)",
                      "measured": f"from N={even}" if even else "never faster in the measured range", "met": "-"})
    for r in roofline_rows(df, roofline, settings):
        lines.append({"target": f"{r['label']} training step N=512 B={r['batch']}: >= 50 % of fp32 matmul roofline",
                      "measured": f"{r['achieved_gflops']:.0f} of {r['roofline_gflops']:.0f} GFLOP/s = "
                                  f"{100 * r['fraction']:.0f} %",
                      "met": "yes" if r["fraction"] >= 0.5 else "no"})
    for r in hf_rows(df):
        for what, key, ms in (("training step", "train_speedup", ("effx_ms", "hf_ms")),
                              ("forward", "fwd_speedup", ("effx_fwd_ms", "hf_fwd_ms"))):
            lines.append({"target": f"{r['label']} {what} N={r['seq_len']} B={r['batch']}: >= {HF_SPEEDUP}x "
                                    f"{HF_PEER} tokens/s",
                          "measured": f"{r[key]:.2f}x ({r[ms[0]]:.0f} vs {r[ms[1]]:.0f} ms)",
                          "met": "yes" if r[key] >= HF_SPEEDUP else "no"})
    for r in cost_rules(df):
        lines.append({"target": f"cost rule N=512: {r['label']} time <= -{100 * r['time_rule']:.0f} % or memory <= "
                                f"-{100 * r['mem_rule']:.0f} % vs {r['vs']}",
                      "measured": f"time {_pct(-r['time_cut'])}, memory {_pct(-r['mem_cut'])}",
                      "met": "yes" if r["holds"] else "no"})
    return lines
