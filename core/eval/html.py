"""One self-contained HTML report: inline CSS, the PNG plots embedded as base64, no external files.

Order: context, the headline table per comparison group, PASS_WNF per criterion with the reason for
every FAIL, plots side by side, failed runs, rankings, then the full results table folded away.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path

import attrs
import pandas as pd

from .families import versus_title
from .fmt import DASH, mean_std, missing, number, points, std_text
from .tables import memory_of
from .thresholds import Thresholds
from .time_to_target import group_target_of, target_legend
from .wnf_explain import CRITERIA, explain_row

INTERNAL = ["data_id", "arch_id"]  # grouping keys, not for readers
STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1300px;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{margin-top:1.8em;border-bottom:1px solid #ddd}h3{font-size:1.05em}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}
td,th{border:1px solid #ccc;padding:4px 7px;vertical-align:top}th{background:#f0f0f0;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.best{font-weight:bold;background:#eef7ee}
td.PASS{background:#e3f4e3}td.FAIL{background:#fbe3e3}td.na{background:#f5f5f5;color:#777}
td.missing{background:#fff4d6}td small{display:block;color:#555;font-size:11px}
.plots{display:flex;flex-wrap:wrap;gap:1em}.plots figure{margin:0;flex:1 1 480px}
.plots img{max-width:100%;height:auto;border:1px solid #eee}
.scroll{overflow-x:auto;max-width:100%}details{margin:1em 0}summary{cursor:pointer;font-weight:bold}
.legend span{display:inline-block;padding:2px 8px;margin-right:6px;border:1px solid #ccc}
"""


@attrs.frozen
class Page:
    title: str
    context: list[str]
    results: pd.DataFrame  # with the PASS_WNF columns
    failed: pd.DataFrame
    ranks: dict[str, pd.DataFrame]
    plots: dict[str, Path]
    thresholds: Thresholds
    metric: str = "macro_F1"


def esc(x) -> str:
    return html.escape(str(x))


def _cell(text: str, cls: str = "") -> str:
    return f'<td class="{cls}">{text}</td>' if cls else f"<td>{text}</td>"


