"""``effx bench``, ``effx bench-train``, ``effx bench-report``: thin wrappers over :mod:`effx.bench`."""
from __future__ import annotations

import sys
from pathlib import Path

import click

SEQ_HELP = "Comma-separated sequence lengths (default 512,1024,2048,4096,8192,16384; --quick: 128,256)."


def _command_line() -> str:
    return "effx " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("effx") else "effx bench (API)"


@click.command("bench")
@click.option("--seq-lens", default=None, help=SEQ_HELP)
@click.option("--types", default=None, help="Comma-separated attention types (default: every registered one).")
@click.option("--mode", type=click.Choice(["layer", "step", "both"]), default="both", show_default=True,
              help="layer: the attention alone; step: one encoder training step; both.")
@click.option("--dtype", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True,
              help="fp16 is refused on CPU (no fast fp16 matmul kernel there; use bf16).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--batch", default=1, show_default=True, help="Batch of the layer suite.")
@click.option("--heads", default=4, show_default=True)
@click.option("--head-dim", default=64, show_default=True, help="Head size of the layer suite.")
@click.option("--reps", default=None, type=int, help="Timed repetitions per configuration (default 3; --quick 1).")
@click.option("--min-time-s", default=None, type=float,
              help="Repeat a short configuration until its timed runs add up to this (default 1.0; --quick 0).")
@click.option("--step-tokens", default=16384, show_default=True,
              help="Tokens per training step in the step suite: batch = step_tokens // N (32 at N=512).")
@click.option("--mem-cap-gib", default=6.0, show_default=True, help="Skip or kill a configuration past this extra peak.")
@click.option("--time-cap-s", default=20.0, show_default=True, help="Skip a configuration whose step takes longer.")
@click.option("--threads", default=0, show_default=True, help="torch threads (0 = torch default).")
@click.option("--peers/--no-peers", default=True, show_default=True,
              help="Also run the peer implementations the attention plugins declare, when installed.")
@click.option("--out", default="bench-results", show_default=True, type=click.Path(file_okay=False),
              help="Output folder for results.csv, machine.json, summary.md and the PNG plots.")
@click.option("--qk-std", default=1.0, show_default=True,
              help="Std of the layer inputs q, k ~ N(0, s^2) (v ~ N(0, 1)); sets how peaked attention is.")
@click.option("--positional", default=None,
              help="Positional encoding of the step suite's encoder (default: the one a config without "
                   "model.positional gets). For a like-for-like HF BERT row, name a learned absolute encoding.")
@click.option("--quick", is_flag=True, help="CI smoke run: N=128,256, one rep, small model.")
def bench_cmd(seq_lens, types, mode, dtype, device, batch, heads, head_dim, reps, min_time_s, step_tokens, mem_cap_gib,
              time_cap_s, threads, peers, out, qk_std, positional, quick) -> None:
    """Time, tokens/s, peak memory and fidelity of every attention type against N."""
    from effx.bench import BenchSettings, run_bench
    from effx.bench.settings import DEFAULT_SEQ_LENS, QUICK_SEQ_LENS, parse_int_list, resolve_device

    dev = resolve_device(device)
    lens = parse_int_list(seq_lens, "seq-lens") if seq_lens else (QUICK_SEQ_LENS if quick else DEFAULT_SEQ_LENS)
    small = {"d_model": 64, "n_layers": 1, "d_ff": 128, "step_tokens": min(step_tokens, 512)} if quick else {}
    settings = BenchSettings(
        seq_lens=lens, types=tuple(t.strip() for t in types.split(",") if t.strip()) if types else None,
        mode=mode, dtype=dtype, device=dev, batch=batch, heads=heads, head_dim=head_dim,
        reps=reps if reps is not None else (1 if quick else 3),
        min_time_s=min_time_s if min_time_s is not None else (0.0 if quick else 1.0),
        mem_cap_gib=mem_cap_gib, time_cap_s=time_cap_s,
        peers=peers, threads=threads, warmup=0 if quick else 1, qk_std=qk_std, positional=positional, **{"step_tokens": step_tokens, **small},
    )
    paths = run_bench(settings, Path(out), command=_command_line(), quick=quick, echo=click.echo)
    for kind, path in paths.items():
        click.echo(f"wrote {kind}: {path}")


