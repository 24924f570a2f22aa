"""``effx bench``: measure every attention type over N and write the CSV, plots and tables."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import attrs

from ..atomic import write_csv, write_json, write_text
from . import machine, plan, report, targets
from .runner import forkserver, run_isolated, run_rows
from .settings import BenchSettings, validate


def measure_roofline(ctx, s: BenchSettings, quick: bool) -> dict:
    spec = {"suite": "roofline", "device": s.device, "threads": s.threads, "quick": quick, "mem_cap_gib": s.mem_cap_gib}
    return run_isolated(ctx, spec, mem_cap_gib=max(s.mem_cap_gib, 1.0), hard_timeout_s=300)


SHOWN = ("mode", "dtype", "batch", "heads", "head_dim", "reps", "min_time_s", "warmup", "mem_cap_gib", "time_cap_s", "threads",
         "step_tokens", "d_model", "n_layers", "d_ff", "qk_std", "fidelity_rows")


def summary_markdown(df, meta: dict, roof: dict, lines: list[dict], command: str) -> str:
    st = meta.get("settings") or {}
    knobs = ", ".join(f"{k}={st[k]}" for k in SHOWN if k in st)
    parts = [f"# effx bench results\n\nCommand: `{command}`\n\nSettings: {knobs}\n",
             "## Machine\n\n" + report.md_table(["key", "value"], [[k, v] for k, v in meta.items()
                                                                   if k != "settings"]) + "\n"]
    if roof.get("status") == "ok":
        parts.append(
            f"## Matmul roofline\n\nfp32 {roof['roofline_size']}^3: **{roof['fp32_gflops']:.0f} GFLOP/s**; at "
            f"{roof['small_size']}^3: fp32 {roof['fp32_small_gflops']:.1f}, bf16 {roof['bf16_small_gflops']:.1f}, "
            f"fp16 {roof['fp16_small_gflops']:.2f} GFLOP/s (fp16/fp32 = 1/"
            f"{roof['fp32_small_gflops'] / max(roof['fp16_small_gflops'], 1e-9):.0f}).\n")
    titles = {"layer": "Attention layer alone (q, k, v [B, H, N, Dh] -> out)",
              "step": "Encoder training step (forward + backward + AdamW)"}
    for suite, title in titles.items():
        if (df["suite"] == suite).any():
            parts.append(f"## {title}\n\n![time](time_{suite}.png) ![memory](memory_{suite}.png)\n\n"
                         + report.results_table(df, suite) + "\n")
    if lines:
        parts.append("## Cost targets\n\n" + report.md_table(
            ["target", "measured", "met"], [[t["target"], t["measured"], t["met"]] for t in lines]) + "\n")
    return "\n".join(parts)


def run_bench(s: BenchSettings, out: Path, command: str = "effx bench", quick: bool = False,
              echo: Callable[[str], None] = lambda line: None) -> dict:
    """Run the bench described by ``s``; write everything under ``out``; return the file paths."""
    from ..plugins import load_registry

    s = validate(s)
    registry = load_registry()
    specs = plan.plan(s, registry)  # unknown --types fail here, before anything runs
    if (line := plan.missing_peers_line(s, registry)) is not None:
        echo(line)
    meta = machine.describe(s.device, s.dtype, s.threads)
    ctx = forkserver()
    roof = measure_roofline(ctx, s, quick)
    meta["threads"] = roof.get("threads", s.threads)
    echo(f"machine: {meta['host_cpu']}, {meta['cpu_cores_usable']} cores, {meta['threads']} threads, "
         f"torch {meta['torch']}, {s.device} {s.dtype}; roofline {roof.get('fp32_gflops', float('nan')):.0f} GFLOP/s")
    rows = run_rows(ctx, specs, s.mem_cap_gib, s.time_cap_s, echo)
    meta["load_average_end"] = machine.load_average()
    df = report.frame(rows)
    lines = targets.evaluate(df, roof, s)
    meta.update(settings=attrs.asdict(s), command=command, peers=peer_versions(registry))
    return write_outputs(out, df, meta, roof, lines, command)


def peer_versions(registry) -> dict:
    """Installed peers and their versions (the layer peers are pinned, the step peer is any version)."""
    import importlib.metadata

    peers = plan.layer_peers(registry, registry.names("attention"))
    out = {lab: p.version or "unpinned"
           for lab, (_, p) in peers.items() if lab in plan.available_peers({lab: (p.module, p.version)})}
    for p in plan.available_peers(plan.STEP_PEERS):
        out[p] = importlib.metadata.version(plan.STEP_PEERS[p][0])
    return out


def rerender(out: Path) -> dict:
    """Re-write summary.md and the plots of a finished run from its results.csv and machine.json."""
    import json

    import pandas as pd

    from ..errors import ConfigError

    try:
        df = report.frame(pd.read_csv(out / "results.csv").to_dict("records"))
        meta = json.loads((out / "machine.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{out}: not a finished `effx bench` folder ({exc}); run `effx bench --out {out}` first") from None
    roof = meta.pop("roofline", {}) or {}
    meta.pop("targets", None)
    settings = BenchSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["settings"].items()})
    lines = targets.evaluate(df, roof, settings)
    return write_outputs(out, df, meta, roof, lines, meta.get("command", "effx bench"))


def write_outputs(out: Path, df, meta: dict, roof: dict, lines: list[dict], command: str) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "results.csv", "machine": out / "machine.json", "summary": out / "summary.md"}
    write_csv(paths["csv"], df, float_format=report.FLOAT_FORMAT)
    write_json(paths["machine"], {**meta, "roofline": roof, "targets": lines})
    for suite in ("layer", "step"):
        for what in ("time", "memory"):
            path = out / f"{what}_{suite}.png"
            if report.plot(df, suite, what, path, f"{suite}: {what} vs N ({meta['device']} {meta['dtype']})"):
                paths[f"{what}_{suite}"] = path
    flat = {k: v for k, v in meta.items() if not isinstance(v, dict)}
    flat["settings"] = meta.get("settings")
    flat["allocator_env"] = ", ".join(f"{k}={v or '(unset)'}" for k, v in meta["allocator_env"].items())
    write_text(paths["summary"], summary_markdown(df, flat, roof, lines, command))
    return paths
