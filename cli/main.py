"""``effx`` - thin Click CLI. Heavy imports (torch) stay inside command bodies so --help is instant.

Every known user mistake (:class:`effx.errors.EffxError`) and every operating-system error (disk full,
read-only folder, ...) becomes ``Error: <one line>`` and exit 1.
"""
from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path


class _EarlyStop(BaseException):
    """SIGINT/SIGTERM before a command took over signal handling."""


def _early_stop(signum, frame):
    signal.signal(signum, signal.SIG_IGN)  # one is enough: the command is stopping
    raise _EarlyStop(signum)


def _install_early_stop() -> dict:
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, _early_stop) for sig in (signal.SIGINT, signal.SIGTERM)}


if Path(sys.argv[0]).name == "effx":  # the console script: cover the imports below as well
    _install_early_stop()

import click  # noqa: E402


class EffxGroup(click.Group):
    """Turns EffxError into a one-line ClickException, wherever it is raised; a signal before a
    command handles signals itself ends it with one line and exit code 128 + the signal number."""

    def main(self, *args, **kwargs):
        old = _install_early_stop()
        try:
            return super().main(*args, **kwargs)
        except _EarlyStop as stop:
            name = signal.Signals(stop.args[0]).name
            click.echo(f"Interrupted by {name}; no file was left half-written", err=True)
            sys.exit(128 + stop.args[0])
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)

    def invoke(self, ctx: click.Context):
        from effx.errors import EffxError, os_error_message

        try:
            return super().invoke(ctx)
        except EffxError as exc:
            raise click.ClickException(str(exc)) from None
        except BrokenPipeError:
            raise
        except OSError as exc:  # disk full, read-only folder, a file given as --root, ...
            raise click.ClickException(os_error_message(exc)) from None


@click.group(cls=EffxGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="effx")
def cli() -> None:
    """effx: cost-efficient transformer text classifiers with pluggable attention."""


@cli.command("plugins")
@click.option("--kind", type=click.Choice(["attention", "positional", "head", "metric"]), default=None,
              help="Only list components of this kind.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins_cmd(kind: str | None, as_json: bool) -> None:
    """List every discovered component with its distribution, version and config fields."""
    from .plugins_view import describe

    click.echo(describe(kind, as_json))


@cli.command("validate")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--seq-len", type=int, default=None, help="Also run a forward pass at this length.")
def validate_cmd(config: str, seq_len: int | None) -> None:
    """Check a config file: keys, types and component names; build the model; optional dry forward."""
    from .validate import validate

    click.echo(validate(config, seq_len))


def _register_commands() -> None:
    """Attach the command modules (each lives in its own file under cli/); one that fails to import is an
    error of the installation, so it propagates instead of hiding its commands."""
    from . import commands_bench, commands_eval, commands_experiment

    for module in (commands_experiment, commands_eval, commands_bench):
        module.register(cli)


_register_commands()


def main() -> None:  # pragma: no cover
    cli(prog_name="effx")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
