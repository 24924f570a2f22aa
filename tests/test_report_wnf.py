"""PASS_WNF logic on hand-made configurations at and around every threshold."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from effx.eval.families import declared_families
from effx.eval.thresholds import CostThreshold, Thresholds, load_thresholds
from effx.eval.wnf import WNF_COLUMNS, add_pass_wnf, overall


def row(cid, family, f1, *, kind="finetune", time=100.0, mem=1000.0, n_seeds=3, n_failed=0, spread=0.005,
        arch="A", group="G", data="D"):
    return {"config_id": cid, "family": family, "kind": kind, "variant": family.lower(), "data_id": data,
            "arch_id": arch, "compare_group": "" if kind == "baseline" else group, "n_seeds": n_seeds,
            "n_failed": n_failed, "macro_F1_mean": f1, "macro_F1_spread": spread, "time_per_epoch_s": time,
            "max_gpu_mem_MiB": mem, "peak_rss_MiB": math.nan}


BASE = row("base", "TF-IDF+LR", 0.80, kind="baseline", n_seeds=1, spread=0.0)


def checks(*rows, th=None):
    df = add_pass_wnf(pd.DataFrame([BASE, *rows]), th or Thresholds())
    return df.set_index("config_id")


def test_defaults_file_matches_spec():
    th = load_thresholds()
    assert th == Thresholds()
    assert (th.quality.exact_min_gain_over_baseline_pp, th.quality.efficient_min_gain_over_baseline_pp,
            th.quality.efficient_max_drop_vs_exact_pp) == (5.0, 3.0, 1.0)
    families = declared_families()
    performer, reformer = (th.cost_for(f, families[f].cost_thresholds) for f in ("Performer", "Reformer"))
    assert (performer.min_time_reduction, performer.min_memory_reduction) == (0.20, 0.30)
    assert (reformer.min_time_reduction, reformer.min_memory_reduction) == (0.15, 0.25)
    assert th.cost_for("AnyOtherFamily") == th.cost["default"] == CostThreshold(0.20, 0.30)
    assert (th.stability.min_seeds, th.stability.max_spread_pp) == (3, 1.0)


@pytest.mark.parametrize("f1, expected", [(0.85, "PASS"), (0.8501, "PASS"), (0.8499, "FAIL"), (0.70, "FAIL")])
def test_sdpa_gain_over_baseline_at_5pp(f1, expected):
    got = checks(row("s", "SDPA", f1)).loc["s"]
    assert got["wnf_vs_baseline"] == expected
    assert got["wnf_vs_exact"] == got["wnf_cost"] == "n.a."
    assert got["PASS_WNF"] == expected
    assert got["ref_baseline"] == "base"


@pytest.mark.parametrize("family", ["Performer", "Reformer"])
@pytest.mark.parametrize("f1, base_ok, sdpa_ok", [
    (0.83, "PASS", "FAIL"),      # exactly +3 pp over baseline, 2 pp under SDPA
    (0.8299, "FAIL", "FAIL"),
    (0.84, "PASS", "PASS"),      # exactly 1 pp under SDPA 0.85
    (0.8399, "PASS", "FAIL"),
    (0.86, "PASS", "PASS"),      # better than SDPA
])
def test_efficient_quality_thresholds(family, f1, base_ok, sdpa_ok):
    got = checks(row("s", "SDPA", 0.85), row("x", family, f1, time=50.0)).loc["x"]
    assert (got["wnf_vs_baseline"], got["wnf_vs_exact"]) == (base_ok, sdpa_ok)
    assert got["ref_exact"] == "s"
    assert got["PASS_WNF"] == ("PASS" if base_ok == sdpa_ok == "PASS" else "FAIL")


@pytest.mark.parametrize("family, time, mem, expected", [
    ("Performer", 80.0, 1000.0, "PASS"),   # time exactly -20 %
    ("Performer", 80.1, 1000.0, "FAIL"),
    ("Performer", 100.0, 700.0, "PASS"),   # memory exactly -30 %
    ("Performer", 100.0, 700.5, "FAIL"),
    ("Performer", 85.0, 750.0, "FAIL"),    # good enough for Reformer, not for Performer
    ("Reformer", 85.0, 1000.0, "PASS"),    # time exactly -15 %
    ("Reformer", 85.1, 1000.0, "FAIL"),
    ("Reformer", 120.0, 750.0, "PASS"),    # memory exactly -25 % (slower is allowed)
    ("Reformer", 120.0, 751.0, "FAIL"),
])
def test_cost_thresholds_either_time_or_memory(family, time, mem, expected):
    got = checks(row("s", "SDPA", 0.86), row("x", family, 0.86, time=time, mem=mem)).loc["x"]
    assert got["wnf_cost"] == expected
    assert got["PASS_WNF"] == expected


def test_cost_uses_cpu_rss_when_no_gpu_figure():
    s = {**row("s", "SDPA", 0.86), "max_gpu_mem_MiB": math.nan, "peak_rss_MiB": 1000.0}
    x = {**row("x", "Performer", 0.86, time=100.0), "max_gpu_mem_MiB": math.nan, "peak_rss_MiB": 699.0}
    assert checks(s, x).loc["x", "wnf_cost"] == "PASS"


@pytest.mark.parametrize("n_seeds, spread, n_failed, seeds, spread_ok, fail_ok", [
    (3, 0.010, 0, "PASS", "PASS", "PASS"),     # spread exactly 1 pp
    (3, 0.0101, 0, "PASS", "FAIL", "PASS"),
    (2, 0.002, 0, "FAIL", "PASS", "PASS"),     # only 2 seeds
    (3, 0.002, 1, "PASS", "PASS", "FAIL"),     # a 4th seed hit NaN
    (1, 0.0, 0, "FAIL", "missing: fewer than 2 finished seeds", "PASS"),
])
def test_stability(n_seeds, spread, n_failed, seeds, spread_ok, fail_ok):
    got = checks(row("s", "SDPA", 0.90, n_seeds=n_seeds, spread=spread, n_failed=n_failed)).loc["s"]
    assert (got["wnf_seeds"], got["wnf_spread"], got["wnf_no_failures"]) == (seeds, spread_ok, fail_ok)


def test_edited_thresholds_change_the_verdict():
    th = Thresholds(stability=Thresholds().stability.__class__(min_seeds=2, max_spread_pp=1.0, allow_failed_runs=True))
    got = checks(row("s", "SDPA", 0.90, n_seeds=2, n_failed=1), th=th).loc["s"]
    assert (got["wnf_seeds"], got["wnf_no_failures"], got["PASS_WNF"]) == ("PASS", "PASS", "PASS")


def test_references_only_within_same_configuration_and_group():
    other_group = row("s2", "SDPA", 0.95, group="G2")          # different batch/seq_len/device
    other_arch = row("s3", "SDPA", 0.95, arch="B")             # e.g. other positional encoding
    other_data = row("b2", "TF-IDF+LR", 0.10, kind="baseline", data="D2", n_seeds=1)
    got = checks(other_group, other_arch, other_data, row("x", "Performer", 0.90, time=50.0)).loc["x"]
    assert got["wnf_vs_exact"].startswith("missing") and got["wnf_cost"].startswith("missing")
    assert got["ref_baseline"] == "base" and got["wnf_vs_baseline"] == "PASS"
    assert got["PASS_WNF"] == "INCOMPLETE"


def test_no_baseline_is_incomplete_and_baseline_row_is_na():
    df = add_pass_wnf(pd.DataFrame([row("s", "SDPA", 0.9), BASE | {"data_id": "other"}]), Thresholds())
    s, b = df.iloc[0], df.iloc[1]
    assert s["wnf_vs_baseline"].startswith("missing") and s["PASS_WNF"] == "INCOMPLETE"
    assert all(b[c] == "n.a." for c in WNF_COLUMNS) and b["PASS_WNF"] == "n.a."


def test_all_failed_configuration_fails():
    got = checks(row("s", "SDPA", math.nan, n_seeds=0, n_failed=3, spread=math.nan)).loc["s"]
    assert got["wnf_vs_baseline"] == "FAIL" and got["PASS_WNF"] == "FAIL"


def test_overall_precedence():
    assert overall({"a": "PASS", "b": "n.a."}) == "PASS"
    assert overall({"a": "missing: x", "b": "PASS"}) == "INCOMPLETE"
    assert overall({"a": "missing: x", "b": "FAIL"}) == "FAIL"


def test_a_third_party_family_is_held_to_the_default_cost_rule_or_its_own_entry(tmp_path):
    """A family no installed class declares is non-exact: compared with the exact run and held to
    ``cost.default`` (-20 % time or -30 % memory), or to its own ``cost.<family>`` entry."""
    rows = [row("s", "SDPA", 0.86), row("x", "toy_linear", 0.86, time=85.0, mem=1000.0)]
    got = checks(*rows).loc["x"]
    assert (got["ref_exact"], got["wnf_vs_exact"], got["wnf_cost"]) == ("s", "PASS", "FAIL")
    path = tmp_path / "th.yaml"
    path.write_text("cost:\n  toy_linear: {min_time_reduction: 0.15, min_memory_reduction: 0.5}\n")
    assert checks(*rows, th=load_thresholds(path)).loc["x", "wnf_cost"] == "PASS"


def test_declared_family_and_exactness_come_from_the_class():
    import effx
    from effx.eval.families import declared_families, family_of

    class Plain(effx.Attention):
        name = "plain_toy"

    class Grouped(effx.Attention):
        name = "grouped_toy"
        family = "Toys"
        exact = True
        cost_thresholds = {"min_time_reduction": 0.5}

    class Plugin:
        @effx.hookimpl
        def effx_attention_types(self):
            return [Plain, Grouped]

    reg = effx.load_registry(plugins=[Plugin()], autoload=False)
    assert family_of("plain_toy", registry=reg) == "plain_toy" and family_of("grouped_toy", registry=reg) == "Toys"
    assert family_of("not_installed", registry=reg) == "not_installed"
    fams = declared_families(reg)
    assert fams["Toys"].exact and not fams["plain_toy"].exact
    assert Thresholds().cost_for("Toys", fams["Toys"].cost_thresholds).min_time_reduction == 0.5
