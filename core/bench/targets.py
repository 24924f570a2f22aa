"""The bench targets, evaluated from the rows of one run (never from numbers typed in).

What an attention is held to comes from its class (``bench_peers``, ``break_even_target``,
``family``, ``cost_thresholds``) and from the thresholds file; the exact reference is every
exact-attention row, its first (default) implementation variant for the break-even.

* peers: at the largest N both ran (16384 in a full run), fwd+bwd speed-up of each non-exact type
  over each peer it declares (against the peer's ``speedup_target``), and the ratio of extra peak memory;
* break-even: the smallest N from which a type is faster (fwd+bwd) than the exact reference at every
  larger measured N (against its ``break_even_target``);
* memory slope: least-squares log-log slope of the fwd+bwd extra peak from N=2048 to 16384;
* roofline: matmul FLOPs of the encoder training step at N=512 over its time, as a fraction of
  the measured fp32 matmul throughput;
* cost rules at N=512: each non-exact type's time or memory reduction against each exact path, by
  the family's rule (:meth:`effx.eval.thresholds.Thresholds.cost_for`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .roofline import encoder_step_flops


def attention_class(label: str):
    """The attention class of an effx row label (``type`` or ``type[variant]``); None if not installed."""
    from ..plugins import load_registry

    entry = load_registry().entries["attention"].get(label.partition("[")[0])
    return entry.cls if entry is not None else None


def _ok(df: pd.DataFrame, suite: str) -> pd.DataFrame:
    return df[(df["suite"] == suite) & (df["status"] == "ok")]


def _effx_labels(df: pd.DataFrame) -> list[str]:
    """Labels of the non-exact effx rows, in row order."""
    sub = df[(df["source"] == "effx") & ~df["exact"].astype(bool)]
    return list(dict.fromkeys(sub["label"]))


def exact_reference(df: pd.DataFrame, suite: str = "layer") -> str | None:
    """The label of the first exact effx row: the default path of the first exact attention."""
    sub = df[(df["source"] == "effx") & df["exact"].astype(bool) & (df["suite"] == suite)]
    return None if sub.empty else str(sub["label"].iloc[0])


def declared_peers(label: str) -> tuple:
    cls = attention_class(label)
    return cls.bench_peers if cls is not None else ()


def peer_rows(df: pd.DataFrame) -> list[dict]:
    """Every (effx type, declared peer, N) both measured: speed-up and memory ratio, fwd+bwd."""
    ok = _ok(df, "layer").set_index(["label", "seq_len"])
    out = []
    for label in _effx_labels(df):
        for peer in (p.label for p in declared_peers(label)):
            for n in sorted({n for (lab, n) in ok.index if lab == label}):
                if (peer, n) not in ok.index:
                    continue
                a, b = ok.loc[(label, n)], ok.loc[(peer, n)]
                out.append({"label": label, "peer": peer, "seq_len": n, "speedup": b.fwdbwd_ms / a.fwdbwd_ms,
                            "mem_ratio": a.fwdbwd_peak_MiB / b.fwdbwd_peak_MiB,
                            "effx_ms": a.fwdbwd_ms, "peer_ms": b.fwdbwd_ms,
                            "effx_mib": a.fwdbwd_peak_MiB, "peer_mib": b.fwdbwd_peak_MiB})
    return out


def break_even(df: pd.DataFrame, label: str, ref: str | None = None) -> int | None:
    """Smallest N from which ``label`` beats ``ref`` (default: the exact reference) at every larger N both measured."""
    ref = ref if ref is not None else exact_reference(df)
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


def largest_common_n(df: pd.DataFrame, label: str, ref: str) -> int | None:
    """The largest N at which both ``label`` and ``ref`` have a layer measurement."""
    ok = _ok(df, "layer")
    common = set(ok[ok["label"] == label]["seq_len"]) & set(ok[ok["label"] == ref]["seq_len"])
    return int(max(common)) if common else None


def break_even_verdict(even: int | None, target: int, top: int | None) -> str:
    """yes / no only where the run reached the target length; otherwise it was not measured."""
    if top is None:
        return "not measured"
    if top < target:
        return f"not measured: largest N measured is {top}"
    return "yes" if even is not None and even <= target else "no"


def distorted_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows whose forward alone took longer than forward+backward: the machine was busy while they ran."""
    ok = df[(df["status"] == "ok") & df["fwd_ms"].notna() & df["fwdbwd_ms"].notna()] if "fwd_ms" in df else df.iloc[0:0]
    return ok[ok["fwd_ms"] > ok["fwdbwd_ms"]]


def memory_slope(df: pd.DataFrame, label: str, lo: int = 2048, hi: int = 16384) -> float | None:
    ok = _ok(df, "layer")
    g = ok[(ok["label"] == label) & ok["seq_len"].between(lo, hi)]
    if len(g) < 2:
        return None
    return float(np.polyfit(np.log(g["seq_len"]), np.log(g["fwdbwd_peak_MiB"].clip(lower=1e-3)), 1)[0])


def roofline_rows(df: pd.DataFrame, roofline: dict | None, settings) -> list[dict]:
    """Achieved matmul throughput of the N=512 training step for every exact-attention row."""
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


def cost_rule(label: str):
    """The cost rule of an effx row's family, from the packaged thresholds file and its class."""
    from ..eval.thresholds import load_thresholds

    cls = attention_class(label)
    family = cls.family_name() if cls is not None else label.partition("[")[0]
    return load_thresholds().cost_for(family, cls.cost_thresholds if cls is not None else None)


