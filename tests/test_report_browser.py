"""The HTML report as a researcher sees it: headless Chromium renders report.html and the test reads
the rendered DOM (``--dump-dom``). The headline table and every PASS_WNF reason must be table cells."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from test_report_fabricated import make_run  # noqa: E402

from effx.eval import build_report  # noqa: E402

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER = next((b for b in map(shutil.which, BROWSERS) if b), None)
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    BROWSER is None, reason="no headless Chromium on PATH (tried chromium, chromium-browser, google-chrome); "
                            "install it with the system package manager, e.g. `apt-get install chromium`")]


class Tables(HTMLParser):
    """Every <table> of the rendered DOM: its class and its rows as lists of cell texts."""

    def __init__(self):
        super().__init__()
        self.tables: list[tuple[str, list[list[str]]]] = []
        self.pre = 0
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append((dict(attrs).get("class", ""), []))
        elif tag == "tr" and self.tables:
            self.tables[-1][1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "pre":
            self.pre += 1

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self.tables:
            self.tables[-1][1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data + " ")

    def table(self, cls: str) -> list[list[str]]:
        return next(rows for c, rows in self.tables if cls in c.split())


def render(page: Path) -> str:
    res = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    r = tmp_path_factory.mktemp("runs")
    for s, f1 in enumerate((0.900, 0.905, 0.908)):
        make_run(r, f"sdpa-s{s}", seed=s, f1=f1)
    for s, f1 in enumerate((0.895, 0.899, 0.901)):
        make_run(r, f"lsh-s{s}", seed=s, att="reformer_lsh", f1=f1, time=8.0, mem=900.0)
    make_run(r, "bal-s0", att="reformer_balanced", f1=0.880, time=9.5, mem=950.0)  # one seed, slow, worse
    make_run(r, "bal-s1", seed=1, att="reformer_balanced", status="failed", cause="out of memory at step 3",
             eval_json=False)
    make_run(r, "tfidf", kind="baseline", f1=0.85, time=2.0, mem=300.0, mem_kind="cpu_rss",
             device={"type": "cpu", "name": "x86"})
    rep = build_report(r, tmp_path_factory.mktemp("rep"))
    dom = Tables()
    dom.feed(render(rep.out / "report.html"))
    return rep, dom


def test_headline_table_comes_first_one_row_per_configuration(report):
    rep, dom = report
    assert dom.tables[0][0] == "headline"  # the first table on the page
    header, *rows = dom.table("headline")
    assert header[:5] == ["family", "configuration", "seq_len", "seeds", "macro_F1 mean ± std"]
    by_cfg = {r[1].split(" [")[0]: r for r in rows}
    assert sorted(by_cfg) == ["reformer_balanced/rope", "reformer_lsh/rope", "sdpa/rope", "tfidf_logreg"]
    assert by_cfg["sdpa/rope"][4] == "0.9043 ± 0.0040 ★"  # best mean marked; 4 decimals
    assert by_cfg["reformer_balanced/rope"][4] == "0.8800 ± n.a."  # one seed: the spread is unknown
    assert by_cfg["tfidf_logreg"][8] == "2.00 ★"  # fastest time/epoch marked, 2 decimals
    assert all("<NA>" not in c and "nan" not in c.lower().split() for r in rows for c in r)
    assert dom.pre == 0


def test_every_pass_wnf_reason_is_a_table_cell(report):
    rep, dom = report
    df = pd.read_csv(rep.out / "results.csv")
    header, *wnf = dom.table("wnf")
    assert header[1:4] == ["quality vs TF-IDF+LR", "gap to exact attention", "time or memory reduction"]
    cell = {(r[0].split(" [")[0], h): c for r in wnf for h, c in zip(header, r)}
    assert cell[("reformer_balanced/rope", "gap to exact attention")].startswith("FAIL measured: 2.43 pp below")
    assert "needs: ≤ 1.00 pp below exact attention" in cell[("reformer_balanced/rope", "gap to exact attention")]
    assert cell[("reformer_balanced/rope", "time or memory reduction")].startswith(
        "FAIL measured: time 5.0 % less, memory 5.0 % less than exact attention")
    _, *reasons = dom.table("reasons")
    got = {(r[0].split(" [")[0], r[1]): (r[2], r[3]) for r in reasons}
    names = {"wnf_vs_baseline": "quality vs TF-IDF+LR", "wnf_vs_exact": "gap to exact attention", "wnf_cost": "time or memory reduction",
             "wnf_seeds": "finished seeds", "wnf_spread": "seed spread", "wnf_no_failures": "no failed runs"}
    expected = {(f"{r.variant}/{r.positional}", names[c]) for r in df.itertuples() for c in names
                if getattr(r, c) == "FAIL" or str(getattr(r, c)).startswith("missing")}
    assert set(got) == expected and len(expected) >= 4
    for (cfg, crit), (verdict, reason) in got.items():
        assert reason, (cfg, crit)
        if verdict == "FAIL":
            assert "measured" in reason and "needs" in reason
    assert got[("reformer_balanced/rope", "no failed runs")] == ("FAIL", "measured 1 failed; needs 0 failed")
    assert got[("reformer_balanced/rope", "seed spread")] == ("missing", "fewer than 2 finished seeds")


def test_failed_runs_with_cause_and_wide_table_folded(report):
    rep, dom = report
    header, *rows = dom.table("failed")
    row = dict(zip(header, rows[0]))
    assert (row["experiment"], row["cause"]) == ("bal-s1", "out of memory at step 3")
    page = (rep.out / "report.html").read_text()
    assert re.search(r'<details><summary>Every column \(results.csv\)</summary>\s*<div class="scroll"><table', page)
    assert 'src="http' not in page and "<link" not in page  # self-contained
    assert "&lt;NA&gt;" not in page and "<pre>" not in page
