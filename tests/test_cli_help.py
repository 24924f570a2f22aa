"""``effx CMD --help`` stays fast: the CLI imports no heavy library until a command body runs.

A fresh interpreter imports the CLI and prints every command's help; the heavy libraries (torch and
the others a run needs) must still be absent from ``sys.modules`` afterwards. The wall time of one
such interpreter is checked too, with headroom for a loaded CI machine.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

HEAVY = ("torch", "pandas", "matplotlib", "wandb", "datasets", "sklearn", "tokenizers", "numpy")

PROBE = """
import json, sys
from click.testing import CliRunner
from effx_cli.main import cli
runner = CliRunner()
codes = {name: runner.invoke(cli, [name, "--help"] if name else ["--help"]).exit_code for name in ["", *cli.commands]}
print(json.dumps({"codes": codes, "heavy": sorted(m for m in %r if m in sys.modules)}))
""" % (HEAVY,)


def test_help_imports_no_heavy_library():
    res = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(out["codes"]) >= {"", "eval", "sweep", "bench", "pretrain", "finetune", "validate", "plugins"}
    assert all(code == 0 for code in out["codes"].values()), out["codes"]
    assert out["heavy"] == [], f"--help imported {out['heavy']}; move those imports into the command bodies"


def test_help_wall_time():
    """One `python -m effx_cli.main sweep --help` in a fresh process (torch alone takes seconds to import)."""
    best = min(_timed([sys.executable, "-m", "effx_cli.main", "sweep", "--help"]) for _ in range(3))
    assert best < 1.0, f"`effx sweep --help` took {best:.2f} s"


def _timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, capture_output=True, check=True, timeout=60)
    return time.perf_counter() - t0


SPEC_OPTIONS = ("exp", "pretrain", "resume", "ckpt", "compare")


def test_every_command_accepts_both_spellings_of_the_spec_options():
    """``-exp`` and ``--exp`` (likewise -pretrain, -resume, -ckpt, -compare) on every command that has it."""
    from effx_cli.main import cli as group

    seen = set()
    for name, cmd in group.commands.items():
        for param in cmd.params:
            for opt in SPEC_OPTIONS:
                if f"-{opt}" in param.opts or f"--{opt}" in param.opts:
                    assert {f"-{opt}", f"--{opt}"} <= set(param.opts), (name, param.opts)
                    seen.add(opt)
    assert seen == set(SPEC_OPTIONS)


def test_a_command_module_that_fails_to_import_is_an_error_not_a_missing_command():
    """A broken or missing command module must not silently drop its commands from ``effx``."""
    probe = ("import sys; sys.modules['effx_cli.commands_bench'] = None\n"
             "try:\n    import effx_cli.main\nexcept ImportError as exc:\n    print('raised', exc.name)\n"
             "else:\n    print('commands', sorted(effx_cli.main.cli.commands))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "raised effx_cli.commands_bench", out.stdout + out.stderr
