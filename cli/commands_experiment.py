"""``effx init``, ``effx pretrain``, ``effx finetune``: thin wrappers over :mod:`effx.train`.

Both ``-exp`` and ``--exp`` (and ``-resume`` / ``--resume``, ``-pretrain``, ``-ckpt``) spellings work.
Experiments live under ``--root DIR`` / ``$EFFX_ROOT`` / the current directory.
"""
from __future__ import annotations

import signal
import sys

import click

ROOT_HELP = ("Folder holding pretrain/ and finetune/ (default: $EFFX_ROOT, else the current directory); "
             "relative data paths in configs are resolved against it.")
EXIT_SIGNAL_BASE = 128  # a run stopped by signal N exits with 128 + N (130 for SIGINT, 143 for SIGTERM)


def _root_option(f):
    return click.option("--root", "root", default=None, metavar="DIR", help=ROOT_HELP)(f)


def _exp_option(f):
    return click.option("-exp", "--exp", "exp", required=True, metavar="NAME", help="Experiment name.")(f)


@click.command("init")
@_exp_option
@click.option("--template", "template", default=None, metavar="PATH",
              help="YAML template (default: the built-in pretrain or finetune template).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a setting, e.g. --set model.d_model=64 (repeatable; values parsed as YAML).")
@click.option("--force", is_flag=True, help="Overwrite an existing config.yaml.")
@click.option("--finetune", is_flag=True, help="Create finetune/NAME/config.yaml (head, data, train settings only).")
@click.option("--no-pretrain", "no_pretrain", is_flag=True,
              help="With --finetune: also write model and tokenizer sections; `effx finetune -exp NAME` then "
                   "trains from a fresh initialisation, without a pretraining experiment.")
@_root_option
def init_cmd(exp, template, sets, force, finetune, no_pretrain, root):
    """Create pretrain/NAME/config.yaml (or finetune/NAME/config.yaml) with every default filled in."""
    from effx.train import init_experiment

    if no_pretrain and not finetune:
        raise click.ClickException("--no-pretrain is a finetune option; add --finetune")
    path = init_experiment(exp, root=root, template=template, sets=sets, force=force, finetune=finetune,
                           pretrained=not no_pretrain, recommend_dtype=True)
    click.echo(f"wrote {path}")
    kind = "finetune" if finetune else "pretrain"
    extra = " -pretrain PRE" if finetune and not no_pretrain else ""
    click.echo(f"next: edit it if you like, then run `effx {kind} -exp {exp}{extra}`")


@click.command("pretrain")
@_exp_option
@click.option("-resume", "--resume", "resume", is_flag=True, help="Continue from the latest good checkpoint.")
@click.option("--overwrite", is_flag=True, help="Delete this experiment's previous run (keeps config.yaml).")
@_root_option
def pretrain_cmd(exp, resume, overwrite, root):
    """Pretrain with masked-language modelling; writes everything into pretrain/NAME/."""
    def go():
        from effx.train import run_pretrain

        return run_pretrain(exp, root=root, resume=resume, overwrite=overwrite)

    _run(go, f"effx pretrain -exp {exp} -resume")


@click.command("finetune")
@_exp_option
@click.option("-pretrain", "--pretrain", "pretrain", default=None, metavar="PRE",
              help="Pretraining experiment whose architecture, tokenizer and weights are used. Without it the "
                   "model starts from scratch (the config needs model/tokenizer: `effx init --finetune --no-pretrain`).")
@click.option("-ckpt", "--ckpt", "ckpt", default="best", show_default=True, metavar="best|last|PATH",
              help="Which checkpoint of PRE to start from.")
@click.option("-resume", "--resume", "resume", is_flag=True, help="Continue from the latest good checkpoint.")
@click.option("--overwrite", is_flag=True, help="Delete this experiment's previous run (keeps config.yaml).")
@_root_option
def finetune_cmd(exp, pretrain, ckpt, resume, overwrite, root):
    """Finetune a classifier (from a pretraining checkpoint, or from scratch); writes into finetune/FT/."""
    if pretrain is None and ckpt != "best":
        raise click.ClickException("-ckpt picks a checkpoint of -pretrain PRE; pass -pretrain too")

    def go():
        from effx.train import run_finetune

        return run_finetune(exp, pretrain, ckpt, root=root, resume=resume, overwrite=overwrite)

    _run(go, f"effx finetune -exp {exp}" + (f" -pretrain {pretrain}" if pretrain else "") + " -resume")


def _run(fn, resume_cmd: str) -> None:
    """Run ``fn`` (a signal before the run handles signals itself is handled by the ``effx`` group)."""
    try:
        result = fn()
    except BaseException as exc:
        from effx.train import Interrupted

        if not isinstance(exc, Interrupted):
            raise
        hint = "run the command again" if exc.startup else f"continue with `{resume_cmd}`"
        click.echo(f"Interrupted: {exc}; {hint}", err=True)
        sys.exit(EXIT_SIGNAL_BASE + (exc.signum or signal.SIGINT))
    if not result.main:  # another rank of a torchrun job: rank 0 prints the summary
        return
    val = " ".join(f"{k}={v:.4f}" for k, v in result.validation.items() if isinstance(v, float))
    click.echo(f"finished at step {result.step}: validation {val}")
    click.echo(f"artefacts: {result.exp_dir}")
    if result.best_checkpoint:
        click.echo(f"best checkpoint: {result.best_checkpoint}")


def register(cli: click.Group) -> None:
    for cmd in (init_cmd, pretrain_cmd, finetune_cmd):
        cli.add_command(cmd)