def _table(header: list[str], rows: list[str], cls: str = "") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(f"<tr>{r}</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def config_label(r: pd.Series) -> str:
    """``variant/positional [config id]``; a configuration whose runs saved no config is named by its runs."""
    pos = f"/{r['positional']}" if r.get("positional") else ""
    name = r["variant"] if r.get("variant") else f"({r.get('failed_experiments') or 'no config saved'})"
    return f"{name}{pos} [{str(r['config_id'])[:4]}]"


# ----------------------------------------------------------------------------- headline
HEADLINE = [  # (heading, column or None, digits, best: max / min / None)
    ("mean ± std", "mean", 4, "max"), ("best seed", "best", 4, "max"), ("accuracy", "accuracy_mean", 4, "max"),
    ("AUROC", "AUROC_mean", 4, "max"), ("time/epoch [s]", "time_per_epoch_s", 2, "min"),
    ("train tokens/s", "train_tokens_per_s", 0, "max"), ("memory [MiB]", "memory_MiB", 1, "min"),
    ("time to target [s]", "time_to_target_total_s", 1, "min"), ("reached", "target_reached", 0, None),
]


def _best_values(part: pd.DataFrame) -> dict[str, float]:
    out = {}
    for _, col, _, how in HEADLINE:
        if how is None:
            continue
        vals = part[col].dropna() if col in part else pd.Series(dtype=float)
        if vals.nunique() > 1:  # a tie everywhere marks nothing
            out[col] = vals.max() if how == "max" else vals.min()
    return out


def _headline_row(r: pd.Series, part: pd.DataFrame, best: dict, metric: str) -> str:
    cells = [_cell(esc(r["family"])), _cell(esc(config_label(r))), _cell(number(r["seq_len"])),
             _cell(str(r["n_seeds"]), "num")]
    for _, col, digits, _ in HEADLINE:
        v = r.get(col, float("nan"))
        text = mean_std(v, r[f"{metric}_std"], r["n_seeds"], digits) if col == "mean" else number(v, digits)
        hit = col in best and not missing(v) and v == best[col]
        cells.append(_cell(esc(text) + (" ★" if hit else ""), "num best" if hit else "num"))
    ref = part.set_index("config_id")[f"{metric}_mean"]
    for key in ("ref_exact", "ref_baseline"):
        cells.append(_cell(points(r["mean"], ref.get(r[key], float("nan")) if r[key] else float("nan")), "num"))
    verdict = str(r["PASS_WNF"])
    cells.append(_cell(esc(verdict), _verdict_class(verdict)))
    return "".join(cells)


def headline(part: pd.DataFrame, metric: str) -> str:
    part = part.assign(mean=part[f"{metric}_mean"], best=part.get(f"{metric}_best", float("nan")),
                       memory_MiB=memory_of(part))
    best = _best_values(part)
    header = ["family", "configuration", "seq_len", "seeds", *[f"{metric} {h[0]}" if h[1] in ("mean", "best")
              else h[0] for h in HEADLINE], "Δ vs exact [pp]", "Δ vs TF-IDF+LR [pp]", "PASS_WNF"]
    rows = [_headline_row(r, part, best, metric) for _, r in part.iterrows()]
    return _table(header, rows, "headline")


def _legend(part: pd.DataFrame, drop_pp: float) -> str:
    return f'<p class="legend">{esc(target_legend(drop_pp, group_target_of(part)))}</p>'


def headlines(results: pd.DataFrame, metric: str, drop_pp: float = 2.0) -> list[str]:
    """One headline table per comparison group, the matching baselines in each, and the time-to-target
    legend (``drop_pp``: the margin below TF-IDF+LR)."""
    usable = results[results["n_seeds"] > 0]
    neural = usable[usable["kind"] != "baseline"]
    out = []
    for i, (_, part) in enumerate(neural.groupby("compare_group", sort=False), 1):
        base = usable[(usable["kind"] == "baseline") & usable["data_id"].isin(part["data_id"])]
        r, table = part.iloc[0], pd.concat([part, base])
        out += [f"<h3>Comparison group {i}: device {esc(r['device'])} · batch {number(r['batch_size'])} · "
                f"seq_len {number(r['seq_len'])} · tokenizer vocab {number(r['tokenizer_vocab_size'])}</h3>",
                headline(table, metric), _legend(table, drop_pp)]
    if neural.empty and not usable.empty:
        out += ["<h3>Baselines only</h3>", headline(usable, metric), _legend(usable, drop_pp)]
    return out or ["<p>No configuration has a finished run.</p>"]


# ----------------------------------------------------------------------------- PASS_WNF
def _verdict_class(verdict: str) -> str:
    if verdict in ("PASS", "FAIL"):
        return verdict
    return "na" if verdict == "n.a." else "missing"


def _wnf_cell(d) -> str:
    word = "missing" if d.verdict.startswith("missing") else d.verdict
    body = (f"<strong>{esc(word)}</strong><small>measured: {esc(d.measured)}</small>"
            f"<small>needs: {esc(d.threshold)}</small>")
    return _cell(body, _verdict_class(d.verdict))


def wnf_tables(results: pd.DataFrame, th: Thresholds, metric: str) -> list[str]:
    """PASS_WNF per criterion (verdict, measured value, threshold) and one row per FAIL with its reason."""
    rows, reasons = [], []
    for _, r in results[results["kind"] != "baseline"].iterrows():
        details = explain_row(results, r, th, metric)
        label = esc(config_label(r))
        rows.append(_cell(label) + "".join(_wnf_cell(d) for d in details.values())
                    + _cell(esc(r["PASS_WNF"]), _verdict_class(str(r["PASS_WNF"]))))
        reasons += [_cell(label) + _cell(esc(CRITERIA[k])) + _cell(esc(d.verdict.split(":")[0]),
                    _verdict_class(d.verdict)) + _cell(esc(d.reason)) for k, d in details.items() if d.reason]
    if not rows:
        return ["<p>No neural configuration: PASS_WNF applies to attention (neural) runs.</p>"]
    legend = ('<p class="legend"><span class="PASS" style="background:#e3f4e3">PASS</span>'
              '<span style="background:#fbe3e3">FAIL</span><span style="background:#f5f5f5">n.a. - does not apply '
              'to this family</span><span style="background:#fff4d6">missing - a reference run is absent</span>'
              "Each cell shows the measured value and the threshold it is held to. PASS_WNF is FAIL if any "
              "criterion fails, INCOMPLETE if one is missing.</p>")
    out = [legend, _table(["configuration", *CRITERIA.values(), "PASS_WNF"], rows, "wnf")]
    out.append("<h3>Why PASS_WNF is not PASS</h3>")
    out.append(_table(["configuration", "criterion", "verdict", "reason"], reasons, "reasons") if reasons
               else "<p>Every criterion passes or does not apply.</p>")
    return out


# ----------------------------------------------------------------------------- generic tables
def _digits(col: str) -> int:
    if col.endswith("tokens_per_s"):
        return 0
    if col.endswith("MiB"):
        return 1
    return 2 if col.endswith("_s") else 4


def frame_table(df: pd.DataFrame, cls: str = "") -> str:
    """A DataFrame as an HTML table: numbers right-aligned at a precision fitting the column, no ``<NA>``."""
    if df.empty:
        return "<p>None.</p>"
    rows = []
    for _, r in df.iterrows():
        cells = []
        for col in df.columns:
            v = r[col]
            if col.endswith("_std") and "n_seeds" in df:
                cells.append(_cell(esc(std_text(v, r["n_seeds"])), "num"))
            elif isinstance(v, float):
                cells.append(_cell(esc(number(v, _digits(col))), "num"))
            else:
                cells.append(_cell(DASH if missing(v) or v == "" else esc(v)))
        rows.append("".join(cells))
    return _table(list(map(str, df.columns)), rows, cls)


def _figure(stem: str, path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure id="{esc(stem)}"><img alt="{esc(stem)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{esc(path.name)}</figcaption></figure>")


def _thresholds(th: Thresholds) -> str:
    flat = pd.json_normalize(attrs.asdict(th)).iloc[0]
    return _table(["threshold", "value"], [_cell(esc(k)) + _cell(esc(v), "num") for k, v in flat.items()])


def render_html(page: Page) -> str:
    """The whole report page as one string."""
    m = page.metric
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(page.title)}</title>",
             f"<style>{STYLE}</style></head><body><h1>{esc(page.title)}</h1><ul>",
             *[f"<li>{esc(line)}</li>" for line in page.context], "</ul>",
             f"<h2>{esc(versus_title(page.results['family']) if 'family' in page.results else 'Comparison')}</h2>",
             "<p>Mean ± sample std over finished seeds (n.a. with one seed); ★ marks the best value in a column.</p>",
             *headlines(page.results, m, page.thresholds.quality.time_to_target_drop_pp), "<h2>PASS_WNF per criterion</h2>",
             *wnf_tables(page.results, page.thresholds, "macro_F1"), "<h2>Plots</h2>", '<div class="plots">',
             *[_figure(stem, path) for stem, path in page.plots.items()], "</div>",
             "<h2>Failed runs (excluded from every ranking)</h2>", frame_table(page.failed, "failed")]
    for name, df in page.ranks.items():
        parts += [f"<h2>Ranking by {esc(name.removeprefix('ranking_by_'))}</h2>",
                  f'<div class="scroll">{frame_table(df)}</div>']
    parts += ["<details><summary>Every column (results.csv)</summary>",
              f'<div class="scroll">{frame_table(page.results.drop(columns=INTERNAL, errors="ignore"))}</div>',
              "</details>",
              "<details><summary>Thresholds used</summary>", _thresholds(page.thresholds), "</details></body></html>"]
    return "\n".join(parts)