@click.command("bench-train")
@click.option("--seq-lens", default="4096,8192,16384", show_default=True, help="Long training lengths.")
@click.option("--types", default=None, help="Attention types (default: every registered one).")
@click.option("--saver-len", default=2048, show_default=True,
              help="N of the checkpointing / accumulation comparison (batch --saver-batch).")
@click.option("--saver-batch", default=4, show_default=True)
@click.option("--mem-cap-gib", default=4.0, show_default=True, help="The memory budget a long step must fit in.")
@click.option("--time-cap-s", default=120.0, show_default=True)
@click.option("--dtype", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--threads", default=0, show_default=True)
@click.option("--out", default="bench-results/train", show_default=True, type=click.Path(file_okay=False))
@click.option("--quick", is_flag=True, help="Smoke run: N=256,512, a 1-layer d_model 64 model.")
def bench_train_cmd(seq_lens, types, saver_len, saver_batch, mem_cap_gib, time_cap_s, dtype, device, threads,
                    out, quick) -> None:
    """Long-sequence training: checkpointing / accumulation peak memory, and 4k-16k steps within a budget."""
    from effx.bench.longseq import TrainSettings, run_train_bench
    from effx.bench.settings import parse_int_list, resolve_device

    dev = resolve_device(device)
    settings = TrainSettings(
        seq_lens=parse_int_list("256,512" if quick else seq_lens, "seq-lens"),
        types=tuple(t.strip() for t in types.split(",") if t.strip()) if types else None,
        saver_len=256 if quick else saver_len, saver_batch=saver_batch, mem_cap_gib=mem_cap_gib,
        time_cap_s=time_cap_s, dtype=dtype, device=dev, threads=threads,
        **({"d_model": 64, "n_layers": 1, "d_ff": 128} if quick else {}),
    )
    paths = run_train_bench(settings, Path(out), command=_command_line(), echo=click.echo)
    for kind, path in paths.items():
        click.echo(f"wrote {kind}: {path}")


@click.command("bench-tokens")
@click.option("--data", required=True, type=click.Path(dir_okay=False),
              help="csv/json/jsonl/parquet file with a text column: its texts give the real length distribution.")
@click.option("--max-length", default=128, show_default=True, help="Truncation length (the fixed-length batches' N).")
@click.option("--batch", default=32, show_default=True, help="Sequences per training step.")
@click.option("--n-batches", default=10, show_default=True, help="Optimizer steps per mode and repeat.")
@click.option("--repeats", default=3, show_default=True, help="Alternating repeats of every mode (median).")
@click.option("--texts", default=4000, show_default=True, help="Texts sampled from --data.")
@click.option("--types", default=None, help="Attention types (default: the first registered type of every family).")
@click.option("--dtype", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True,
              help="fp16 is refused on CPU (no fast fp16 matmul kernel there; use bf16).")
@click.option("--threads", default=0, show_default=True, help="torch threads (0 = torch default).")
@click.option("--out", default="bench-results/tokens", show_default=True, type=click.Path(file_okay=False))
def bench_tokens_cmd(data, max_length, batch, n_batches, repeats, texts, types, dtype, threads, out) -> None:
    """Training tokens/s counting real tokens only: variable-length batches vs fixed-length full batches."""
    from effx.bench.tokens import TokenSettings, parse_types, run_tokens_bench

    settings = TokenSettings(data=data, max_length=max_length, batch=batch, n_batches=n_batches, repeats=repeats,
                             texts=texts, types=parse_types(types), dtype=dtype, threads=threads)
    paths = run_tokens_bench(settings, Path(out), command=_command_line(), echo=click.echo)
    for kind, path in paths.items():
        click.echo(f"wrote {kind}: {path}")


@click.command("bench-report")
@click.argument("folder", type=click.Path(file_okay=False))
def bench_report_cmd(folder) -> None:
    """Re-write summary.md, the plots and the targets of a finished `effx bench` folder."""
    from effx.bench.suite import rerender

    for kind, path in rerender(Path(folder)).items():
        click.echo(f"wrote {kind}: {path}")


def register(cli: click.Group) -> None:
    cli.add_command(bench_cmd)
    cli.add_command(bench_train_cmd)
    cli.add_command(bench_tokens_cmd)
    cli.add_command(bench_report_cmd)
