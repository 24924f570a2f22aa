"""The tree stays clean under the ruff configuration in pyproject.toml (CI runs this test)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_tree_is_clean_under_ruff():
    res = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(ROOT)],
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, f"ruff findings (fix them or justify an ignore in pyproject.toml):\n{res.stdout}{res.stderr}"
