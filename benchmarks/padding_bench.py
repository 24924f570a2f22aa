"""Measure dynamic padding against static padding to ``max_length``: time and memory per epoch.

    python benchmarks/padding_bench.py --out docs/padding_bench.md

The parent process reads the shipped AG News sample, trains a WordPiece tokenizer and encodes
``--n`` examples truncated to ``--max-length``. Each padding mode then trains a tiny classifier for
``--epochs`` epochs (same initial weights, same batch order) in its OWN fresh process, so that memory
freed by one mode cannot hide the peak of the other; modes alternate ``--repeats`` times so that
background load hits both alike. Per mode it records:

* seconds per epoch (median over all epochs of all repeats; forward + backward + AdamW step),
The optional length-bucketed sampler (``data.length_bucketing``) is measured as a third mode.

* tokens processed per epoch (B x N summed over batches) and the fraction of them that is padding,
* peak activation memory: the largest total size of the tensors autograd saves for backward in one
  step (exact, independent of background load),
* peak process memory: on CPU the resident-set high-water mark during training minus the resident
  set just before (``/proc/self/clear_refs`` resets the mark); on CUDA ``torch.cuda.max_memory_allocated``
  minus the memory allocated before training.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIB = 2**20
MMAP_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}  # glibc: blocks >= 128 KiB mmapped, given back on free
MEMORY_NOTE_CPU = (
    "Peak RSS: resident-set high-water mark during training minus the resident set just before it "
    "(reset through `/proc/self/clear_refs`), in a fresh process per run, median over runs. "
    "'Freed memory returned' runs (separate processes, not timed) set `MALLOC_MMAP_THRESHOLD_=131072`, so glibc "
    "maps every block of 128 KiB or more on its own and unmaps it when the tensor is freed: the high-water mark "
    "then follows live tensor memory. With the default malloc, freed blocks stay in the heap and blocks of "
    "ever-changing sizes (dynamic shapes) fragment it, so that column also measures allocator caching."
)
MODES = {"dynamic": "dynamic (pad to longest in batch)", "bucketed": "dynamic + length-bucketed batches",
         "static": "static (pad to max_length {max_length})"}
DEFAULT_DATA = Path(__file__).resolve().parents[1] / "core" / "data" / "sample" / "agnews_train.csv"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python benchmarks/padding_bench.py", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="markdown file to write the figures to")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="csv/json/jsonl/parquet with text,label")
    ap.add_argument("--n", type=int, default=300, help="training examples")
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=2, help="epochs per run")
    ap.add_argument("--repeats", type=int, default=3, help="runs per mode, alternating modes")
    ap.add_argument("--vocab-size", type=int, default=2000)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--worker", choices=list(MODES), help=argparse.SUPPRESS)
    ap.add_argument("--ids", type=Path, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


# ----------------------------------------------------------------------------- parent
def prepare(args: argparse.Namespace, path: Path) -> dict:
    """Tokenize once in the parent so both modes see the very same ids; write them to ``path``."""
    from effx.config import DataConfig, TokenizerConfig
    from effx.data.loading import load_splits
    from effx.data.tokenizer import encode_with_stats, train_tokenizer

    cfg = DataConfig(train=str(args.data), validation=str(args.data), max_train_samples=args.n)
    splits = load_splits(cfg, args.seed)
    texts = list(splits.train["text"])
    tok = train_tokenizer(texts, TokenizerConfig(vocab_size=args.vocab_size))
    ids, cut = encode_with_stats(tok, texts, args.max_length)
    info = {"ids": ids, "labels": list(splits.train["label"]), "num_classes": len(splits.label_names),
            "vocab_size": tok.get_vocab_size(), "truncated": cut}
    path.write_text(json.dumps(info), encoding="utf-8")
    return info


def run_worker(args: argparse.Namespace, mode: str, ids_path: Path, env: dict[str, str] | None = None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", mode, "--ids", str(ids_path),
           "--out", str(args.out)] + _pass_through(args)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _pass_through(args: argparse.Namespace) -> list[str]:
    keys = ["max_length", "batch_size", "epochs", "d_model", "layers", "threads", "device", "seed"]
    return [x for k in keys for x in (f"--{k.replace('_', '-')}", str(getattr(args, k)))]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        ids_path = Path(tmp) / "ids.json"
        info = prepare(args, ids_path)
        runs: dict[str, dict[str, list[dict]]] = {mode: {"default": [], "mmap": []} for mode in MODES}
        for _ in range(args.repeats):
            for mode, r in runs.items():
                r["default"].append(run_worker(args, mode, ids_path))
                if r["default"][-1]["mem_kind"] == "RSS":
                    r["mmap"].append(run_worker(args, mode, ids_path, MMAP_ENV))
    text = report(args, info, {m: summarise(r["default"], r["mmap"]) for m, r in runs.items()})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(args.out.suffix + ".tmp")
    tmp_out.write_text(text, encoding="utf-8")
    os.replace(tmp_out, args.out)
    print(text)


def summarise(runs: list[dict], mmap_runs: list[dict]) -> dict:
    first = runs[0]
    return {
        "sec_per_epoch": statistics.median(t for r in runs for t in r["epoch_seconds"]),
        "epoch_seconds": [round(t, 3) for r in runs for t in r["epoch_seconds"]],
        "tokens": first["tokens"], "real_tokens": first["real_tokens"],
        "act_peak_MiB": first["act_peak_bytes"] / MIB,
        "mem_peak_MiB": statistics.median(r["mem_peak_bytes"] / MIB for r in runs),
        "mmap_peak_MiB": statistics.median(r["mem_peak_bytes"] / MIB for r in mmap_runs) if mmap_runs else None,
        "mem_kind": first["mem_kind"], "device": first["device"],
        "final_loss": [round(r["final_loss"], 4) for r in runs],
    }


def report(args: argparse.Namespace, info: dict, res: dict[str, dict]) -> str:
    d, s, b = res["dynamic"], res["static"], res["bucketed"]
    cpu = d["mem_kind"] == "RSS"
    opts = ["out", "n", "max_length", "batch_size", "epochs", "repeats", "threads", "device"]
    cmd = "python benchmarks/padding_bench.py " + " ".join(f"--{k.replace('_', '-')} {getattr(args, k)}" for k in opts)
    keys = ["sec_per_epoch", "tokens", "act_peak_MiB"] + (["mmap_peak_MiB"] if cpu else []) + ["mem_peak_MiB"]
    mem_heads = (["peak RSS, freed memory returned (MiB)", "peak RSS, default malloc (MiB)"] if cpu
                 else ["peak CUDA allocated (MiB)"])
    heads = ["padding", "s / epoch (median)", "tokens / epoch", "padding share", "peak activations (MiB)", *mem_heads]
    rows = [_row(MODES[m].format(max_length=args.max_length), r, keys) for m, r in res.items()]
    ratio = lambda x, k: f"x{x[k] / s[k]:.2f}"  # noqa: E731
    names = {"sec_per_epoch": "time per epoch", "tokens": "tokens", "act_peak_MiB": "peak activations",
             "mmap_peak_MiB": "peak RSS (freed memory returned)",
             "mem_peak_MiB": "peak RSS (default malloc)" if cpu else "peak CUDA allocated"}
    return "\n".join([
        "# Dynamic vs static padding",
        "",
        f"Written by `{cmd}` on {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "",
        f"Data: {info['num_classes']}-class `{_rel(args.data)}`, {len(info['ids'])} examples "
        f"({info['truncated']} truncated to {args.max_length} tokens), WordPiece vocabulary {info['vocab_size']}. "
        f"Model: {args.layers} layers, d_model {args.d_model}, sdpa attention, sinusoidal positions, "
        f"classification head; batch {args.batch_size}, AdamW; the same initial weights in every mode and the "
        f"same batches for dynamic and static. Runs per mode: {args.repeats}, epochs per run: {args.epochs}.",
        f"Device: {d['device']}; Python {platform.python_version()}, torch threads {args.threads}.",
        "",
        "| " + " | ".join(heads) + " |",
        "| --- | " + " | ".join(["---:"] * (len(heads) - 1)) + " |",
        *rows,
        "",
        "Dynamic / static: " + ", ".join(f"{names[k]} {ratio(d, k)}" for k in keys) + ".",
        "Bucketed / static: " + ", ".join(f"{names[k]} {ratio(b, k)}" for k in keys) + ".",
        "",
        "Epoch times (s), every epoch of every run: "
        + "; ".join(f"{m} {r['epoch_seconds']}" for m, r in res.items()) + ". "
        f"Final training loss per run: dynamic {d['final_loss']}, static {s['final_loss']} (the same batches: "
        f"equal up to float error, padding is masked out); bucketed {b['final_loss']} (other batches).",
        "",
        "How memory is measured. Peak activations: the largest total size of the tensors autograd saves for "
        "backward in one step (exact, not affected by other load). "
        + (MEMORY_NOTE_CPU if cpu else "Peak CUDA allocated: `torch.cuda.max_memory_allocated` minus the memory "
           "allocated before training."),
        "Timings share the machine with other work: compare the rows, measured in one run, not absolute values.",
        "",
    ])


def _row(name: str, r: dict, keys: list[str]) -> str:
    cells = [f"{r['sec_per_epoch']:.3f}", f"{r['tokens']:,}", f"{1 - r['real_tokens'] / r['tokens']:.1%}"]
    cells += [f"{r[k]:.1f}" for k in keys[2:]]
    return f"| {name} | " + " | ".join(cells) + " |"


def _rel(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# ----------------------------------------------------------------------------- worker
def worker(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
                          else "cpu")
    info = json.loads(args.ids.read_text(encoding="utf-8"))
    model, opt = build(args, info, device)
    loader = make_loader(args, info)
    meter = ProcessPeak(device)
    acts = SavedActivations(model)
    times, tokens, real, loss = [], 0, 0, float("nan")
    meter.start()
    for _ in range(args.epochs):
        start = time.perf_counter()
        tokens, real, loss = train_epoch(model, opt, loader, device, acts)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return {"epoch_seconds": times, "tokens": tokens, "real_tokens": real, "batches": len(loader),
            "act_peak_bytes": acts.peak, "mem_peak_bytes": meter.peak(), "mem_kind": meter.kind,
            "device": meter.device_name, "final_loss": loss}


def build(args: argparse.Namespace, info: dict, device):
    import torch

    from effx.config import ModelConfig
    from effx.model.build import build_model

    cfg = ModelConfig(vocab_size=info["vocab_size"], d_model=args.d_model, n_layers=args.layers, n_heads=4,
                      d_ff=4 * args.d_model, dropout=0.0, max_seq_len=args.max_length)
    torch.manual_seed(args.seed)
    model = build_model(cfg, {"type": "classification", "num_classes": info["num_classes"], "dropout": 0.0},
                        seed=args.seed).to(device)
    return model, torch.optim.AdamW(model.parameters(), lr=1e-3)


def make_loader(args: argparse.Namespace, info: dict):
    import torch

    from effx.data.collate import EncodedDataset, PadCollator
    from effx.data.sampler import LengthBucketSampler

    ds = EncodedDataset(info["ids"], info["labels"])
    if args.worker == "bucketed":
        sampler = LengthBucketSampler(ds.lengths, args.batch_size, seed=args.seed)
        return torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=PadCollator())
    pad_to = args.max_length if args.worker == "static" else None
    gen = torch.Generator().manual_seed(args.seed)
    return torch.utils.data.DataLoader(ds, batch_size=args.batch_size, shuffle=True, generator=gen,
                                       collate_fn=PadCollator(pad_to=pad_to))


def train_epoch(model, opt, loader, device, acts) -> tuple[int, int, float]:
    import torch.nn.functional as F

    tokens = real = 0
    loss = None
    for batch in loader:
        ids = batch["input_ids"].to(device)  # (B, N)
        mask = batch["attention_mask"].to(device)  # (B, N)
        with acts:
            loss = F.cross_entropy(model(ids, mask), batch["labels"].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        tokens += ids.numel()
        real += int(mask.sum())
    return tokens, real, float(loss.detach())


class SavedActivations:
    """Context manager: total bytes of distinct non-parameter storages autograd saves in one forward."""

    def __init__(self, model) -> None:
        self.params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.peak = 0
        self._seen: dict[int, int] = {}

    def _pack(self, t):
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in self.params:
            self._seen[ptr] = storage.nbytes()
        return t

    def __enter__(self):
        import torch

        self._seen = {}
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._ctx.__exit__(*exc)
        self.peak = max(self.peak, sum(self._seen.values()))


class ProcessPeak:
    """Peak extra memory of this process during training (RSS high-water mark on CPU, allocator on CUDA)."""

    def __init__(self, device) -> None:
        import torch

        from effx.bench.machine import cpu_model
        from effx.bench.memory import PeakMeter

        self.meter = PeakMeter(device.type)
        self.kind = "CUDA allocated" if device.type == "cuda" else "RSS"
        self.device_name = (torch.cuda.get_device_name(device) if device.type == "cuda"
                            else f"CPU {cpu_model()} ({os.cpu_count()} logical cores)")

    def start(self) -> None:
        self.meter.start()

    def peak(self) -> int:
        """Peak minus the start baseline, in bytes."""
        return int(round(self.meter.extra() * 2**20))


if __name__ == "__main__":
    main()
