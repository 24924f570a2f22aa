"""Reliability: corrupted checkpoints, one writer per experiment, no leftovers, signals, OS errors and
every bad input as one line - through the real ``effx`` console script where the user would see it.

Faults are injected into a real ``effx`` process with a short prelude (``python -c PRELUDE; cli()``):
a ``torch.save`` that is killed half-way, a disk that fills up, a signal at a chosen start-up moment.
The long versions (random kill -9 x 10, a real full tmpfs, a read-only mount) are scripts/faults.sh.
"""
from __future__ import annotations

import csv
import json
import re
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from test_train_helpers import ENV, ft_sets, losses, make_data, rows, set_env, tiny_sets  # noqa: E402

from effx.train import checkpoint as ckpt  # noqa: E402
from effx.train import init_experiment, run_finetune, run_pretrain  # noqa: E402

pytestmark = pytest.mark.slow  # subprocesses killed and restarted: minutes in all (full suite / CI only)

EFFX = [shutil.which("effx")] if shutil.which("effx") else [sys.executable, "-m", "effx_cli.main"]
STEPS = 8


def env_for(root: Path) -> dict:
    return {**os.environ, **ENV, "EFFX_ROOT": str(root)}


def effx(root: Path, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*EFFX, *args], env=env_for(root), capture_output=True, text=True, timeout=timeout)


def effx_injected(root: Path, prelude: str, *args: str, timeout: int = 120, wait: bool = True):
    """``effx ARGS`` in a process that first runs ``prelude`` (the fault to inject)."""
    code = textwrap.dedent(prelude) + "\nimport sys\nfrom effx_cli.main import cli\nsys.exit(cli(prog_name='effx'))\n"
    cmd = [sys.executable, "-c", code, *args]
    if not wait:
        return subprocess.Popen(cmd, env=env_for(root), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, env=env_for(root), capture_output=True, text=True, timeout=timeout)


def effx_in_process(root: Path, *args: str) -> subprocess.CompletedProcess:
    """The same ``cli`` object the console script runs, in this process (for the big bounds table)."""
    from click.testing import CliRunner

    from effx_cli.main import cli

    out = CliRunner().invoke(cli, list(args), env={**ENV, "EFFX_ROOT": str(root)})
    return subprocess.CompletedProcess(args, out.exit_code, out.stdout, out.stderr)


def one_error_line(res: subprocess.CompletedProcess, *needles: str) -> str:
    err = res.stderr.strip()
    assert res.returncode == 1, (res.returncode, res.stdout[-1500:], err[-1500:])
    assert "Traceback" not in err + res.stdout, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*") if p.is_file()} if folder.exists() else {}


def tmp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def events(exp: Path) -> list[dict]:
    return [json.loads(x) for x in (exp / "events.jsonl").read_text().splitlines()]


