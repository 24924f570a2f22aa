"""Relative error of Performer outputs against exact softmax attention AND against uniform attention.

Fixed inputs (seeded Gaussian q, k of std ``s``, v of std 1, B=1, H=4, N=512), head sizes 64 and 16,
every nb_features in the list; error ``||out - exact|| / ||exact||`` (float64 reference) averaged
over independent feature draws (``ctx.seed``), for FAVOR+ and FAVOR++ with the default
``feature_eps`` and with ``feature_eps: 0`` (the unbiased estimators). "uniform" is the error of
outputting mean(v) for every query: an estimator is only worth its cost where it is below that.
Writes a Markdown table (atomically) with the command that produced it::

    python benchmarks/performer_approx_error.py --out docs/approx_error_performer.md
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import tempfile

import torch

import effx
from effx_performer import PerformerAttention, PerformerPlusPlusAttention

B, H, N = 1, 4, 512
TYPES = (PerformerAttention, PerformerPlusPlusAttention)


def exact(q, k, v):
    return torch.softmax(q.double() @ k.double().transpose(-2, -1) / math.sqrt(q.shape[-1]), -1) @ v.double()


def errors(cls, q, k, v, ref, m: int, draws: int, eps: float | None = None) -> list[float]:
    """Relative errors over ``draws`` feature draws; ``eps=None``: the default ``feature_eps``."""
    out = []
    for seed in range(draws):
        cfg = cls.Config(nb_features=m) if eps is None else cls.Config(nb_features=m, feature_eps=eps)
        att = cls(cfg, effx.AttentionContext(H, q.shape[-1], N, seed=seed)).eval()
        with torch.no_grad():
            o = att(q, k, v).double()
        out.append(((o - ref).norm() / ref.norm()).item())
    return out


def cell(errs: list[float], uniform: float) -> str:
    mark = " **<**" if statistics.mean(errs) < uniform else ""
    return f"{statistics.mean(errs):.3f} ± {statistics.stdev(errs):.3f}{mark}"


def table(dims, scales, features, draws) -> tuple[list[str], dict]:
    lines = ["| Dh | q,k std | nb_features | FAVOR+ | FAVOR++ | FAVOR+ eps=0 | FAVOR++ eps=0 | uniform |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    wins = {"FAVOR+": 0, "FAVOR++": 0, "FAVOR+ eps=0": 0, "FAVOR++ eps=0": 0, "cells": 0}
    for dh in dims:
        for s in scales:
            g = torch.Generator().manual_seed(0)
            q, k = (torch.randn(B, H, N, dh, generator=g) * s for _ in range(2))
            v = torch.randn(B, H, N, dh, generator=g)
            ref = exact(q, k, v)
            uniform = ((v.double().mean(-2, keepdim=True) - ref).norm() / ref.norm()).item()
            for m in features:
                cols = {"FAVOR+": errors(TYPES[0], q, k, v, ref, m, draws),
                        "FAVOR++": errors(TYPES[1], q, k, v, ref, m, draws),
                        "FAVOR+ eps=0": errors(TYPES[0], q, k, v, ref, m, draws, eps=0.0),
                        "FAVOR++ eps=0": errors(TYPES[1], q, k, v, ref, m, draws, eps=0.0)}
                for name, errs in cols.items():
                    wins[name] += statistics.mean(errs) < uniform
                wins["cells"] += 1
                lines.append(f"| {dh} | {s:g} | {m} | " + " | ".join(cell(e, uniform) for e in cols.values())
                             + f" | {uniform:.3f} |")
                print(lines[-1], flush=True)
    return lines, wins


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="docs/approx_error_performer.md")
    p.add_argument("--dims", type=int, nargs="+", default=[64, 16])
    p.add_argument("--scales", type=float, nargs="+", default=[0.5, 0.7071, 1.0])
    p.add_argument("--features", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    p.add_argument("--draws", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    rows, wins = table(a.dims, a.scales, a.features, a.draws)
    eps = PerformerAttention.Config().feature_eps
    cmd = "python benchmarks/performer_approx_error.py " + " ".join(sys.argv[1:])
    summary = ", ".join(f"{k} in {v}" for k, v in wins.items() if k != "cells")
    text = "\n".join([
        "# Performer approximation error against exact and against uniform attention",
        "",
        f"Produced by `{cmd.strip()}` (torch {torch.__version__}, {platform.machine()}, fp32 features, "
        "float64 reference).",
        "",
        f"Inputs: fixed seeded Gaussian q, k (std s) and v (std 1), B={B}, H={H}, N={N}; the logit "
        "q.k/sqrt(Dh) has std s^2. Error = ||out - exact|| / ||exact|| over all heads, mean ± std over "
        f"{a.draws} independent orthogonal feature draws (ctx.seed 0..). FAVOR+ = `performer_favor`, "
        "FAVOR++ = `performer_favor_pp`, same draws; the first two columns use the default "
        f"`feature_eps` ({eps:g}), the `eps=0` columns the unbiased estimators. `uniform`: the error of "
        "outputting mean(v) for every query. **<** marks an error below uniform's.",
        "",
        *rows,
        "",
        f"Below uniform attention ({wins['cells']} cells): {summary}.",
        "",
        "Reading the table. The unbiased estimators' variance grows like exp(2|x + y|^2) with "
        "|x|^2 = s^2 sqrt(Dh): at Dh = 64 and s >= 0.71 their error is far above uniform attention's for "
        "every nb_features here. The default `feature_eps` adds about 2 eps + eps^2 to every kernel entry, a "
        "shrinkage towards mean(v) that does not depend on the stabilisers (they cancel exactly): it is what "
        "puts FAVOR+ below uniform attention at Dh = 64, s = 0.5 from 256 features, and it costs accuracy "
        "where the estimator is already good (Dh = 16, s = 0.5, many features: compare the eps=0 columns). "
        "Where a row has no **<** in any column, random features with <= 1024 draws cannot beat uniform "
        "attention at that logit spread.",
        "",
    ])
    out_dir = os.path.dirname(os.path.abspath(a.out))
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_dir, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