def cost_rules(df: pd.DataFrame, n: int = 512) -> list[dict]:
    """The cost rules at N=512 on the training step: time or memory reduction against each exact path."""
    ok = _ok(df, "step")
    at = ok[ok["seq_len"] == n]
    refs = list(dict.fromkeys(at[(at["source"] == "effx") & at["exact"].astype(bool)]["label"]))
    labels = list(dict.fromkeys(at[(at["source"] == "effx") & ~at["exact"].astype(bool)]["label"]))
    at = at.set_index("label")
    out = []
    for label in labels:
        rule = cost_rule(label)
        for ref in refs:
            dt = 1 - at.loc[label, "fwdbwd_ms"] / at.loc[ref, "fwdbwd_ms"]
            dm = 1 - at.loc[label, "fwdbwd_peak_MiB"] / at.loc[ref, "fwdbwd_peak_MiB"]
            t_cut, m_cut = rule.min_time_reduction, rule.min_memory_reduction
            out.append({"label": label, "vs": ref, "time_cut": dt, "mem_cut": dm, "time_rule": t_cut,
                        "mem_rule": m_cut, "holds": bool(dt >= t_cut or dm >= m_cut)})
    return out


def slope_line(df: pd.DataFrame, label: str, lo: int = 2048, hi: int = 16384) -> dict:
    slope = memory_slope(df, label, lo, hi)
    ok = _ok(df, "layer")
    top = ok[(ok["label"] == label) & ok["seq_len"].between(lo, hi)]["seq_len"].max()
    met = "not measured" if slope is None else ("no" if slope > 1.1 else ("yes" if top >= hi else f"partly: N<={top}"))
    return {"target": f"{label} peak memory linear in N (log-log slope <= 1.1, 2k-16k)",
            "measured": "not measured" if slope is None else f"slope {slope:.2f}", "met": met}


def distortion_lines(df: pd.DataFrame) -> list[dict]:
    bad = distorted_rows(df)
    if bad.empty:
        return []
    rows = ", ".join(f"{r.suite} {r.label} N={r.seq_len}" for r in bad.itertuples())
    return [{"target": "timings consistent: forward faster than forward+backward in every row",
             "measured": f"{len(bad)} row(s) look load-distorted: {rows}",
             "met": "no: rerun on an idle machine before trusting these rows"}]


def _pct(x: float) -> str:
    return f"{100 * x:+.0f} %"


def _peer_lines(label: str, mine: list[dict]) -> list[dict]:
    """One line per declared peer with a speed-up target, at the largest N both ran."""
    lines = []
    for peer in declared_peers(label):
        rows = [p for p in mine if p["peer"] == peer.label]
        if not rows or peer.speedup_target is None:
            continue
        top, need = rows[-1], peer.speedup_target
        met = top["speedup"] >= need and top["mem_ratio"] <= 1.0
        lines.append({"target": f"{label} >= {need}x faster than {peer.label} at N={top['seq_len']} fwd+bwd, "
                                "no more peak memory",
                      "measured": f"{top['speedup']:.2f}x ({top['effx_ms']:.0f} vs {top['peer_ms']:.0f} ms); "
                                  f"memory {top['mem_ratio']:.2f}x ({top['effx_mib']:.0f} vs {top['peer_mib']:.0f} MiB)",
                      "met": "yes" if met and top["seq_len"] >= 16384 else ("no" if not met else "partly: N<16384")})
    return lines


def _break_even_lines(df: pd.DataFrame, label: str, ref: str | None) -> list[dict]:
    """The break-even target the class declares, or a context line when it declares none."""
    if ref is None:
        return []
    cls = attention_class(label)
    target = cls.break_even_target if cls is not None else None
    even = break_even(df, label, ref)
    measured = f"from N={even}" if even else "never faster in the measured range"
    if target is None:
        return [{"target": f"(context) {label} faster than {ref} (fwd+bwd)", "measured": measured, "met": "-"}]
    return [{"target": f"{label} faster than {ref} (fwd+bwd) from N={target}", "measured": measured,
             "met": break_even_verdict(even, target, largest_common_n(df, label, ref))}]


def evaluate(df: pd.DataFrame, roofline: dict | None, settings) -> list[dict]:
    """One line per target: what was measured, and met / not met / not measured."""
    lines = []
    peers = peer_rows(df)
    layer = bool((df["suite"] == "layer").any())
    ref = exact_reference(df)
    for label in _effx_labels(df) if layer else []:
        lines += _peer_lines(label, [p for p in peers if p["label"] == label])
        lines += _break_even_lines(df, label, ref)
        lines.append(slope_line(df, label))
    for peer in dict.fromkeys(df[(df["source"] == "peer") & (df["suite"] == "layer")]["label"]) if ref else []:
        even = break_even(df, peer, ref)
        lines.append({"target": f"(context) {peer} faster than {ref} (fwd+bwd)",
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
    lines += distortion_lines(df)
    for r in cost_rules(df):
        lines.append({"target": f"cost rule N=512: {r['label']} time <= -{100 * r['time_rule']:.0f} % or memory <= "
                                f"-{100 * r['mem_rule']:.0f} % vs {r['vs']}",
                      "measured": f"time {_pct(-r['time_cut'])}, memory {_pct(-r['mem_cut'])}",
                      "met": "yes" if r["holds"] else "no"})
    return lines