def status(exp: Path) -> dict:
    return json.loads((exp / "status.json").read_text())


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Data, settings, and an uninterrupted reference run (checkpoint every step)."""
    mp = pytest.MonkeyPatch()
    set_env(mp)
    root = tmp_path_factory.mktemp("rel")
    data = make_data(root / "data", n_train=64)
    test = Path(data["validation"]).with_name("test.csv")
    shutil.copy(data["validation"], test)
    data["test"] = str(test)
    sets = tiny_sets(data, True, **{"model.dropout": 0.1, "train.max_steps": STEPS, "checkpoint.every_steps": 1,
                                    "checkpoint.keep_last": 3, "checkpoint.every_epochs": None})
    init_experiment("ref", root=root, sets=sets)
    run_pretrain("ref", root=root)
    init_experiment("ft", root=root, finetune=True, sets=ft_sets(data, **{"train.max_steps": 2, "data.test": str(test)}))
    run_finetune("ft", "ref", "last", root=root)
    yield root, data, sets, losses(root / "pretrain" / "ref")
    mp.undo()


def new_run(base, tmp_path: Path, name: str = "run", **over) -> Path:
    _, data, sets, _ = base
    extra = [f"{k}={v}" for k, v in over.items()]
    init_experiment(name, root=tmp_path, sets=[*sets, *extra])
    return tmp_path / "pretrain" / name


def same_losses(exp: Path, ref: dict) -> None:
    got = losses(exp)
    assert list(got) == list(range(1, STEPS + 1))  # every step once: none lost, none duplicated
    np.testing.assert_allclose([got[s] for s in got], [ref[s] for s in got], rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- data integrity
def test_bit_flipped_checkpoint_is_detected_and_resume_falls_back(base, tmp_path):
    exp = new_run(base, tmp_path)
    assert effx(tmp_path, "pretrain", "-exp", "run").returncode == 0
    last = exp / "ckpt_last.pt"  # a hard link of ckpt_step8.pt: both are hit
    data = bytearray(last.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 16] = bytes(b ^ 0xFF for b in data[mid:mid + 16])
    last.write_bytes(bytes(data))
    with pytest.raises(ckpt.CheckpointError, match="no longer matches the digest") as exc:
        ckpt.load(ckpt.step_path(exp, STEPS))
    assert exc.value.reason == "corrupt" and "\n" not in str(exc.value)

    res = effx(tmp_path, "pretrain", "-exp", "run", "-resume")
    assert res.returncode == 0, res.stderr[-2000:]
    warned = [ln for ln in res.stderr.splitlines() if ln.startswith("WARNING")]
    assert len(warned) == 2 and all("digest" in w for w in warned), res.stderr  # ckpt_last, ckpt_step8
    ev = events(exp)
    assert [e["path"] for e in ev if e["event"] == "checkpoint_unusable"] == ["ckpt_last.pt", "ckpt_step8.pt"]
    assert [e["path"] for e in ev if e["event"] == "resume"] == ["ckpt_step7.pt"]
    same_losses(exp, base[3])  # step 8 retrained from step 7: the same loss as the reference run
    saved = [e["step"] for e in ev if e["event"] == "checkpoint"]
    assert saved == sorted(set(saved)), saved  # events.jsonl was truncated to step 7 before resuming
    assert ckpt.load(exp / "ckpt_last.pt")["position"]["step"] == STEPS


def test_kill_9_during_checkpoint_write_leaves_a_temp_file_that_resume_removes(base, tmp_path):
    exp = new_run(base, tmp_path)
    prelude = """
        import os, signal, torch
        _save = torch.save
        def save(obj, f, *a, **k):
            if obj.get("position", {}).get("step") == 5:  # half of step 5's checkpoint, then kill -9
                f.write(b"x" * 4096); f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            return _save(obj, f, *a, **k)
        torch.save = save
    """
    res = effx_injected(tmp_path, prelude, "pretrain", "-exp", "run")
    assert res.returncode == -signal.SIGKILL
    left = tmp_files(exp)
    assert len(left) == 1 and left[0].startswith(".ckpt_step5.pt."), left
    res = effx(tmp_path, "pretrain", "-exp", "run", "-resume")
    assert res.returncode == 0, res.stderr[-2000:]
    assert tmp_files(exp) == []
    assert [e["path"] for e in events(exp) if e["event"] == "resume"] == ["ckpt_last.pt"]
    assert any(e["event"] == "leftovers_removed" for e in events(exp))
    same_losses(exp, base[3])


def test_overwrite_removes_leftover_temp_files(base, tmp_path):
    exp = new_run(base, tmp_path)
    assert effx(tmp_path, "pretrain", "-exp", "run").returncode == 0
    (exp / ".ckpt_step3.pt.abc123.tmp").write_bytes(b"x" * 1000)
    (exp / ".metrics.csv.def456.tmp").write_text("partial")
    (exp / "notes.tmp").write_text("the user's own file")  # not ours: kept
    assert effx(tmp_path, "pretrain", "-exp", "run", "--overwrite").returncode == 0
    assert tmp_files(exp) == ["notes.tmp"]


def test_resume_says_a_checkpoint_was_refused_because_it_contains_code(base, tmp_path):
    import pickle

    exp = new_run(base, tmp_path)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (exp / "ckpt_last.pt").write_bytes(pickle.dumps({"format": ckpt.FORMAT, "x": Evil()}))
    res = effx(tmp_path, "pretrain", "-exp", "run", "-resume")
    line = one_error_line(res, "no usable checkpoint", "ckpt_last.pt refused: contains code")
    assert "corrupt" not in line and not marker.exists()


# ----------------------------------------------------------------------------- one writer
def test_second_writer_gets_the_holders_pid_and_a_stale_lock_never_blocks(base, tmp_path):
    from effx.train.lock import ExperimentLock

    exp = new_run(base, tmp_path)
    with ExperimentLock(exp, "pretrain/run"):  # this process is "the first run"
        res = effx(tmp_path, "pretrain", "-exp", "run")
        one_error_line(res, "pretrain/run is in use by process", str(os.getpid()))
    assert not (exp / "metrics.csv").exists()  # the refused run wrote nothing
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from effx.train.lock import ExperimentLock; "
                               f"l = ExperimentLock(Path({str(exp)!r}), 'x'); l.acquire(); print('held', flush=True); "
                               "time.sleep(60)"], env=env_for(tmp_path), stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()  # kill -9 while holding the lock
    holder.wait()
    res = effx(tmp_path, "pretrain", "-exp", "run")
    assert res.returncode == 0, res.stderr[-2000:]
    assert len(rows(exp)) == STEPS  # every row once


def test_two_runs_started_together_one_wins(base, tmp_path):
    exp = new_run(base, tmp_path)
    procs = [subprocess.Popen([*EFFX, "pretrain", "-exp", "run"], env=env_for(tmp_path), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 1], outs
    loser = outs[[p.returncode for p in procs].index(1)][1].strip()
    assert "\n" not in loser and (loser.startswith("Error: pretrain/run is in use by process")  # usually
                                  or "already has a run (status: finished)" in loser)  # the winner was done
    assert [int(r["step"]) for r in rows(exp)] == list(range(1, STEPS + 1))


# ----------------------------------------------------------------------------- eval ownership and data
def test_eval_refuses_other_experiments_and_pretraining_checkpoints(base, tmp_path):
    root, data, _, _ = base
    init_experiment("other", root=root, finetune=True, sets=ft_sets(data, **{"train.max_steps": 2}))
    before = snapshot(root / "finetune" / "other"), snapshot(root / "finetune" / "ft")
    theirs = root / "finetune" / "ft" / "ckpt_last.pt"
    one_error_line(effx(root, "eval", "-exp", "other", "-ckpt", str(theirs)),
                   "belongs to finetune/ft, not finetune/other")
    pre = root / "pretrain" / "ref" / "ckpt_last.pt"
    one_error_line(effx(root, "eval", "-exp", "ft", "-ckpt", str(pre)), "is a pretrain checkpoint of pretrain/ref")
    texts = tmp_path / "in.txt"
    texts.write_text("some news\n")
    one_error_line(effx(root, "predict", "-exp", "ft", "-ckpt", str(pre), "--input", str(texts), "--output",
                        str(tmp_path / "out.csv")), "is a pretrain checkpoint")
    assert (snapshot(root / "finetune" / "other"), snapshot(root / "finetune" / "ft")) == before
    assert not (tmp_path / "out.csv").exists()


def test_eval_scores_the_edited_config_and_says_which_file_and_warns_about_truncation(base, tmp_path):
    root, data, _, _ = base
    with open(data["validation"], newline="") as fh:
        recs = list(csv.DictReader(fh))[:10]
    edited = tmp_path / "edited_test.csv"
    with open(edited, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        w.writerows((" ".join([r["text"]] * 3), r["label"]) for r in recs)  # every text longer than 32 tokens
    path = root / "finetune" / "ft" / "config.yaml"
    original = path.read_text()
    cfg = yaml.safe_load(original)
    cfg["data"]["test"] = str(edited)
    path.write_text(yaml.safe_dump(cfg))
    try:
        res = effx(root, "eval", "-exp", "ft")
    finally:
        path.write_text(original)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"scored {edited} (data.test from config.yaml, edited since training)" in res.stdout
    assert res.stderr.strip() == ("Warning: 10 of 10 text(s) were longer than data.max_length=32 tokens and were "
                                  "truncated"), res.stderr
    result = json.loads((root / "finetune" / "ft" / "eval.json").read_text())["results"]["test"]
    assert result["n_examples"] == 10 and result["truncated"] == 10 and result["data_changed"] == ["test"]


# ----------------------------------------------------------------------------- signals
@pytest.mark.parametrize("sig,module,cls,attr,state", [
    (signal.SIGTERM, "effx.train.run", "Session", "_model", None),  # before any file of the run is written
    (signal.SIGINT, "effx.train.run", "Session", "_model", None),
    (signal.SIGTERM, "effx.train.run", "Session", "_write_start_files", "interrupted"),  # 'running' written
    (signal.SIGINT, "effx.train.run", "WandbLogger", "__init__", "interrupted"),
    (signal.SIGINT, "effx.plugins", "", "load_registry", "no file was left half-written"),  # CLI importing
], ids=["term-model", "int-model", "term-startfiles", "int-wandb", "int-registry"])
def test_signal_during_start_up_leaves_a_truthful_status_and_no_traceback(base, tmp_path, sig, module, cls, attr,
                                                                           state):
    exp = new_run(base, tmp_path)
    prelude = f"""
        import importlib, os, signal
        mod = importlib.import_module({module!r})
        target = getattr(mod, {cls!r}) if {cls!r} else mod
        real = getattr(target, {attr!r})
        def hit(*a, **k):
            out = real(*a, **k)
            os.kill(os.getpid(), {int(sig)})
            return out
        setattr(target, {attr!r}, hit)
    """
    res = effx_injected(tmp_path, prelude, "pretrain", "-exp", "run")
    assert res.returncode == 128 + sig, (res.returncode, res.stderr[-2000:])
    err = res.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and err.startswith("Interrupted"), err
    if state == "interrupted":
        st = status(exp)
        assert st["status"] == "interrupted" and "during start-up" in st["cause"], st
        assert "run the command again" in err
    else:
        assert not (exp / "status.json").exists()  # nothing of a run was started: nothing claims one
        if state:
            assert state in err
    assert not list(exp.glob("ckpt_*.pt")) and tmp_files(exp) == []


@pytest.mark.slow
def test_second_signal_stops_a_run_stuck_in_a_long_c_call(base, tmp_path):
    exp = new_run(base, tmp_path)
    flag = tmp_path / "stuck"
    prelude = f"""
        import ctypes, pathlib
        import effx.train.loop as loop
        real = loop.Trainer.train_step
        def step(self, micro):
            if self.pos.step == 3:
                pathlib.Path({str(flag)!r}).touch()
                ctypes.CDLL(None).system(b"exec sleep 25 >/dev/null 2>&1")  # C code that waits through signals
            return real(self, micro)
        loop.Trainer.train_step = step
    """
    proc = effx_injected(tmp_path, prelude, "pretrain", "-exp", "run", wait=False)
    deadline = time.time() + 60
    while not flag.exists() and time.time() < deadline:
        time.sleep(0.05)
    t0 = time.time()
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert time.time() - t0 < 15, "the run ignored two SIGTERMs"
    err = proc.stderr.read()
    assert proc.returncode == 128 + signal.SIGTERM and "Traceback" not in err, err
    st = status(exp)
    assert st["status"] == "interrupted" and "long operation" in st["cause"] and st["step"] == 3
    res = effx(tmp_path, "pretrain", "-exp", "run", "-resume")
    assert res.returncode == 0, res.stderr[-2000:]
    same_losses(exp, base[3])


# ----------------------------------------------------------------------------- OS errors
def test_disk_full_during_a_checkpoint_is_one_line_and_resume_is_exact(base, tmp_path):
    exp = new_run(base, tmp_path)
    prelude = """
        import errno, torch
        _save = torch.save
        def save(obj, f, *a, **k):
            if obj.get("position", {}).get("step") == 4:
                f.write(b"x" * 4096)
                raise OSError(errno.ENOSPC, "No space left on device")
            return _save(obj, f, *a, **k)
        torch.save = save
    """
    res = effx_injected(tmp_path, prelude, "pretrain", "-exp", "run")
    one_error_line(res, "no space left on the disk while writing", str(exp / "ckpt_step4.pt"), "-resume")
    assert status(exp)["status"] == "failed" and tmp_files(exp) == []
    res = effx(tmp_path, "pretrain", "-exp", "run", "-resume")
    assert res.returncode == 0, res.stderr[-2000:]
    same_losses(exp, base[3])


def test_read_only_experiment_folder_is_one_line(base, tmp_path):
    exp = new_run(base, tmp_path)
    if os.geteuid() != 0:  # a real read-only folder (root ignores permission bits)
        exp.chmod(stat.S_IRUSR | stat.S_IXUSR)
        try:
            res = effx(tmp_path, "pretrain", "-exp", "run")
        finally:
            exp.chmod(stat.S_IRWXU)
    else:
        prelude = f"""
            import errno, os
            _open = os.open
            def ro(path, *a, **k):
                if str(path).startswith({str(exp)!r}):
                    raise PermissionError(errno.EACCES, "Permission denied", str(path))
                return _open(path, *a, **k)
            os.open = ro
        """
        res = effx_injected(tmp_path, prelude, "pretrain", "-exp", "run")
    one_error_line(res, "permission denied for", str(exp), "writable")


# ----------------------------------------------------------------------------- bad input, table-driven
def _edit(root: Path, name: str, **changes) -> None:
    path = root / "pretrain" / name / "config.yaml"
    cfg = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        node = cfg
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    path.write_text(yaml.safe_dump(cfg))


BOUNDS = [
    ("model.d_model", 0, "model.d_model: must be >= 1, got 0"),
    ("model.n_heads", 0, "model.n_heads: must be >= 1, got 0"),
    ("train.optimizer.lr", -0.001, "train.optimizer.lr: must be > 0, got -0.001"),
    ("train.eval_batch_size", 0, "train.eval_batch_size: must be >= 1, got 0"),
    ("model.n_layers", -1, "model.n_layers: must be >= 1, got -1"),
    ("model.d_ff", 0, "model.d_ff: must be >= 1, got 0"),
    ("train.max_steps", 0, "train.max_steps: must be >= 1, got 0"),
    ("checkpoint.every_steps", -1, "checkpoint.every_steps: must be >= 1, got -1"),
    ("train.scheduler.warmup_ratio", 2, "train.scheduler.warmup_ratio: must be in [0, 1], got 2.0"),
    ("mlm.mask_prob", 1.5, "mlm.mask_prob: must be in (0, 1], got 1.5"),
]


@pytest.mark.parametrize("key,value,message", BOUNDS, ids=[b[0] for b in BOUNDS])
@pytest.mark.parametrize("command", ["init", "validate", "pretrain"])
def test_out_of_range_setting_is_one_line_in_every_command(base, tmp_path, command, key, value, message):
    _, data, sets, _ = base
    exp = tmp_path / "pretrain" / "p"
    if command == "init":
        args = ["init", "-exp", "p", *[x for s in sets for x in ("--set", s)], "--set", f"{key}={value}"]
    else:
        init_experiment("p", root=tmp_path, sets=sets)
        _edit(tmp_path, "p", **{key: value})
        args = ["validate", str(exp / "config.yaml")] if command == "validate" else ["pretrain", "-exp", "p"]
    before = snapshot(tmp_path / "pretrain")
    run = effx if command == "validate" else effx_in_process  # validate: through the console script
    one_error_line(run(tmp_path, *args), message)
    assert snapshot(tmp_path / "pretrain") == before  # nothing written, nothing half-written


def _big_memory_case(root: Path, data: dict, sets: list[str]) -> list[str]:
    """max_seq_len 100000 and a 100000-token training text, with a batch the machine cannot hold."""
    from effx.train.memory_check import machine_memory

    import torch

    total = machine_memory(torch.device("cpu"))[0]
    long = Path(root) / "long.csv"
    with open(data["train"], newline="") as fh:
        recs = list(csv.DictReader(fh))
    recs[0]["text"] = " ".join(["news"] * 100_000)
    with open(long, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["text", "label"])
        w.writeheader()
        w.writerows(recs)
    per_row = 100_000 * (10 * 256 + 2 * 1024) * 4 * 4
    batch = min(total // per_row + 1, len(recs))
    init_experiment("big", root=root, sets=[*sets, "model.max_seq_len=100000", "data.max_length=100000",
                                            "model.d_model=256", "model.n_heads=4", "model.d_ff=1024",
                                            "model.n_layers=4", f"data.train={long}", f"train.batch_size={batch}"])
    return ["pretrain", "-exp", "big"]


def _case(kind: str, root: Path, data: dict, sets: list[str]) -> tuple[list[str], tuple[str, ...]]:
    if kind == "newline name":
        return ["init", "-exp", "abc\n"], ("invalid experiment name 'abc\\n'", "control characters")
    if kind == "root is a file":
        (root / "afile").write_text("x")
        return ["init", "-exp", "x", "--root", str(root / "afile")], ("--root", "is a file, not a folder")
    if kind == "relative data path":
        init_experiment("rel", root=root, sets=[*sets, "data.train=missing/train.csv"])
        return ["pretrain", "-exp", "rel"], (f"{root / 'missing' / 'train.csv'} not found",
                                              "resolved against the experiments root")
    if kind == "oversized batch":
        init_experiment("ob", root=root, sets=[*sets, "train.batch_size=1000"])
        return ["pretrain", "-exp", "ob"], ("fewer than one optimizer step needs",)
    if kind == "memory":
        return _big_memory_case(root, data, sets), ("this run needs at least", "GiB", "more than the",
                                                   "train.batch_size")
    if kind == "label out of range":
        bad = root / "val_bad.csv"
        text = Path(data["validation"]).read_text().splitlines()
        bad.write_text("\n".join([*text[:-1], '"phantom class",7']) + "\n")
        init_experiment("ftb", root=root, finetune=True, sets=ft_sets(data, **{"data.validation": str(bad)}))
        shutil.copytree(Path(data["train"]).parents[1] / "pretrain" / "ref", root / "pretrain" / "ref")
        return ["finetune", "-exp", "ftb", "-pretrain", "ref", "-ckpt", "last"], (
            "data.validation: 1 row(s) have label id(s) [7] outside the 4 classes the training split has")
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["newline name", "root is a file", "relative data path", "oversized batch",
                                  "memory", "label out of range"])
def test_bad_input_is_one_line(base, tmp_path, kind):
    _, data, sets, _ = base
    args, needles = _case(kind, tmp_path, data, sets)
    before = snapshot(tmp_path / "pretrain"), snapshot(tmp_path / "finetune")
    line = one_error_line(effx(tmp_path, *args, timeout=300), *needles)
    assert "num_classes" not in line
    for kind_dir in ("pretrain", "finetune"):
        for exp in (tmp_path / kind_dir).glob("*"):
            if exp.name == "ref":
                continue  # the finished pretraining run a finetune case starts from
            assert not list(exp.glob("ckpt_*.pt")) and tmp_files(exp) == [], exp
    if kind in ("newline name", "root is a file"):
        assert (snapshot(tmp_path / "pretrain"), snapshot(tmp_path / "finetune")) == before
        assert not (tmp_path / "pretrain" / "abc\n").exists()


# ----------------------------------------------------------------------------- small mechanisms
def test_files_respect_the_umask(tmp_path):
    from effx.atomic import write_text

    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.json", "{}")
        ckpt.save(tmp_path / "ckpt_step1.pt", {"position": {"step": 1}})
        os.umask(0o077)
        write_text(tmp_path / "b.json", "{}")
    finally:
        os.umask(old)
    mode = lambda name: stat.S_IMODE((tmp_path / name).stat().st_mode)  # noqa: E731
    assert (mode("a.json"), mode("ckpt_step1.pt"), mode("b.json")) == (0o644, 0o644, 0o600)


def test_every_numeric_field_has_a_declared_range():
    import attrs

    from effx import config as C

    sections = [C.ModelConfig, C.DataConfig, C.TokenizerConfig, C.MLMConfig, C.OptimizerConfig, C.SchedulerConfig,
                C.TrainConfig, C.CheckpointConfig, C.ExperimentConfig]
    missing = [f"{cls.__name__}.{a.name}" for cls in sections for a in attrs.fields(cls)
               if re.search(r"\b(int|float)\b", str(a.type)) and a.validator is None]
    assert missing == []


def test_label_outside_the_training_classes_names_the_split(tmp_path):
    from effx.config import DataConfig
    from effx.data import load_splits
    from effx.errors import EffxError

    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    train.write_text("text,label\n" + "".join(f"t{i},{i % 4}\n" for i in range(20)))
    test.write_text("text,label\na,0\nb,7\nc,5\nd,7\n")
    with pytest.raises(EffxError) as exc:
        load_splits(DataConfig(train=str(train), test=str(test)), 0)
    msg = str(exc.value)
    assert msg.startswith("data.test: 3 row(s) have label id(s) [5, 7] outside the 4 classes") and "num_classes" not in msg
