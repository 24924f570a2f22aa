"""Relative error of Performer outputs against exact softmax attention, FAVOR+ vs FAVOR++.

Fixed inputs (seeded Gaussian q, k, v, B=1, H=4, N=512, Dh=64), every nb_features in the list, the
error ``||out - exact|| / ||exact||`` averaged over independent feature draws (``ctx.seed``). Input
scale ``s`` sets the logit spread: ``q . k / sqrt(Dh)`` has standard deviation ``s^2``. Writes a
Markdown table (atomically) with the command that produced it::

    python plugins/attention_performer/scripts/approx_error.py --out docs/approx_error_performer.md
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

B, H, N, DH = 1, 4, 512, 64


def exact(q, k, v):
    return torch.softmax(q.double() @ k.double().transpose(-2, -1) / math.sqrt(DH), -1) @ v.double()


def errors(cls, q, k, v, ref, m: int, draws: int) -> list[float]:
    out = []
    for seed in range(draws):
        att = cls(cls.Config(nb_features=m), effx.AttentionContext(H, DH, N, seed=seed)).eval()
        with torch.no_grad():
            o = att(q, k, v).double()
        out.append(((o - ref).norm() / ref.norm()).item())
    return out


def table(scales, features, draws) -> tuple[list[str], list[float]]:
    lines = ["| logit std (s^2) | nb_features | FAVOR+ rel. error | FAVOR++ rel. error | FAVOR++ / FAVOR+ |",
             "|---:|---:|---:|---:|---:|"]
    ratios = []
    for s in scales:
        g = torch.Generator().manual_seed(0)
        q, k = (torch.randn(B, H, N, DH, generator=g) * s for _ in range(2))
        v = torch.randn(B, H, N, DH, generator=g)
        ref = exact(q, k, v)
        for m in features:
            plus = errors(PerformerAttention, q, k, v, ref, m, draws)
            pp = errors(PerformerPlusPlusAttention, q, k, v, ref, m, draws)
            mp, mpp = statistics.mean(plus), statistics.mean(pp)
            lines.append(f"| {s * s:.3g} | {m} | {mp:.4f} ± {statistics.stdev(plus):.4f} | "
                         f"{mpp:.4f} ± {statistics.stdev(pp):.4f} | {mpp / mp:.3f} |")
            ratios.append(mpp / mp)
            print(lines[-1], flush=True)
    return lines, ratios


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="docs/approx_error_performer.md")
    p.add_argument("--scales", type=float, nargs="+", default=[0.5, 0.7071, 0.8409, 1.0])
    p.add_argument("--features", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    p.add_argument("--draws", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(2)
    rows, ratios = table(a.scales, a.features, a.draws)
    better = sum(r < 1 for r in ratios)
    cmd = "python plugins/attention_performer/scripts/approx_error.py " + " ".join(sys.argv[1:])
    text = "\n".join([
        "# Performer approximation error against exact attention",
        "",
        f"Produced by `{cmd}` (torch {torch.__version__}, {platform.machine()}, fp32 features, float64 reference).",
        "",
        f"Inputs: fixed seeded Gaussian q, k (std s) and v (std 1), B={B}, H={H}, N={N}, Dh={DH}; "
        f"error = ||out - exact|| / ||exact|| over all heads, mean ± std over {a.draws} independent feature "
        "draws (ctx.seed 0..). FAVOR+ = `performer_favor`, FAVOR++ = `performer_favor_pp` (optimal positive "
        "random features, Likhosherstov et al. 2022), same nb_features and same orthogonal draws.",
        "",
        *rows,
        "",
        f"FAVOR++ has the lower mean error in {better} of {len(ratios)} configurations "
        f"(error ratio FAVOR++/FAVOR+ from {min(ratios):.3f} to {max(ratios):.3f}).",
        "",
        "Reading the table: with isotropic Gaussian inputs the exact output averages many values, so "
        "||exact|| is small and the relative error exceeds 1 once the estimator's noise is larger than "
        "that signal (N = 512 keys, logit spread >= 0.5); positive random features are known to need many "
        "more features there. Errors fall as nb_features grows for both maps.",
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
