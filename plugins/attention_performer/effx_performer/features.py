"""Random feature maps for the softmax kernel (Choromanski et al., "Rethinking Attention with
Performers", ICLR 2021).

``exp(x . y) = E_w[f(w, x) f(w, y)]`` with positive random features
``f(w, x) = exp(w . x - |x|^2 / 2)``, ``w ~ N(0, I_d)``; with ``x = q / d^(1/4)`` and
``y = k / d^(1/4)`` this is the softmax kernel ``exp(q . k / sqrt(d))``. The ``M`` draws are made
orthogonal block by block (QR of Gaussian ``d x d`` matrices, rows rescaled by chi-distributed
norms so each row is still marginally Gaussian), which lowers the estimator's variance.

Features as computed, for a query row ``i`` and a head's keys ``j``::

    l_im = w_m . x_i + a_m - |x_i|^2/2         phi(q_i)_m = (exp(l_im) + eps) e^-c_i
    l_jm = w_m . y_j + a_m - |y_j|^2/2         phi(k_j)_m = (exp(l_jm) + eps) e^-c_K

``a_m`` is a per-feature offset (0 for FAVOR+, ``A |w_m|^2 + log D`` for FAVOR++). ``exp(l)`` is the
textbook feature (mean 1 over ``w``), ``eps`` an absolute floor on it (``feature_eps``).

The stabilisers, and why they cancel exactly. ``c_i = max(max_m l_im, log eps)`` (per query row) and
``c_K = max(max over visible (j, m) of l_jm, log eps)`` (one per head; a padded key has logit
``-1e30`` and never sets it). Every term of query i's numerator ``sum_j phi(q_i).phi(k_j) v_j`` and
normaliser ``sum_j phi(q_i).phi(k_j)`` carries the same factor ``e^-(c_i + c_K)``, so the ratio is
the same for ANY value of the stabilisers: a masked key cannot reach an output through them, and the
backward may treat them as constants and still be the exact derivative of the forward. Because
``l`` includes ``-|x|^2/2``, a large-norm key (whose logits are all very negative) never sets
``c_K``, so it cannot push the other keys' features to 0; including ``log eps`` keeps
``eps e^-c <= 1``, so nothing overflows.

What ``eps`` does. The estimator is unbiased at ``eps = 0``, but its variance grows like
``exp(2|x + y|^2)``. With ``f + eps`` every kernel entry gains ``eps (f_q + f_k) + eps^2``, about
``2 eps + eps^2`` (``f`` has mean 1): a constant added to every visible key's weight, i.e. a
shrinkage of each row towards the mean of its visible values, the same for every query and key
scale (it does not depend on the stabilisers). It trades bias for variance: the default 1.0
lowers the error against exact attention wherever the unbiased estimator is no better than uniform
attention, and raises it where the estimator is already accurate (many features, small logit
spread); docs/approx_error_performer.md measures both.

Both maps are bounded by 2, so no inf can appear downstream. The padding term and
``a_m`` are folded into the projection matmul by augmenting ``x`` and ``w`` with one column each;
the ``-|x|^2/2`` row term is applied in the same pass that subtracts the stabiliser, and ``eps`` enters
the contractions analytically (``(F + e) S = F S + e 1 colsum(S)``, ``e = eps e^-c``), so no extra pass over the
``[B, H, N, M]`` tensor is spent on any of them. Callers run this in fp32.
"""
from __future__ import annotations

import math

import torch

MASKED_LOGIT = -1e30  # logit of a padded key: exp() underflows to exactly 0 and no inf appears
DEN_FLOOR = 1e-20  # normaliser below which a query "sees" no key in fp32 features (both maps peak at 1)
DEFAULT_FEATURE_EPS = 1.0  # absolute floor on the textbook features (mean 1): shrinks towards uniform weights


def orthogonal_gaussian(m: int, d: int, generator: torch.Generator) -> torch.Tensor:
    """``[M, d]`` random features: orthogonal ``d x d`` blocks (Haar via sign-corrected QR), rows
    rescaled by the norms of independent Gaussian vectors."""
    blocks = math.ceil(m / d)
    g = torch.randn(blocks, d, d, generator=generator, dtype=torch.float64)  # (nb, d, d)
    qmat, r = torch.linalg.qr(g)  # (nb, d, d)
    qmat = qmat * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[:, None, :]  # Haar-uniform
    w = qmat.transpose(-2, -1).reshape(blocks * d, d)[:m]  # (M, d) rows orthonormal within a block
    norms = torch.randn(m, d, generator=generator, dtype=torch.float64).norm(dim=-1)  # (M,) chi_d
    return (w * norms[:, None]).float()


