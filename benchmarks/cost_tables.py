"""Print the cost tables of docs/BENCHMARKS.md from the files `benchmarks/bench_cost.sh` wrote.

    python benchmarks/cost_tables.py docs/bench/cost [--plot] [--reference docs/bench/cpu-layer] > /tmp/cost.md
    python benchmarks/cost_tables.py docs/bench/cost --plot --into docs/BENCHMARKS.md   # fills the marked section

Tables (each captioned with the command that produced it and the recorded uptime / CPU / affinity):
real-token throughput (AG News, IMDb), bf16 vs fp32 finetune (``--plot`` also draws the validation
macro-F1 curves into ``finetune-bf16/curve.png``), the HF BERT peer step, inference against HF's
forward, the Performer at 16k against the matmul roofline, the 16k layer against the PyPI peers
(speed-ups beside those of the reference layer run). A part whose files are missing is skipped
with one line saying so. Every number is read from a file; none is typed here. The goals are the
issue's bars, printed beside each figure.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pandas as pd

GOALS = {"real_token": 0.95, "hf_ratio": 1.3, "roofline": 0.60, "peer_drift": 0.10}
TOKEN_MODES = ("bucketed", "shuffled", "bucketed_padded")


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def met(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def caption(folder: Path, command: str | None = None) -> str:
    """The command that wrote ``folder`` and the uptime / CPU / affinity recorded around it."""
    cmd = command or _read(folder / "command.txt")
    stamps = _read(folder / "uptime.txt").splitlines()
    up = [s.split("load average:")[-1].strip() for s in stamps if s.startswith("uptime:")]
    info: dict[str, list[str]] = {}
    for s in stamps:
        key, _, value = s.partition(": ")
        if key in ("cpu", "affinity", "threads", "commit") and value not in info.setdefault(key, []):
            info[key].append(value)
    info = {k: " -> ".join(v) for k, v in info.items()}  # start value, and the end value where it changed
    started = next((s.split(" ", 1)[1] for s in stamps if s.startswith("start ")), "?")
    lines = [c.strip() for c in cmd.strip().splitlines() if c.strip()]
    half = len(lines) // 2
    if len(lines) == 4 and lines[half:] == [c.replace("fp32", "bf16") for c in lines[:half]]:  # the finetune pair
        lines[half:] = ["then the same with `fp32` -> `bf16`"]
    cmds = "; ".join(c if c.startswith("then ") else f"`{c}`" for c in lines)
    return (f"Command: {cmds}  \nRecorded: started {started}, load average {up[0] if up else '?'} at start, "
            f"{up[-1] if len(up) > 1 else '?'} at end; CPU {info.get('cpu', '?')}, affinity {info.get('affinity', '?')}, "
            f"{info.get('threads', '?')} torch thread(s), commit {info.get('commit', '?')}.")


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.exists() else ""


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def missing(title: str, path: Path) -> str:
    return f"### {title}\n\n(not measured: {path} is missing)"


# ----------------------------------------------------------------------------- (i) real tokens
def tokens_section(root: Path, name: str, title: str) -> str:
    path = root / name / "tokens.json"
    if not path.exists():
        return missing(f"Real-token throughput, {title}", path)
    res = _json(path)
    st, ln = res["settings"], res["lengths"]
    by = {(r["attention"], r["mode"]): r for r in res["rows"]}
    rows = []
    for att in st["types"]:
        fixed, buck = by[(att, "fixed")], by[(att, "bucketed")]
        rows.append([att, f"{fixed['real_tokens_per_s']:,.0f}", f"{buck['real_tokens_per_s']:,.0f}",
                     f"{buck['vs_fixed']:.1%}", " ".join(f"{x:.2f}" for x in buck["vs_fixed_per_pass"]),
                     met(buck["vs_fixed"] >= GOALS["real_token"]),
                     f"{by[(att, 'shuffled')]['vs_fixed']:.1%}", f"{by[(att, 'bucketed_padded')]['vs_fixed']:.1%}"])
    share = by[(st["types"][0], "bucketed")]
    head = ["attention", "fixed real tokens/s", "variable real tokens/s", "variable / fixed (median)", "per pass",
            f">= {GOALS['real_token']:.0%}", "not bucketed / fixed", "bucketed, padded compute / fixed"]
    return "\n\n".join([
        f"### Real-token throughput, {title}", caption(root / name, res["command"]),
        f"{ln['texts']} texts, max_length {st['max_length']}: mean length {ln['mean_len']:.1f}, median "
        f"{ln['median_len']:.0f}, p90 {ln['p90_len']:.0f}, {ln['truncated']} truncated; batch {st['batch']}, "
        f"{st['n_batches']} steps per mode and pass, {st['repeats']} passes; real share of the bucketed batches "
        f"{share['real_tokens'] / share['padded_tokens']:.1%}. Model {st['n_layers']} layers, d_model {st['d_model']}, "
        f"{st['heads']} heads, d_ff {st['d_ff']}, {st['dtype']}. Variable = length-bucketed batches (the default), "
        "unpadded encoder; fixed = the same number of full batches of max_length tokens.",
        md_table(head, rows)])


# ----------------------------------------------------------------------------- (ii) bf16 finetune
def finetune_curves(root: Path) -> dict[str, pd.DataFrame]:
    out = {}
    for dt in ("fp32", "bf16"):
        path = root / "finetune-bf16" / "finetune" / f"ft-{dt}" / "metrics.csv"
        if path.exists():
            df = pd.read_csv(path)
            out[dt] = df[df["split"] == "validation"].dropna(subset=["macro_F1"]).sort_values("step")
    return out


def finetune_section(root: Path, plot: bool) -> str:
    folder = root / "finetune-bf16"
    curves = finetune_curves(root)
    if set(curves) != {"fp32", "bf16"}:
        return missing("bf16 vs fp32 finetune, AG News", folder / "finetune" / "ft-{fp32,bf16}" / "metrics.csv")
    steps = sorted(set(curves["fp32"]["step"]) | set(curves["bf16"]["step"]))
    f1 = {dt: c.set_index("step")["macro_F1"] for dt, c in curves.items()}
    rows = [[int(s)] + [f"{f1[dt][s]:.4f}" if s in f1[dt].index else "—" for dt in ("fp32", "bf16")]
            + [f"{f1['bf16'][s] - f1['fp32'][s]:+.4f}" if s in f1["fp32"].index and s in f1["bf16"].index else "—"]
            for s in steps]
    wall = {dt: float(_read(folder / f"ft-{dt}.wall_s") or "nan") for dt in ("fp32", "bf16")}
    last = {dt: float(f1[dt].iloc[-1]) for dt in f1}
    best = {dt: float(f1[dt].max()) for dt in f1}
    train_s = {dt: float(c["wall_s"].max()) for dt, c in curves.items()}  # the trainer's clock at the last validation
    final = [[dt, f"{last[dt]:.4f}", f"{best[dt]:.4f}", f"{train_s[dt]:.0f}",
              "skipped" if math.isnan(wall[dt]) else f"{wall[dt]:.0f}"] for dt in ("fp32", "bf16")]
    speed = train_s["fp32"] / train_s["bf16"]
    if plot:
        plot_curves(curves, folder / "curve.png")
    return "\n\n".join([
        "### bf16 vs fp32 finetune, AG News (same seed, from scratch)", caption(folder),
        md_table(["step", "fp32 validation macro-F1", "bf16 validation macro-F1", "bf16 - fp32"], rows),
        md_table(["dtype", "final validation macro-F1", "best", "training wall s (metrics.csv)",
                  "wall s (whole finetune command)"], final),
        f"Final bf16 - fp32: {last['bf16'] - last['fp32']:+.4f} macro-F1; training wall fp32 / bf16: {speed:.2f}x. "
        f"Curve: `{folder / 'curve.png' if plot else '(run cost_tables.py with --plot)'}`."])


def plot_curves(curves: dict[str, pd.DataFrame], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for dt, c in curves.items():
        ax.plot(c["step"], c["macro_F1"], marker="o", label=dt)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("validation macro-F1")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------- (iii) HF peer
def hf_step_section(root: Path) -> str:
    path = root / "hf-step" / "hf-peer-ab.json"
    if not path.exists():
        return missing("HF BertForSequenceClassification peer: training step", path)
    res = _json(path)
    rows = [[r["dtype"], f"{r['n']} x {r['batch']}", f"{r['effx_step_ms']:.0f}", f"{r['hf_step_ms']:.0f}",
             f"{r['hf_step_ms'] / r['effx_step_ms']:.2f}x", met(r["hf_step_ms"] / r["effx_step_ms"] >= GOALS["hf_ratio"]),
             f"{r['effx_fwd_ms']:.0f}", f"{r['hf_fwd_ms']:.0f}", f"{r['hf_fwd_ms'] / r['effx_fwd_ms']:.2f}x"]
            for r in res["rows"]]
    return "\n\n".join([
        "### HF BertForSequenceClassification peer: training step", caption(root / "hf-step", res["command"]),
        f"transformers {res['transformers']}, torch {res['torch']}; 4 layers, d 256, 4 heads, d_ff 1024, vocab 8000, "
        f"fused AdamW; median of {res['reps']} runs, effx and HF alternating run by run in one process.",
        md_table(["dtype", "N x B", "effx step ms", "HF step ms", "step tokens/s effx / HF",
                  f">= {GOALS['hf_ratio']}x", "effx fwd ms", "HF fwd ms", "fwd effx / HF"], rows)])


def infer_section(root: Path) -> str:
    parts, rows, found = [], [], False
    for name, title in (("infer-agnews", "AG News test"), ("infer-imdb", "IMDb test")):
        path = root / name / "predict-hf-ab.json"
        if not path.exists():
            parts.append(f"({title}: not measured, {path} is missing)")
            continue
        found = True
        res = _json(path)
        ln = res["lengths"]
        for r in res["rows"]:
            ratio = r["effx_tokens_per_s"] / r["hf_tokens_per_s"]
            rows.append([title, res["max_length"], f"{ln['mean_len']:.0f}", r["dtype"], f"{r['effx_texts_per_s']:,.0f}",
                         f"{r['hf_texts_per_s']:,.0f}", f"{r['effx_tokens_per_s']:,.0f}", f"{r['hf_tokens_per_s']:,.0f}",
                         f"{ratio:.2f}x", met(ratio >= GOALS["hf_ratio"])])
        parts.append(f"{title}: " + caption(root / name, res["command"]) + f" ({ln['texts']} texts, batch {res['batch']})")
    if not found:
        return missing("Inference: effx prediction path vs HF forward", root / "infer-*" / "predict-hf-ab.json")
    head = ["data", "max_length", "mean tokens", "dtype", "effx texts/s", "HF texts/s", "effx tokens/s", "HF tokens/s",
            "effx / HF", f">= {GOALS['hf_ratio']}x"]
    return "\n\n".join(["### Inference: effx prediction path (effx predict / effx eval) vs HF forward"] + parts
                       + ["Real tokens only; length-sorted batches; second pass timed; effx and HF alternate batch by batch.",
                          md_table(head, rows)])


# ----------------------------------------------------------------------------- (iv), (v) 16k layer
def performer_flops(n: int, batch: int, heads: int, head_dim: int, features: int) -> float:
    """Matmul FLOPs of one FAVOR+ forward + backward: per head the q and k feature maps (N x Dh @ Dh x M),
    K'^T V (M x N @ N x Dh) and Q' (K'^T V) (N x M @ M x Dh), 2 FLOPs per multiply-add; backward 2x forward."""
    return 3.0 * 4 * 2 * batch * heads * n * features * head_dim


def performer_features() -> int:
    import effx

    return effx.load_registry().get("attention", "performer_favor").cls.Config().nb_features


def layer_frame(folder: Path) -> pd.DataFrame:
    df = pd.read_csv(folder / "results.csv")
    return df[(df["status"] == "ok") & (df["suite"] == "layer")]


def roofline_section(root: Path) -> str:
    folder = root / "layer16k"
    if not (folder / "results.csv").exists():
        return missing("Performer fwd+bwd at 16k against the matmul roofline", folder / "results.csv")
    meta = _json(folder / "machine.json")
    roof = meta["roofline"]["fp32_gflops"]
    m = performer_features()
    rows = []
    for r in layer_frame(folder).query("label == 'performer_favor'").itertuples():
        gflop = performer_flops(r.seq_len, r.batch, meta["settings"]["heads"], meta["settings"]["head_dim"], m) / 1e9
        achieved = gflop / (r.fwdbwd_ms / 1000)
        rows.append([r.seq_len, r.batch, f"{gflop:.1f}", f"{r.fwdbwd_ms:.0f}", f"{achieved:.0f}", f"{roof:.0f}",
                     f"{achieved / roof:.1%}", met(achieved / roof >= GOALS["roofline"])])
    return section(
        "### Performer (performer_favor) fwd+bwd against the matmul roofline", caption(folder, meta["command"]),
        f"{meta['settings']['heads']} heads x {meta['settings']['head_dim']}, fp32, {m} features (the default); "
        f"matmul FLOPs counted analytically (feature maps of q and k, K'^T V, Q'(K'^T V); backward = 2x forward); "
        f"roofline = best-of-5 {meta['roofline']['roofline_size']}^3 fp32 matmul measured in the same run "
        f"({meta['roofline'].get('threads', '?')} thread(s)).",
        ["N", "B", "GFLOP", "fwd+bwd ms", "achieved GFLOP/s", "roofline GFLOP/s", "of roofline",
         f">= {GOALS['roofline']:.0%}"], rows)


def section(title: str, cap: str, text: str, header: list[str], rows: list[list]) -> str:
    """One report section: heading, the command and load caption, an explanation and the table."""
    return "\n\n".join([title, cap, text, md_table(header, rows)])


def peer_speedups(folder: Path) -> dict[tuple[str, int], dict]:
    df = layer_frame(folder).set_index(["label", "seq_len"])
    out = {}
    for label, peer in (("performer_favor", "performer-pytorch"), ("reformer_lsh", "reformer-pytorch")):
        for (lab, n) in df.index:
            if lab == label and (peer, n) in df.index:
                a, b = df.loc[(label, n)], df.loc[(peer, n)]
                out[(label, n)] = {"peer": peer, "effx_ms": a.fwdbwd_ms, "peer_ms": b.fwdbwd_ms,
                                   "speedup": b.fwdbwd_ms / a.fwdbwd_ms, "mem": a.fwdbwd_peak_MiB / b.fwdbwd_peak_MiB}
    return out


def drift_verdict(drift: float) -> str:
    """Within the bar either way; a larger gain is reported as such (the bar guards against losing speed)."""
    if abs(drift) <= GOALS["peer_drift"]:
        return met(True)
    return met(True) + f" (faster by more than {GOALS['peer_drift']:.0%})" if drift > 0 else met(False)


def peers_section(root: Path, reference: Path) -> str:
    folder = root / "layer16k"
    if not (folder / "results.csv").exists():
        return missing("Attention layer at 16k against performer-pytorch / reformer-pytorch", folder / "results.csv")
    meta = _json(folder / "machine.json")
    now = peer_speedups(folder)
    ref = peer_speedups(reference) if (reference / "results.csv").exists() else {}
    rows = []
    for (label, n), r in sorted(now.items()):
        old = ref.get((label, n))
        drift = r["speedup"] / old["speedup"] - 1 if old else None
        rows.append([f"{label} vs {r['peer']}", n, f"{r['effx_ms']:.0f}", f"{r['peer_ms']:.0f}", f"{r['speedup']:.2f}x",
                     f"{r['mem']:.2f}", f"{old['speedup']:.2f}x" if old else "—",
                     f"{drift:+.1%}" if old else "—",
                     drift_verdict(drift) if old else "—"])
    missing_peers = sorted({"performer-pytorch", "reformer-pytorch"} - {r["peer"] for r in now.values()})
    note = f" Not measured (peer not installed): {', '.join(missing_peers)}." if missing_peers else ""
    return section(
        "### Attention layer fwd+bwd against performer-pytorch / reformer-pytorch", caption(folder, meta["command"]),
        f"B=1, {meta['settings']['heads']} x {meta['settings']['head_dim']}, fp32; peers {meta.get('peers', {})}. "
        f"Reference: `{reference}` ({_json(reference / 'machine.json')['settings']['threads'] if ref else '?'} "
        f"thread(s)); 'change' = this run's speed-up over the reference's; the bar is within "
        f"{GOALS['peer_drift']:.0%} (a larger drop fails; a larger gain is marked as such).{note}",
        ["pair", "N", "effx ms", "peer ms", "speed-up (peer / effx)", "memory effx / peer",
         "reference speed-up", "change", f"within {GOALS['peer_drift']:.0%}"], rows)


# ----------------------------------------------------------------------------- main
def render(root: Path, reference: Path, plot: bool = False) -> str:
    head = f"<!-- generated by: python benchmarks/cost_tables.py {root} -->"
    sections = [tokens_section(root, "tokens-agnews", "AG News (max_length 128)"),
                tokens_section(root, "tokens-imdb", "IMDb (max_length 512)"), finetune_section(root, plot),
                hf_step_section(root), infer_section(root), roofline_section(root), peers_section(root, reference)]
    return "\n\n".join([head] + sections) + "\n"


BEGIN, END = "<!-- cost-tables:begin -->", "<!-- cost-tables:end -->"


def fill(doc: Path, tables: str) -> None:
    """Replace what lies between the two markers of ``doc`` with ``tables`` (all else unchanged)."""
    text = doc.read_text(encoding="utf-8")
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise SystemExit(f"cost_tables: {doc} needs one '{BEGIN}' line followed by one '{END}' line")
    head, rest = text.split(BEGIN)
    tmp = doc.with_suffix(doc.suffix + ".tmp")
    tmp.write_text(head + BEGIN + "\n" + tables + END + rest.split(END, 1)[1], encoding="utf-8")
    tmp.replace(doc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path, nargs="?", default=Path("docs/bench/cost"))
    ap.add_argument("--reference", type=Path, default=Path("docs/bench/cpu-layer"),
                    help="layer run whose peer speed-ups the 16k rerun is compared with")
    ap.add_argument("--plot", action="store_true", help="also draw finetune-bf16/curve.png")
    ap.add_argument("--into", type=Path, help="also write the tables between the cost-tables markers of this file "
                                              "(docs/BENCHMARKS.md)")
    args = ap.parse_args()
    tables = render(args.root, args.reference, args.plot)
    if args.into:
        fill(args.into, tables)
    print(tables, end="")


if __name__ == "__main__":
    main()
