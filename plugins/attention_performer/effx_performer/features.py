"""Random feature maps for the softmax kernel (Choromanski et al., "Rethinking Attention with
Performers", ICLR 2021).

``exp(x . y) = E_w[f(w, x) f(w, y)]`` with positive random features
``f(w, x) = exp(w . x - |x|^2 / 2)``, ``w ~ N(0, I_d)``; with ``x = q / d^(1/4)`` and
``y = k / d^(1/4)`` this is the softmax kernel ``exp(q . k / sqrt(d))``. The ``M`` draws are made
orthogonal block by block (QR of Gaussian ``d x d`` matrices, rows rescaled by chi-distributed
norms so each row is still marginally Gaussian), which lowers the estimator's variance.

Numerical stability. Attention output is the ratio ``phi(q)^T S / phi(q)^T z``, so any factor that
is constant per query row, or constant over all keys, cancels exactly:

* queries: ``phi(q_i) = exp(w_m . x_i + a_m - max_m(...))`` - the row max, the ``-|x|^2/2``
  term and ``1/sqrt(M)`` are all per-row constants, so they are dropped or free to choose;
* keys: ``phi(k_j) = exp(w_m . y_j - |y_j|^2/2 + a_m - max)`` with one max over all (key,
  feature) pairs of the head (padded keys get logit ``-1e30``, weight exactly 0, and never set the
  max). Both maps are bounded by 1, so no inf can appear downstream.

``a_m`` is a per-feature offset (0 for FAVOR+, ``A |w_m|^2`` for FAVOR++). The per-row and global
terms are folded into the projection matmul by augmenting ``x`` and ``w`` with one column each, so
no extra pass over the ``[B, H, N, M]`` tensor is spent on them. Callers run this in fp32.
"""
from __future__ import annotations

import math

import torch

MASKED_LOGIT = -1e30  # logit of a padded key: exp() underflows to exactly 0 and no inf appears
DEN_FLOOR = 1e-20  # normaliser below which a query "sees" no key in fp32 features (both maps peak at 1)


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


def query_operands(x: torch.Tensor, w: torch.Tensor, offset: torch.Tensor | None = None):
    """Operands of the query logits ``w_m . x_i + a_m`` (per-row terms cancel, so none are added)."""
    return augment(x, w, offset=offset)


def key_operands(k: torch.Tensor, w: torch.Tensor, kpm: torch.Tensor | None = None, offset=None, sq_scale: float = 1.0):
    """Operands of the key logits ``w_m . k_j - sq_scale |k_j|^2/2 + a_m``; padded keys get ``-1e30``.

    ``w`` already carries the input scaling ``c = Dh^(-1/4)`` (and FAVOR++'s ``B``); the row term
    uses ``sq_scale = c^2`` only.
    A batch row with no real key keeps finite weights and is silenced by its zeroed values
    (see :func:`values_with_ones`).
    """
    row = torch.linalg.vector_norm(k, dim=-1).square() * (-0.5 * sq_scale)  # (B, H, N): -|y|^2/2
    if kpm is not None:
        row = row.masked_fill(~kpm[:, None, :], MASKED_LOGIT)  # (B, H, N)
    return augment(k, w, row=row, offset=offset)


QUERY_DIMS = (-1,)  # query stabiliser: max over features, per row
KEY_DIMS = (-2, -1)  # key stabiliser: one max over all (key, feature) pairs of a head


def positive_features(xa: torch.Tensor, wa: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """``exp(logits - max)`` (autograd version) -> ``[B, H, N, M]``. The max cancels in the
    attention ratio, so it carries no gradient."""
    logits = xa @ wa.transpose(-2, -1)  # (B, H, N, M)
    return torch.exp(logits - logits.detach().amax(dim=dims, keepdim=True))


@torch.no_grad()
def positive_features_(xa: torch.Tensor, wa: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """Same as :func:`positive_features`, in place on the one logits buffer (no autograd)."""
    logits = xa @ wa.transpose(-2, -1)  # (B, H, N, M)
    return logits.sub_(logits.amax(dim=dims, keepdim=True)).exp_()


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