def augment(
    x: torch.Tensor, w: torch.Tensor, row: torch.Tensor | None = None, offset: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Matmul operands whose product is ``x @ w^T + row[..., None] + offset[..., None, :]``.

    ``x [B, H, N, d]``; ``w [M, d] | [B, H, M, d]``; ``row [B, H, N]`` per-token term; ``offset [B|1, H|1, M]``
    per-feature term. Returns ``x' [B, H, N, d']`` and ``w' [M, d'] | [B, H, M, d']`` with
    ``d' <= d + 2``, so the ``[B, H, N, M]`` logits are written by one matmul and nothing else.
    """
    if row is None and offset is None:
        return x, w
    b, h, n, _ = x.shape
    m = w.shape[-2]
    xs, ws = [x], [w.expand(b, h, m, -1)]  # (B, H, N, d), (B, H, M, d)
    if row is not None:
        xs.append(row[..., None])  # (B, H, N, 1)
        ws.append(x.new_ones(b, h, m, 1))
    if offset is not None:
        xs.append(x.new_ones(b, h, n, 1))
        ws.append(offset[..., None].expand(b, h, m, 1))  # (B, H, M, 1)
    return torch.cat(xs, -1), torch.cat(ws, -1)


def row_term(x: torch.Tensor, sq_scale: float) -> torch.Tensor:
    """``-sq_scale |x|^2 / 2`` ``[B, H, N]``: the ``-|x|^2/2`` term of the scaled inputs."""
    return torch.linalg.vector_norm(x, dim=-1).square() * (-0.5 * sq_scale)  # (B, H, N)


def query_operands(q: torch.Tensor, w: torch.Tensor, offset: torch.Tensor | None = None):
    """Operands of the query logits ``w_m . x_i + a_m``; ``w`` already carries the input scaling
    ``c = Dh^(-1/4)`` (and FAVOR++'s ``B``). The row term is :func:`row_term` ``(q, c^2)``."""
    return augment(q, w, offset=offset)


def key_operands(k: torch.Tensor, w: torch.Tensor, kpm: torch.Tensor | None = None, offset=None):
    """Operands of the key logits ``w_m . y_j + a_m``; padded keys get ``-1e30`` (folded into the
    matmul, so they never set the max). The row term is :func:`row_term` ``(k, c^2)``.

    A batch row with no real key keeps finite weights and is silenced by its zeroed values
    (see :func:`values_with_ones`).
    """
    pad = None
    if kpm is not None:
        pad = k.new_zeros(k.shape[:-1]).masked_fill(~kpm[:, None, :], MASKED_LOGIT)  # (B, H, N)
    return augment(k, w, row=pad, offset=offset)


QUERY_DIMS = (-1,)  # query stabiliser: max over features, per row
KEY_DIMS = (-2, -1)  # key stabiliser: one max over all (key, feature) pairs of a head


def stabiliser(logits: torch.Tensor, dims: tuple[int, ...], eps: float) -> torch.Tensor:
    """``c = max(max over dims of logits, log eps)``, detached, keepdim: the constant divided out of
    ``f + eps``. ``logits`` already hold the ``-|x|^2/2`` row term, so a large-norm input (whose
    logits are all very negative) never sets it; including ``log eps`` keeps ``eps e^-c <= 1``."""
    c = logits.detach().amax(dim=dims, keepdim=True)
    return c.clamp_min(math.log(eps)) if eps else c


def stabilised_features(
    xa: torch.Tensor, wa: torch.Tensor, row: torch.Tensor, dims: tuple[int, ...], eps: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(f + eps) e^-c = exp(logits + row - c) + eps e^-c`` (autograd version) -> ``[B, H, N, M]``
    and ``c`` ``[B, H, N|1, 1]``.

    ``c`` (:func:`stabiliser`) is one constant per row (``dims = QUERY_DIMS``) or per head
    (``KEY_DIMS``): it scales every term of a query's numerator and normaliser alike, so it cancels
    exactly in the attention ratio and carries no gradient - the gradient is that of the output.
    """
    logits = xa @ wa.transpose(-2, -1) + row[..., None]  # (B, H, N, M)
    c = stabiliser(logits, dims, eps)  # (B, H, N|1, 1)
    feats = torch.exp(logits - c)
    return (feats + eps * torch.exp(-c) if eps else feats), c


def positive_features(xa, wa, row, dims: tuple[int, ...], eps: float = 0.0) -> torch.Tensor:
    """:func:`stabilised_features` without the stabiliser."""
    return stabilised_features(xa, wa, row, dims, eps)[0]


def relu_features(x: torch.Tensor, w: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Generalised kernel ``relu(w . x) + eps`` (Choromanski et al., 2021, section 2.2) -> ``[B, H, N, M]``."""
    return torch.relu(x @ w.t()) + eps


def values_with_ones(v: torch.Tensor, kpm: torch.Tensor | None) -> torch.Tensor:
    """``[v, 1]`` so one contraction yields numerator and normaliser; padded keys zeroed in both.

    ``v [B, H, N, Dh]`` -> ``[B, H, N, Dh + 1]``.
    """
    out = torch.cat([v, v.new_ones(*v.shape[:-1], 1)], dim=-1)  # (B, H, N, Dh+1)
    if kpm is not None:
        out = out.masked_fill(~kpm[:, None, :, None], 0.0)
    return out
