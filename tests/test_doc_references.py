"""Every repository path and every ``effx`` command the README and docs/*.md name must exist:
paths in the tree, subcommands in the CLI, options among that subcommand's options."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from effx_cli.main import cli

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
TREE_DIRS = ("core/", "cli/", "plugins/", "tests/", "scripts/", "docs/", "studies/", ".ci/", "data/sample/",
             "effx/", "effx_cli/")  # effx/ and effx_cli/ are package names: the tree has core/ and cli/
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
LINK = re.compile(r"\]\(([^)\s]+)\)")
PATHLIKE = re.compile(r"^[\w.\-/]+$")


def _spans(text: str) -> tuple[list[str], list[str]]:
    """(lines of fenced code blocks, continuation lines joined; inline code spans outside them)."""
    blocks = FENCE.findall(text)
    code = [ln for b in blocks for ln in b.replace("\\\n", " ").splitlines()]
    return code, INLINE.findall(FENCE.sub("", text))


def named_paths(doc: Path) -> list[str]:
    code, inline = _spans(doc.read_text(encoding="utf-8"))
    tokens = inline + [t for ln in code for t in re.split(r"[\s\"'=(),:]+", ln)]
    paths = {t.rstrip(".") for t in tokens if PATHLIKE.match(t) and t.startswith(TREE_DIRS) and "/" in t}
    return sorted(p for p in paths if not p.endswith("/...") and "<" not in p)


def _in_tree(path: str) -> bool:
    """A repository path, or a package path (``effx/...`` is ``core/...``, ``effx_cli/...`` is ``cli/...``),
    or a shipped-sample path as the templates write it (``data/sample/...``, resolved by ``effx init``
    against the installed package's ``effx/data/sample``)."""
    for prefix, tree in (("effx_cli/", "cli/"), ("effx/", "core/"), ("data/sample/", "core/data/sample/")):
        if path.startswith(prefix) and (REPO / (tree + path[len(prefix):])).exists():
            return True
    return (REPO / path).exists()


def linked_paths(doc: Path) -> list[Path]:
    out = []
    for target in LINK.findall(doc.read_text(encoding="utf-8")):
        if target.startswith(("http://", "https://", "#", "mailto:")):
            continue
        out.append((doc.parent / target.split("#")[0]).resolve())
    return out


def _segments(line: str) -> list[list[str]]:
    """``effx ...`` invocations in one shell line (after ``&&``, ``;``, ``|``, or ``-m effx_cli.main``)."""
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError:
        return []
    out, cur = [], None
    for tok in tokens:
        if tok in ("&&", ";", "|", "||") or tok.startswith((">", "<", "2>")):
            cur = None
        elif cur is not None:
            cur.append(tok)
        elif tok == "effx" or tok == "effx_cli.main":
            cur = []
            out.append(cur)
    return out


def named_commands(doc: Path) -> list[tuple[str, list[str]]]:
    code, inline = _spans(doc.read_text(encoding="utf-8"))
    lines = [ln.strip().removeprefix("$ ") for ln in code] + [s for s in inline if s.startswith("effx ")]
    return [(f"{doc.name}: {ln}", seg) for ln in lines for seg in _segments(ln) if seg and not seg[0].startswith("-")]


def _options(cmd: click.Command) -> set[str]:
    opts = {"-h", "--help"}
    for p in cmd.params:
        if isinstance(p, click.Option):
            opts |= set(p.opts) | set(p.secondary_opts)
    return opts


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_every_named_path_exists(doc):
    missing = [p for p in named_paths(doc) if not _in_tree(p)]
    missing += [str(p.relative_to(REPO)) for p in linked_paths(doc) if not p.exists()]
    assert not missing, f"{doc.name} names paths that are not in the tree: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_every_named_command_and_option_exists(doc):
    bad = []
    for where, (name, *args) in named_commands(doc):
        cmd = cli.commands.get(name)
        if cmd is None:
            bad.append(f"{where}: no command 'effx {name}'")
            continue
        opts = _options(cmd)
        for arg in args:
            if arg.startswith("-") and not re.match(r"^-\d", arg) and arg.split("=")[0] not in opts:
                bad.append(f"{where}: 'effx {name}' has no option {arg.split('=')[0]}")
    assert not bad, "\n".join(bad)


def test_the_scanner_sees_what_the_docs_name():
    """The checks above only mean something if the scanner finds paths and commands."""
    readme = REPO / "README.md"
    assert "scripts/main_job.sh" in named_paths(readme) and "data/sample/" in " ".join(named_paths(readme))
    cmds = {seg[0] for _, seg in named_commands(readme)}
    assert {"init", "pretrain", "finetune", "eval", "bench", "validate", "plugins"} <= cmds
    assert _segments("torchrun --nproc-per-node 2 -m effx_cli.main pretrain -exp x  # c") == [["pretrain", "-exp", "x"]]
