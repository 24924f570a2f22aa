"""A document's output must not depend on how its batch is padded or which documents share it, and
keys no query may see must take no part in hashing or chunking."""
from __future__ import annotations

import pytest
import torch

import effx
from effx_reformer.balanced import ReformerBalanced
from effx_reformer.lsh import ReformerLSH

TYPES = [ReformerLSH, ReformerBalanced]
H, DH = 2, 16


def make(cls, **kw):
    att = cls(cls.Config(bucket_size=16, n_hashes=2, **kw), effx.AttentionContext(H, DH, 256, seed=3))
    return att.eval()


def rand(*shape, seed=0, scale=1.0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


@pytest.mark.parametrize("shared", [True, False], ids=["shared_qk", "separate_qk"])
@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.name)
def test_padding_amount_and_partners_change_nothing(cls, shared):
    """The same 70-token sequence padded to 80 or 150 (garbage padding), alone or beside a longer one."""
    att = make(cls, shared_qk=shared)
    q, k, v = (rand(1, H, 70, DH, seed=s) for s in range(3))
    outs = []
    for total, partner in ((70, False), (80, False), (150, False), (150, True)):
        b = 2 if partner else 1
        qq, kk, vv = (torch.cat([t, rand(1, H, total - 70, DH, seed=9, scale=50.0)], 2).repeat(b, 1, 1, 1)
                      for t in (q, k, v))
        kpm = torch.zeros(b, total, dtype=torch.bool)
        kpm[0, :70] = True
        if partner:
            qq[1], kk[1], vv[1] = (rand(H, total, DH, seed=20 + i) for i in range(3))
            kpm[1] = True
        outs.append(att(qq, kk, vv, key_padding_mask=kpm if total > 70 or partner else None)[0, :, :70])
    for o in outs[1:]:
        assert (o - outs[0]).abs().max() < 1e-5


@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.name)
def test_hidden_keys_of_any_magnitude_change_nothing(cls):
    """shared_qk: false - keys hidden by padding, or from every query by attn_mask, are not hashed."""
    att = make(cls, shared_qk=False)
    q, k, v = (rand(2, H, 64, DH, seed=s) for s in range(3))
    kpm = torch.ones(2, 64, dtype=torch.bool)
    kpm[1, 40:] = False
    mask = torch.ones(64, 64, dtype=torch.bool)
    mask[:, 30:36] = False  # six keys no query may see
    base = att(q, k, v, key_padding_mask=kpm, attn_mask=mask)
    k2, v2 = k.clone(), v.clone()
    k2[1, :, 40:] = rand(H, 24, DH, seed=7, scale=1e3)
    k2[:, :, 30:36] = rand(2, H, 6, DH, seed=8, scale=1e3)
    v2[:, :, 30:36] += 1e3
    out = att(q, k2, v2, key_padding_mask=kpm, attn_mask=mask)
    assert (out[0] - base[0]).abs().max() < 1e-5
    assert (out[1, :, :40] - base[1, :, :40]).abs().max() < 1e-5


def test_bucket_count_does_not_follow_the_padded_length():
    att = make(ReformerLSH)
    assert att.n_buckets() == 256 // 16
