"""Fault injection against real ``effx pretrain`` processes; prints a markdown table.

Cases: kill -9 at random moments and during checkpoint writes (resume must lose <= 1 step and give
bit-identical losses, weights and Adam state), a bit flip and a truncation of the newest checkpoint,
two writers started together, SIGTERM / SIGINT at random moments of start-up, a disk that fills up
(a small tmpfs) and a read-only experiment folder (a read-only remount). The two mount cases need
root and are reported as skipped otherwise. Usage: ``scripts/faults.sh [--kills 10] [--seed 0]``.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "core" / "data" / "sample"
STEPS = 40
ENV = {**os.environ, "WANDB_MODE": "disabled", "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
       "EFFX_LOAD_PLUGINS": "sdpa,positional", "TOKENIZERS_PARALLELISM": "false"}
EFFX = [shutil.which("effx")] if shutil.which("effx") else [sys.executable, "-m", "effx_cli.main"]


def effx(root: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*EFFX, *args], env={**ENV, "EFFX_ROOT": str(root)}, capture_output=True, text=True,
                          timeout=timeout)


def start(root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([*EFFX, *args], env={**ENV, "EFFX_ROOT": str(root)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


# ----------------------------------------------------------------------------- setup
def make_data(folder: Path) -> dict:
    from effx.config import TokenizerConfig
    from effx.data import save_tokenizer, train_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", 160), ("validation", 48)):
        with open(SAMPLE / f"agnews_{split}.csv", newline="", encoding="utf-8") as fh:
            recs = list(csv.DictReader(fh))[:n]
        path = folder / f"{split}.csv"
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=["text", "label"], extrasaction="ignore")
            w.writeheader()
            w.writerows(recs)
        out[split] = str(path)
    tok = folder / "tokenizer.json"
    save_tokenizer(train_tokenizer([r["text"] for r in csv.DictReader(open(out["train"]))],
                                   TokenizerConfig(vocab_size=400)), tok)
    out["tokenizer"] = str(tok)
    return out


def settings(data: dict, keep_last: int = 3) -> list[str]:
    """2 layers, d_model 64, fp32, STEPS steps, a checkpoint every step (as in the original report)."""
    sets = {"model.vocab_size": 400, "tokenizer.vocab_size": 400, "tokenizer.path": data["tokenizer"],
            "model.d_model": 64, "model.n_layers": 2, "model.n_heads": 2, "model.d_ff": 128, "model.dropout": 0.1,
            "model.max_seq_len": 64, "data.max_length": 64, "data.train": data["train"],
            "data.validation": data["validation"], "data.test": "null", "train.batch_size": 8, "train.epochs": 2,
            "train.max_steps": STEPS, "train.log_every_steps": 1, "train.dtype": "fp32", "train.device": "cpu",
            "logging.progress_bar": "false", "logging.wandb.mode": "disabled", "checkpoint.every_steps": 1,
            "checkpoint.every_epochs": "null", "checkpoint.keep_last": keep_last}
    return [x for k, v in sets.items() for x in ("--set", f"{k}={v}")]


def init(root: Path, name: str, data: dict, **kw) -> Path:
    res = effx(root, "init", "-exp", name, *settings(data, **kw))
    assert res.returncode == 0, res.stderr
    return root / "pretrain" / name


# ----------------------------------------------------------------------------- measurements
def losses(exp: Path) -> dict[int, float]:
    with open(exp / "metrics.csv", newline="") as fh:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(fh) if r["split"] == "train"}


def logged_steps(exp: Path) -> int:
    try:
        return max(losses(exp), default=0)
    except (OSError, ValueError, KeyError):
        return 0


def final_state(exp: Path) -> dict:
    data = torch.load(exp / "ckpt_last.pt", weights_only=True)
    return {"model": data["model"], "optimizer": data["optimizer"]["state"]}


def identical(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, dict):
            if not (isinstance(y, dict) and identical(x, y)):
                return False
        elif isinstance(x, torch.Tensor):
            if not torch.equal(x, y):
                return False
        elif x != y:
            return False
    return True


def leftovers(exp: Path) -> int:
    return sum(1 for p in exp.iterdir() if p.name.endswith(".tmp"))


def resume_step(exp: Path) -> int | None:
    ev = [json.loads(x) for x in (exp / "events.jsonl").read_text().splitlines()]
    steps = [e["step"] for e in ev if e["event"] == "resume"]
    return steps[-1] if steps else None


def compare(exp: Path, ref: dict, ref_state: dict) -> tuple[float, bool]:
    got = losses(exp)
    if sorted(got) != list(range(1, STEPS + 1)):
        return float("inf"), False
    return max(abs(got[s] - ref[s]) for s in got), identical(final_state(exp), ref_state)


def finish(root: Path, exp: Path) -> subprocess.CompletedProcess:
    """Continue a stopped run to its end (resume when a checkpoint exists, else start again)."""
    has_ckpt = any(exp.glob("ckpt_*.pt"))
    return effx(root, "pretrain", "-exp", exp.name, *(["-resume"] if has_ckpt else []))


# ----------------------------------------------------------------------------- cases
def kill_case(root, data, name, during_write: bool, rng, ref, ref_state) -> dict:
    exp = init(root, name, data)
    target = rng.randint(2, STEPS - 4)
    proc = start(root, "pretrain", "-exp", name)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if logged_steps(exp) >= target and (not during_write or any(p.name.startswith(".ckpt_step")
                                                                    for p in exp.iterdir())):
            break
        time.sleep(0.001 if during_write else 0.01)
    proc.kill()
    proc.wait()
    killed_at = logged_steps(exp)
    tmp_before = leftovers(exp)
    res = finish(root, exp)
    lost = killed_at - (resume_step(exp) or 0)
    diff, same = compare(exp, ref, ref_state) if res.returncode == 0 else (float("inf"), False)
    what = "during a checkpoint write" if during_write else "at a random moment"
    return {"case": f"kill -9 {what} (step {killed_at}, {tmp_before} temp file(s) left)",
            "outcome": "resumed" if res.returncode == 0 else f"resume failed: {res.stderr.strip()[-200:]}",
            "lost": lost, "diff": diff, "same": same, "leftovers": leftovers(exp), "ok": res.returncode == 0 and
            lost <= 1 and diff == 0 and same and leftovers(exp) == 0}


def damage_case(root, data, name, how: str, ref, ref_state) -> dict:
    exp = init(root, name, data)
    assert effx(root, "pretrain", "-exp", name).returncode == 0
    last = exp / "ckpt_last.pt"
    raw = bytearray(last.read_bytes())
    if how == "bit flip":
        mid = len(raw) // 2
        raw[mid:mid + 16] = bytes(b ^ 0xFF for b in raw[mid:mid + 16])
    else:
        raw = raw[: len(raw) // 2]
    last.write_bytes(bytes(raw))  # ckpt_last is a hard link of the newest step file: both are damaged
    res = effx(root, "pretrain", "-exp", name, "-resume")
    warned = [ln for ln in res.stderr.splitlines() if ln.startswith("WARNING")]
    diff, same = compare(exp, ref, ref_state) if res.returncode == 0 else (float("inf"), False)
    lost = STEPS - (resume_step(exp) or 0)
    return {"case": f"{how} in the middle of ckpt_last.pt", "lost": lost, "diff": diff, "same": same,
            "outcome": f"detected, {len(warned)} one-line warning(s), fell back to step {resume_step(exp)}",
            "leftovers": leftovers(exp), "ok": res.returncode == 0 and len(warned) == 2 and lost == 1 and diff == 0
            and same}


def writers_case(root, data, ref, ref_state) -> dict:
    exp = init(root, "two", data)
    procs = [start(root, "pretrain", "-exp", "two") for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    codes = sorted(p.returncode for p in procs)
    loser = [o[1].strip() for p, o in zip(procs, outs) if p.returncode != 0]
    diff, same = compare(exp, ref, ref_state)
    ok = codes == [0, 1] and len(loser) == 1 and "\n" not in loser[0] and diff == 0 and same
    return {"case": "two `effx pretrain -exp SAME` started together", "lost": 0, "diff": diff, "same": same,
            "outcome": f"exit codes {codes}; the second: {loser[0][:90] if loser else '-'}",
            "leftovers": leftovers(exp), "ok": ok}


def startup_signal_case(root, data, name, sig, rng, ref, ref_state) -> dict:
    exp = init(root, name, data)
    delay = rng.uniform(0.2, 4.0)
    proc = start(root, "pretrain", "-exp", name)
    time.sleep(delay)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=600)
    st = json.loads((exp / "status.json").read_text()) if (exp / "status.json").exists() else None
    truthful = (proc.returncode == 0 and st and st["status"] == "finished") or (
        proc.returncode == 128 + sig and (st is None or st["status"] == "interrupted")) or (
        proc.returncode == -sig and st is None)  # killed before Python ran effx at all: nothing started
    clean = "Traceback" not in err and len(err.strip().splitlines()) <= 1
    res = finish(root, exp) if proc.returncode != 0 else None
    diff, same = compare(exp, ref, ref_state)
    state = st["status"] if st else "no status.json (nothing started)"
    return {"case": f"{signal.Signals(sig).name} {delay:.2f} s after start", "lost": 0, "diff": diff, "same": same,
            "outcome": f"exit {proc.returncode}, status {state}, {'no traceback' if clean else 'TRACEBACK'}",
            "leftovers": leftovers(exp), "ok": bool(truthful and clean and diff == 0 and same
                                                    and (res is None or res.returncode == 0))}


def _mount(path: Path, opts: str) -> bool:
    return subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True).returncode == 0


def _fill(folder: Path) -> Path:
    """Write a file until the disk is full (the run's next write then fails)."""
    filler = folder / "filler.bin"
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    return filler


def disk_full_case(base: Path, data, ref, ref_state) -> dict:
    root = base / "small_disk"
    root.mkdir()
    case = "disk filled up at step >= 10 (16 MiB tmpfs), then space freed and -resume"
    if os.geteuid() != 0 or not _mount(root, "size=16m"):
        return {"case": case, "outcome": "skipped (needs root to mount a tmpfs)", "lost": "-",
                "diff": "-", "same": "-", "leftovers": "-", "ok": True}
    try:
        exp = init(root, "full", data, keep_last=1)
        proc = start(root, "pretrain", "-exp", "full")
        while proc.poll() is None and logged_steps(exp) < 10:
            time.sleep(0.01)
        filler = _fill(root)
        _, err_text = proc.communicate(timeout=600)
        err = err_text.strip().splitlines()
        one_line = proc.returncode == 1 and len(err) == 1 and "no space left" in err[0]
        status = json.loads((exp / "status.json").read_text())["status"]
        tmp = leftovers(exp)
        filler.unlink()
        killed_at = logged_steps(exp)
        done = finish(root, exp)
        lost = killed_at - (resume_step(exp) or 0)
        diff, same = compare(exp, ref, ref_state) if done.returncode == 0 else (float("inf"), False)
        return {"case": case, "outcome": f"exit {proc.returncode}, status {status}, {tmp} temp file(s) left; "
                                          f"'{err[0][:110] if err else ''}...'", "lost": lost, "diff": diff,
                "same": same, "leftovers": leftovers(exp), "ok": one_line and status == "failed" and tmp == 0
                and lost <= 1 and diff == 0 and same}
    finally:
        subprocess.run(["umount", str(root)], capture_output=True)


def read_only_case(base: Path, data) -> dict:
    root = base / "ro_disk"
    root.mkdir()
    if os.geteuid() != 0 or not _mount(root, "size=16m"):
        return {"case": "read-only experiment folder", "outcome": "skipped (needs root to mount)", "lost": "-",
                "diff": "-", "same": "-", "leftovers": "-", "ok": True}
    try:
        exp = init(root, "ro", data)
        subprocess.run(["mount", "-o", "remount,ro", str(root)], check=True)
        before = sorted(p.name for p in exp.iterdir())
        res = effx(root, "pretrain", "-exp", "ro")
        err = res.stderr.strip().splitlines()
        ok = res.returncode == 1 and len(err) == 1 and "read-only" in err[0] and sorted(
            p.name for p in exp.iterdir()) == before
        return {"case": "read-only experiment folder (read-only remount)", "lost": 0, "diff": "-", "same": "-",
                "outcome": f"exit {res.returncode}: '{err[0][:80] if err else ''}...'", "leftovers": 0, "ok": ok}
    finally:
        subprocess.run(["umount", str(root)], capture_output=True)


# ----------------------------------------------------------------------------- main
def fmt(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    base = Path(tempfile.mkdtemp(prefix="effx-faults-"))
    try:
        root = base / "root"
        data = make_data(base / "data")
        init(root, "ref", data)
        assert effx(root, "pretrain", "-exp", "ref").returncode == 0
        ref, ref_state = losses(root / "pretrain" / "ref"), final_state(root / "pretrain" / "ref")
        rows = []
        for i in range(args.kills):
            rows.append(kill_case(root, data, f"kill{i}", i % 2 == 1, rng, ref, ref_state))
            print(rows[-1], file=sys.stderr, flush=True)
        for how in ("bit flip", "truncation"):
            rows.append(damage_case(root, data, how.replace(" ", ""), how, ref, ref_state))
        rows.append(writers_case(root, data, ref, ref_state))
        for i, sig in enumerate((signal.SIGTERM, signal.SIGINT, signal.SIGTERM, signal.SIGINT)):
            rows.append(startup_signal_case(root, data, f"sig{i}", sig, rng, ref, ref_state))
        rows.append(disk_full_case(base, data, ref, ref_state))
        rows.append(read_only_case(base, data))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print("| case | outcome | steps lost | max loss difference | weights + Adam state bit-identical | "
          "leftover temp files | pass |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['outcome']} | {fmt(r['lost'])} | {fmt(r['diff'])} | {fmt(r['same'])} | "
              f"{fmt(r['leftovers'])} | {fmt(r['ok'])} |")
    failed = [r["case"] for r in rows if not r["ok"]]
    print(f"\n{len(rows) - len(failed)} of {len(rows)} cases pass" + (f"; FAILED: {'; '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
