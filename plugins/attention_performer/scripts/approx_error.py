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


def errors(cls, q, k, v, ref, m: int, draws: int, eps: float | None = None) -> list[float]:
    """Relative errors over ``draws`` feature draws; ``eps=None``: the default ``feature_eps``."""
    out = []
    for seed in range(draws):
        cfg = cls.Config(nb_features=m) if eps is None else cls.Config(nb_features=m, feature_eps=eps)
        att = cls(cfg, effx.AttentionContext(H, DH, N, seed=seed)).eval()
        with torch.no_grad():
            o = att(q, k, v).double()
        out.append(((o - ref).norm() / ref.norm()).item())
    return out


def table(scales, features, draws) -> tuple[list[str], list[float]]:
    lines = ["| logit std (s^2) | nb_features | FAVOR+ rel. error | FAVOR++ rel. error | FAVOR++ / FAVOR+ "
             "| FAVOR+ eps=0 | FAVOR++ eps=0 | uniform attention |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    ratios = []
    for s in scales:
        g = torch.Generator().manual_seed(0)
        q, k = (torch.randn(B, H, N, DH, generator=g) * s for _ in range(2))
        v = torch.randn(B, H, N, DH, generator=g)
        ref = exact(q, k, v)
        uniform = ((v.double().mean(-2, keepdim=True) - ref).norm() / ref.norm()).item()  # output = mean(v)
        for m in features:
            plus = errors(PerformerAttention, q, k, v, ref, m, draws)
            pp = errors(PerformerPlusPlusAttention, q, k, v, ref, m, draws)
            plus0 = errors(PerformerAttention, q, k, v, ref, m, draws, eps=0.0)
            pp0 = errors(PerformerPlusPlusAttention, q, k, v, ref, m, draws, eps=0.0)
            mp, mpp = statistics.mean(plus), statistics.mean(pp)
            lines.append(f"| {s * s:.3g} | {m} | {mp:.4f} ± {statistics.stdev(plus):.4f} | "
                         f"{mpp:.4f} ± {statistics.stdev(pp):.4f} | {mpp / mp:.3f} | "
                         f"{statistics.mean(plus0):.4f} | {statistics.mean(pp0):.4f} | {uniform:.4f} |")
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
        "random features, Likhosherstov et al. 2022), same nb_features and same orthogonal draws, default "
        "`feature_eps` (1e-4, performer-pytorch's: added to every feature after the max shift). "
        "`eps=0` columns: the same with `feature_eps: 0`, i.e. the unbiased estimators (mean over the same "
        "draws). `uniform attention`: the error of outputting mean(v) for every query.",
        "",
        *rows,
        "",
        f"FAVOR++ has the lower mean error in {better} of {len(ratios)} configurations "
        f"(error ratio FAVOR++/FAVOR+ from {min(ratios):.3f} to {max(ratios):.3f}).",
        "",
        "Reading the table: with isotropic Gaussian inputs the exact output averages many values, so "
        "||exact|| is small. The unbiased estimators (eps=0) have variance growing like exp(2|x + y|^2): "
        "their error exceeds 1 once the logit spread is >= 0.5 at N = 512 (positive random features are "
        "known to need many more features there). The feature eps bounds that: a feature far below the "
        "head's largest is replaced by eps, which pulls such rows towards uniform weights, so at large "
        "spreads the default error approaches that of uniform attention (last column), as with "
        "performer-pytorch's `FastAttention`, whose softmax kernel this reproduces (the plugin's tests check "
        "equal outputs on N(0, 1) inputs with the same projection). At spread 0.25 eps lowers the error by "
        "5-10 %, and uniform attention is still better than FAVOR+ below 1024 features and than FAVOR++ below 512.",
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
