"""Correctness figures of the Performer attention: masked-key leaks, gradient vs finite differences,
one large key, FAVOR++ under an all-True mask, attention dropout, fidelity against exact and uniform.

Runs on this checkout's plugin, or on another copy of it (``--plugin DIR``, the directory holding
``effx_performer``), e.g. main's, to give before/after figures with the same inputs::

    python benchmarks/performer_correctness_figures.py
    python benchmarks/performer_correctness_figures.py --plugin /work/main/plugins/attention_performer

Gradient figures need float64 arithmetic. A copy that always computes in fp32 is measured through a
temporary float64 copy of its source (every ``.float()`` replaced by ``.double()``, same math).
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import os
import shutil
import sys
import tempfile

import torch

import effx

H, DH = 4, 64


def load(plugin_dir: str, name: str, f64_patch: bool = False):
    """Import ``plugin_dir/effx_performer`` as package ``name`` (optionally a float64 copy)."""
    root = os.path.join(plugin_dir, "effx_performer")
    if f64_patch:
        tmp = tempfile.mkdtemp(prefix="perf_f64_")
        dst = os.path.join(tmp, "effx_performer")
        shutil.copytree(root, dst)
        for fn in os.listdir(dst):
            if fn.endswith(".py"):
                path = os.path.join(dst, fn)
                with open(path) as f:
                    src = f.read()
                with open(path, "w") as f:
                    f.write(src.replace(".float()", ".double()"))
        root = dst
    spec = importlib.util.spec_from_file_location(name, os.path.join(root, "__init__.py"),
                                                  submodule_search_locations=[root])
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def make(cls, m=256, seed=0, heads=H, dh=DH, dropout=0.0, **kw):
    cfg = cls.Config(nb_features=m, redraw_interval=0, **kw)
    return cls(cfg, effx.AttentionContext(heads, dh, 1 << 16, dropout=dropout, seed=seed)).eval()


def gauss(shape, std, seed, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).mul(std).to(dtype)


def exact(q, k, v, mask=None):
    s = q.double() @ k.double().transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, N, N)
    if mask is not None:
        s = s.masked_fill(~mask, -math.inf)
    return torch.softmax(s, -1) @ v.double()


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def row_rel_max(a, b):
    """max over rows of ||a_i - b_i|| / ||b_i||."""
    return ((a.double() - b.double()).norm(dim=-1) / b.double().norm(dim=-1).clamp_min(1e-30)).max().item()


def zero_rows(out):
    return (out.abs().amax(-1) == 0).double().mean().item()


def masked_key_leak(cls, eps):
    """Change k, v at masked key positions (fresh same-distribution values; then 1e3-norm keys)."""
    n, cut = 256, 192
    q, k, v = (gauss((1, H, n, DH), s, i) for i, s in enumerate((0.5, 0.5, 1.0)))
    kpm = torch.ones(1, n, dtype=torch.bool)
    kpm[:, cut:] = False
    col = torch.ones(n, n, dtype=torch.bool)
    col[:, cut:] = False  # dense mask hiding the same keys from every query
    out = {}
    att = make(cls, feature_eps=eps) if eps is not None else make(cls)
    for how, kw in (("key_padding_mask", {"key_padding_mask": kpm}), ("attn_mask", {"attn_mask": col})):
        base = att(q, k, v, **kw)
        k2, v2 = k.clone(), v.clone()
        k2[..., cut:, :], v2[..., cut:, :] = gauss((1, H, n - cut, DH), 0.5, 7), gauss((1, H, n - cut, DH), 1.0, 8)
        same = att(q, k2, v2, **kw)
        k3 = k.clone()
        k3[..., cut:, :] = gauss((1, H, n - cut, DH), 1.0, 9)
        k3[..., cut:, :] *= 1e3 / k3[..., cut:, :].norm(dim=-1, keepdim=True)
        big = att(q, k3, v2, **kw)
        out[how] = (row_rel_max(same, base), row_rel_max(big, base), zero_rows(big))
    return out


def one_large_key(cls, eps):
    n = 512
    q, k, v = (gauss((1, H, n, DH), s, 10 + i) for i, s in enumerate((0.3, 0.3, 1.0)))
    k[..., 100, :] = gauss((1, H, DH), 10.0, 13)
    att = make(cls, feature_eps=eps) if eps is not None else make(cls)
    o = att(q, k, v)
    return zero_rows(o), rel(o, exact(q, k, v))


def grad_error(pkg, cls_name, std, path, eps=None):
    """Relative error of the directional derivative (autograd gradient . direction) against a
    central finite difference of the float64 forward, h = 1e-6."""
    cls = getattr(pkg, cls_name)
    n, dh, heads = 24, 16, 2
    q, k, v = (gauss((2, heads, n, dh), s, 20 + i, torch.float64) for i, s in enumerate((std, std, 1.0)))
    att = make(cls, 32, heads=heads, dh=dh, **({} if eps is None else {"feature_eps": eps}))
    att.projection = att.projection.double()
    kw = {}
    if path == "key_padding_mask":
        kpm = torch.ones(2, n, dtype=torch.bool)
        kpm[1, 17:] = False
        kw["key_padding_mask"] = kpm
    elif path == "attn_mask":
        kw["attn_mask"] = torch.rand(n, n, generator=torch.Generator().manual_seed(3)) > 0.3
    elif path == "rel_bias":
        kw["rel_bias"] = effx.RelativeBias(gauss((heads, 2 * n - 1), 1.0, 30, torch.float64), n)
    w = gauss((2, heads, n, dh), 1.0, 40, torch.float64)
    dirs = [gauss((2, heads, n, dh), 1.0, 50 + i, torch.float64) for i in range(3)]

    def loss(a, b, c):
        return (att(a, b, c, **kw).double() * w).sum()

    args = [t.clone().requires_grad_() for t in (q, k, v)]
    grads = torch.autograd.grad(loss(*args), args)
    with torch.no_grad():
        h = 1e-6
        fd = (loss(*(t + h * d for t, d in zip((q, k, v), dirs))) - loss(*(t - h * d for t, d in zip((q, k, v), dirs)))) / (2 * h)
    ad = sum((g * d).sum() for g, d in zip(grads, dirs))
    return abs((ad - fd) / fd).item()


def fidelity(cls, std, m, n=512, dh=DH, draws=3):
    q, k, v = (gauss((1, H, n, dh), s, 60 + i) for i, s in enumerate((std, std, 1.0)))
    ref = exact(q, k, v)
    uni = rel(v.double().mean(-2, keepdim=True).expand_as(ref), ref)
    errs = [rel(make(cls, m, seed=s, dh=dh)(q, k, v), ref) for s in range(draws)]
    return sum(errs) / draws, uni


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--plugin", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "plugins", "attention_performer"))
    a = p.parse_args()
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    pkg = load(os.path.abspath(a.plugin), "effx_performer_under_test")
    types = {"FAVOR+": pkg.PerformerAttention, "FAVOR++": pkg.PerformerPlusPlusAttention}
    print(f"plugin: {os.path.abspath(a.plugin)}")
    with torch.no_grad():
        print("\n[3] masked keys (N=256, 64 masked, q,k std 0.5): max row rel. change for same-distribution "
              "masked k,v | for 1e3-norm masked keys | fraction of zero rows with 1e3-norm masked keys")
        for name, cls in types.items():
            for eps in (None, 0.0):
                for how, (s, b, z) in masked_key_leak(cls, eps).items():
                    print(f"  {name:8s} eps={'default' if eps is None else eps!s:7s} {how:16s} {s:.3e} | {b:.3e} | {z:.3f}")
        print("\n[6] one key of std 10 among keys of std 0.3 (N=512, no mask): zero-row fraction, rel. error vs exact")
        for name, cls in types.items():
            for eps in (None, 0.0):
                z, e = one_large_key(cls, eps)
                print(f"  {name:8s} eps={'default' if eps is None else eps!s:7s} zero rows {z:.3f}  rel. error {e:.4f}")
        print("\n[7] performer_favor_pp: all-True attn_mask vs no mask (N=256, q,k std 0.5), rel. change")
        q, k, v = (gauss((1, H, 256, DH), s, 70 + i) for i, s in enumerate((0.5, 0.5, 1.0)))
        att = make(types["FAVOR++"])
        print(f"  {rel(att(q, k, v, attn_mask=torch.ones(256, 256, dtype=torch.bool)), att(q, k, v)):.3e}")
        for name, cls in types.items():
            try:
                make(cls, dropout=0.1)
                print(f"  {name}: attention_dropout 0.1 accepted silently")
            except effx.ConfigError as err:
                print(f"  {name}: attention_dropout 0.1 -> ConfigError: {err}")
    print("\n[4] gradient: |autograd . dir - central FD| / |FD| (float64, B=2, H=2, N=24, Dh=16, M=32)")
    f64 = pkg
    probe = make(pkg.PerformerAttention, 8, heads=1, dh=4)
    probe.projection = probe.projection.double()
    x = [torch.randn(1, 1, 3, 4, dtype=torch.float64) for _ in range(3)]
    if torch.equal(probe(*x), probe(x[0] * (1 + 1e-12), *x[1:])):  # a 1e-12 change is lost in fp32
        f64 = load(os.path.abspath(a.plugin), "effx_performer_under_test_f64", f64_patch=True)
        print("  (this copy computes in fp32: measured through its float64-patched copy)")
    for cls_name in ("PerformerAttention", "PerformerPlusPlusAttention"):
        for path in ("none", "key_padding_mask", "attn_mask", "rel_bias"):
            errs = [grad_error(f64, cls_name, s, path) for s in (0.3, 0.5, 1.0)]
            print(f"  {cls_name:28s} {path:16s} std 0.3/0.5/1.0: " + " ".join(f"{e:.2e}" for e in errs))
        errs = [grad_error(f64, cls_name, s, "none", eps=0.0) for s in (0.3, 0.5, 1.0)]
        print(f"  {cls_name:28s} {'eps=0':16s} std 0.3/0.5/1.0: " + " ".join(f"{e:.2e}" for e in errs))
    print("\n[5] fidelity, default config (N=512, H=4, 3 feature draws): rel. error vs exact | uniform (mean v)")
    with torch.no_grad():
        for dh in (64, 16):
            for std in (0.5, 1.0):
                for name, cls in types.items():
                    e, u = fidelity(cls, std, cls.Config().nb_features, dh=dh)
                    print(f"  Dh={dh:3d} std {std}: {name:8s} M={cls.Config().nb_features} {e:.4f} | uniform {u:.4f}")


if __name__ == "__main__":
    main()
