"""``effx eval``, ``effx predict``, ``effx baseline``, ``effx sweep``: thin wrappers over :mod:`effx.eval`.

Both ``-exp`` and ``--exp`` spellings work; experiments live under ``--root`` / ``$EFFX_ROOT`` / cwd.
"""
from __future__ import annotations

import math
import sys

import click

ROOT_HELP = "Folder holding pretrain/, finetune/ and baseline/ (default: $EFFX_ROOT, else the current directory)."


def _root(f):
    return click.option("--root", "root", default=None, metavar="DIR", help=ROOT_HELP)(f)


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) and math.isfinite(v) else str(v)


@click.command("eval")
@click.option("-exp", "--exp", "exp", default=None, metavar="FT", help="Finetune experiment to evaluate.")
@click.option("-split", "--split", "split", type=click.Choice(["test", "validation"]), default=None,
              help="Split to score (default: test for -exp, validation for -compare).")
@click.option("-ckpt", "--ckpt", "ckpt", default="best", show_default=True, metavar="best|last|PATH")
@click.option("-compare", "--compare", "compare", default=None, metavar="DIR",
              help="Build a comparison report of every finetune run and baseline under DIR.")
@click.option("--metric", default="macro_F1", show_default=True, help="Ranking metric for -compare.")
@click.option("--out", default=None, metavar="REPORT_DIR", help="Report folder for -compare (default: DIR/report).")
@click.option("--thresholds", default=None, metavar="YAML", help="PASS_WNF thresholds (default: the packaged file).")
@_root
def eval_cmd(exp, split, ckpt, compare, metric, out, thresholds, root):
    """Score one experiment (-exp FT) or compare many (-compare DIR)."""
    if (exp is None) == (compare is None):
        raise click.UsageError("pass exactly one of -exp FT or -compare DIR")
    if compare is not None:
        from effx.eval import build_report

        rep = build_report(compare, out, metric=metric, split=split or "validation", thresholds=thresholds)
        usable = int((rep.results["n_seeds"] > 0).sum()) if not rep.results.empty else 0
        click.echo(f"{len(rep.results)} configuration(s), {usable} ranked, {len(rep.failed)} failed run(s) excluded")
        for name in ("results.csv", "report.html", "comparison.md", "reproduce.sh"):
            click.echo(f"  {rep.files[name]}")
        return
    from effx.eval import evaluate

    split = split or "test"
    res = evaluate(exp, split=split, ckpt=ckpt, root=root)
    if res["truncated"]:
        click.echo(f"Warning: {res['truncated']} of {res['n_examples']} text(s) were longer than data.max_length="
                   f"{res['max_length']} tokens and were truncated", err=True)
    click.echo(f"split {split}: scored {res['data']}")
    for line in res.get("warnings", []):
        click.echo(f"Warning: {line}", err=True)
    click.echo(f"{split}: " + " ".join(f"{k}={_fmt(v)}" for k, v in res["metrics"].items()))
    mem = res["memory_column"]
    click.echo(f"inference tokens/s={res['tokens_per_s']:.1f} {mem}={res[mem]:.1f} on {res['device']} "
               f"({res['n_examples']} examples, checkpoint {res['checkpoint']})")


@click.command("predict")
@click.option("-exp", "--exp", "exp", required=True, metavar="FT", help="Finetune experiment to predict with.")
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="CSV (text column), JSONL (text field) or plain text, one text per line.")
@click.option("--output", "output_path", required=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="Where to write predictions: .csv (default) or .jsonl.")
@click.option("--format", "fmt", type=click.Choice(["auto", "csv", "jsonl", "text"]), default="auto", show_default=True)
@click.option("--text-field", default=None,
              help="Column/field holding the text (default: the experiment's data.text_field).")
@click.option("-ckpt", "--ckpt", "ckpt", default="best", show_default=True, metavar="best|last|PATH")
@_root
def predict_cmd(exp, input_path, output_path, fmt, text_field, ckpt, root):
    """Classify new texts: label, label name and class probabilities per row."""
    from effx.eval import predict_file

    summary = predict_file(exp, input_path, output_path, ckpt=ckpt, root=root, fmt=fmt, text_field=text_field)
    for line in summary.warnings():
        click.echo(f"Warning: {line}", err=True)
    click.echo(f"{summary.rows} row(s) -> {summary.output}")
    click.echo(f"throughput ({summary.dtype}): {summary.texts_per_s:,.1f} texts/s, {summary.tokens_per_s:,.0f} tokens/s")


@click.command("baseline")
@click.option("-exp", "--exp", "exp", required=True, metavar="NAME", help="Baseline name (baseline/NAME/).")
@click.option("-like", "--like", "like", default=None, metavar="FT",
              help="Use the data settings, seed and label mapping of finetune experiment FT.")
@click.option("--config", "config_file", default=None, type=click.Path(dir_okay=False), metavar="YAML",
              help="A saved baseline config.yaml (e.g. from a report's configs/ folder).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a setting, e.g. --set data.train=data/train.csv --set logreg.C=4 (repeatable).")
@_root
def baseline_cmd(exp, like, config_file, sets, root):
    """TF-IDF (word 1-2-grams) + logistic regression on the same split as an experiment."""
    from effx.eval import make_config, run_baseline

    if like is None and config_file is None and not any(s.startswith("data.") for s in sets):
        raise click.UsageError("say which data: -like FT, --config YAML, or --set data.train=FILE ...")
    cfg, labels = make_config(like=like, sets=sets, config_file=config_file, root=root)
    results = run_baseline(exp, cfg, labels, root=root)
    for split, res in results.items():
        click.echo(f"{split}: " + " ".join(f"{k}={_fmt(v)}" for k, v in res["metrics"].items()))


@click.command("sweep")
@click.argument("spec", type=click.Path(exists=True, dir_okay=False))
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(min=1), help="Jobs run at the same time.")
@click.option("--job", "job", default=None, metavar="NAME",
              help="Run only this job, in this process (cluster array tasks).")
@click.option("--list", "list_jobs", is_flag=True, help="Print the planned jobs and experiments, run nothing.")
@click.option("--retry-failed", is_flag=True, help="Run experiments that failed earlier again.")
@_root
def sweep_cmd(spec, jobs, job, list_jobs, retry_failed, root):
    """Expand SPEC (grid / variants of settings) into experiments and run them, K jobs at a time."""
    from effx.eval.sweep import load_spec, plan, run_job, run_sweep
    from effx.train import resolve_root

    parsed, spec_dir = load_spec(spec)
    planned = plan(parsed)
    if list_jobs:
        for j in planned:
            click.echo(f"{j.name}{'' if j.pretrained else ' (no pretraining)'}: " + " ".join(f.name for f in j.finetunes)
                       + (" | baselines: " + " ".join(b for b, _ in j.baselines) if j.baselines else ""))
        return
    if job is not None:
        match = [j for j in planned if j.name == job]
        if not match:
            raise click.UsageError(f"no job {job!r} in {spec}; see `effx sweep {spec} --list`")
        ok = run_job(parsed, spec_dir, match[0], resolve_root(root), retry_failed, log=click.echo)
        sys.exit(0 if ok else 1)
    codes = run_sweep(spec, jobs=jobs, root=root, retry_failed=retry_failed, log=click.echo)
    sys.exit(0 if all(c == 0 for c in codes.values()) else 1)


def register(cli: click.Group) -> None:
    for cmd in (eval_cmd, predict_cmd, baseline_cmd, sweep_cmd):
        cli.add_command(cmd)
