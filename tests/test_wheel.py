"""effx as a user gets it: a wheel built from this tree, installed with the in-repo plugins into a fresh
virtual environment, runs ``effx init`` and ``effx validate`` from a folder outside the source checkout
(templates and the shipped sample are package data, not paths into the checkout)."""
from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PLUGINS = ("attention_sdpa", "positional")


def _run(*args, **kw) -> subprocess.CompletedProcess:
    out = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, **kw)
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def _clean_env(**extra: str) -> dict:
    """No PYTHONPATH (it could route imports back to the checkout) and offline W&B/Hub."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "EFFX_WT", "EFFX_ROOT", "EFFX_LOAD_PLUGINS")}
    return {**env, "WANDB_MODE": "disabled", "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", **extra}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A venv (torch and the other dependencies come from the system site-packages) holding effx and two
    plugins installed from freshly built wheels; returns its ``bin`` folder."""
    base = tmp_path_factory.mktemp("wheel")
    wheels = base / "wheels"
    for src in (REPO, *(REPO / "plugins" / p for p in PLUGINS)):
        _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", wheels, src,
             cwd=base, env=_clean_env())
    env_dir = base / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=False)
    py = env_dir / "bin" / "python"
    _run(py, "-m", "pip", "install", "--no-deps", "--no-index", "-q", *sorted(wheels.glob("*.whl")),
         cwd=base, env=_clean_env())
    return env_dir / "bin"


@pytest.mark.slow
def test_wheel_installs_and_runs_init_and_validate_outside_the_checkout(installed, tmp_path):
    env = _clean_env()
    where = _run(installed / "python", "-c", "import effx, effx_cli; print(effx.__file__); print(effx_cli.__file__)",
                 cwd=tmp_path, env=env).stdout.split()
    assert all(Path(w).is_relative_to(installed.parent) for w in where), where  # not the checkout's copy
    _run(installed / "effx", "init", "-exp", "demo", cwd=tmp_path, env=env)
    cfg_path = tmp_path / "pretrain" / "demo" / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    train = Path(cfg["data"]["train"])
    assert train.is_file() and train.is_relative_to(installed.parent), train  # the wheel's own sample
    out = _run(installed / "effx", "validate", cfg_path, cwd=tmp_path, env=env)
    assert "sdpa" in out.stdout, out.stdout
    _run(installed / "effx", "init", "-exp", "demo", "--finetune", cwd=tmp_path, env=env)
    _run(installed / "effx", "validate", tmp_path / "finetune" / "demo" / "config.yaml", cwd=tmp_path, env=env)


def test_importing_the_source_folder_as_core_says_to_import_effx():
    out = subprocess.run([sys.executable, "-c", "import core"], cwd=REPO, capture_output=True, text=True,
                         env=_clean_env(), timeout=60)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError:") and "import effx" in last, out.stderr
