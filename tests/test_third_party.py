"""A throwaway plugin under tests/ is pip-installed into a throwaway target folder (never into the running
environment), found through its entry point, used from YAML; core untouched."""
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).parent

SCRIPT = textwrap.dedent("""
    import sys, torch, effx
    from effx.config import ExperimentConfig, load_experiment
    cfg = load_experiment(sys.argv[1])
    model = effx.build_model(cfg.model, cfg.head)
    ids = torch.randint(0, 50, (2, 12)); mask = torch.ones(2, 12, dtype=torch.bool); mask[1, 8:] = False
    out = model(ids, mask); out.sum().backward()
    att = model.encoder.blocks[0].attn.attention
    print(type(att).__module__, tuple(out.shape), all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None))
    try:
        effx.build_model(cfg.model.__class__(**{**{a: getattr(cfg.model, a) for a in ('vocab_size','d_model','n_layers','n_heads','d_ff')},
            'attention': cfg.model.attention, 'positional': effx.config.PositionalSpec('relative')}), cfg.head)
    except effx.CapabilityError as exc:
        print('CAP', exc)
""")

YAML = """
model: {vocab_size: 50, d_model: 32, n_layers: 1, n_heads: 2, d_ff: 64,
        attention: {type: toy_linear, eps: 1.0e-5}, positional: {type: rope}}
head: {type: classification, num_classes: 3}
"""


def pip(*args):
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
                          capture_output=True, text=True)


def with_site(site: Path | None) -> dict:
    """The environment of a child interpreter that also sees the packages installed in ``site``."""
    env = dict(os.environ)
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [env.get("PYTHONPATH")])])
    return env


def listed_plugins(site: Path | None) -> str:
    return subprocess.run([sys.executable, "-m", "effx_cli.main", "plugins"], capture_output=True, text=True,
                          env=with_site(site), timeout=120).stdout


@pytest.mark.slow  # a pip install and three fresh interpreters: about a minute
def test_third_party_plugin_install_use_uninstall(tmp_path):
    src, site = tmp_path / "plugin", tmp_path / "site"
    shutil.copytree(HERE / "third_party_plugin", src)
    res = pip("install", "--no-build-isolation", "--no-deps", "--target", str(site), str(src))
    assert res.returncode == 0, res.stderr
    (tmp_path / "exp.yaml").write_text(YAML)
    (tmp_path / "run.py").write_text(SCRIPT)
    run = subprocess.run([sys.executable, str(tmp_path / "run.py"), str(tmp_path / "exp.yaml")],
                         capture_output=True, text=True, timeout=120, env=with_site(site))
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "effx_toy_attention (2, 3) True"
    assert lines[1].startswith("CAP attention 'toy_linear' (effx-toy-attention) does not support positional "
                               "encoding 'relative' (effx-positional")
    assert "toy_linear" in listed_plugins(site)
    assert "toy_linear" not in listed_plugins(None)  # the running environment never saw it
