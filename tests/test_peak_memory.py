"""Each run's peak memory is its own, whatever ran before it in the process (and under `effx sweep`)."""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_train_helpers import make_data, set_env, tiny_sets  # noqa: E402

from effx.procmem import hwm_mib, reset_hwm  # noqa: E402
from effx.sysinfo import peak_memory, reset_peak_memory  # noqa: E402

CPU = torch.device("cpu")
BIG_MIB = 768

needs_proc = pytest.mark.skipif(not (hwm_mib() and reset_hwm()),
                                reason="no /proc/self/clear_refs: the resident high-water mark cannot be reset here")


def _transient_peak() -> float:
    """Touch BIG_MIB of memory and free it again; returns the process's peak afterwards."""
    block = bytearray(BIG_MIB * 2**20)  # zero-filled: every page is touched
    block[::4096] = b"x" * len(block[::4096])
    del block
    return peak_memory(CPU)[0]


@needs_proc
def test_reset_forgets_an_earlier_peak_of_the_process():
    before = _transient_peak()
    reset_peak_memory(CPU)
    after, kind = peak_memory(CPU)
    assert kind == "cpu_rss"
    assert after < before - BIG_MIB / 2, (before, after)


@needs_proc
def test_a_run_after_a_bigger_one_in_the_same_process_records_its_own_peak(tmp_path, monkeypatch):
    from effx.train import init_experiment, run_pretrain

    set_env(monkeypatch)
    data = make_data(tmp_path / "data", n_train=64, n_val=16)
    init_experiment("small", root=tmp_path, sets=tiny_sets(data, **{"train.max_steps": 2}))
    before = _transient_peak()  # stands for a bigger run earlier in the same process
    run_pretrain("small", root=tmp_path)
    recorded = pd.to_numeric(pd.read_csv(tmp_path / "pretrain" / "small" / "metrics.csv")["peak_mem_MiB"]).max()
    assert recorded < before - BIG_MIB / 2, (before, recorded)


@pytest.mark.slow  # a sweep of fresh training processes
def test_sweep_runs_each_experiment_in_a_fresh_process():
    """What `effx sweep` uses for every training, evaluation and baseline of a job."""
    import os

    from effx.eval.sweep import fresh_process

    before = _transient_peak()
    child_peak, kind = fresh_process(peak_memory, CPU)
    assert fresh_process(os.getpid) != os.getpid()
    assert kind == "cpu_rss" and child_peak < before - BIG_MIB / 2, (before, child_peak)
