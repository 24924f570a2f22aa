"""Every attention type x every positional encoding x every mask kind, through the whole encoder.

Checks: hidden states are [B, N, D]; gradients are finite; changing the tokens at padded positions
(padding) leaves outputs at real positions unchanged; values hidden by a dense mask don't leak
(checked at layer level by the conformance suite, here the model must simply honour the mask shapes).
"""
import pytest
import torch

import effx
from effx.config import AttentionSpec, ModelConfig, PositionalSpec
from effx.testing.params import attention_variants, positional_types

N, V = 24, 50
MASKS = ["none", "padding", "dense", "both"]


def tiny(att_cls, att_cfg, pos_cls):
    cfg = ModelConfig(vocab_size=V, d_model=32, n_layers=1, n_heads=2, d_ff=64, dropout=0.0, max_seq_len=64,
                      attention=AttentionSpec(att_cls.name, att_cfg), positional=PositionalSpec(pos_cls.name))
    torch.manual_seed(0)
    return effx.build_model(cfg, {"type": "classification", "num_classes": 3})


def masks(kind):
    kpm = torch.ones(2, N, dtype=torch.bool)
    kpm[1, 15:] = False
    dense = torch.rand(N, N, generator=torch.Generator().manual_seed(0)) > 0.4
    dense |= torch.eye(N, dtype=torch.bool)
    return (kpm if kind in ("padding", "both") else None), (dense if kind in ("dense", "both") else None)


@pytest.mark.parametrize("mask_kind", MASKS)
@pytest.mark.parametrize("pos_cls", positional_types())
@pytest.mark.parametrize("att_cls,att_cfg", attention_variants())
@pytest.mark.slow
def test_matrix(att_cls, att_cfg, pos_cls, mask_kind):
    if pos_cls.mode not in att_cls.capabilities.positional:
        with pytest.raises(effx.CapabilityError):
            tiny(att_cls, att_cfg, pos_cls)
        return
    model = tiny(att_cls, att_cfg, pos_cls).eval()
    kpm, dense = masks(mask_kind)
    ids = torch.randint(5, V, (2, N), generator=torch.Generator().manual_seed(1))
    hidden = model.encoder(ids, kpm, dense)
    assert hidden.shape == (2, N, 32) and torch.isfinite(hidden).all()
    model.train()
    model(ids, kpm, dense).square().sum().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    if kpm is not None:
        model.eval()
        ids2 = ids.clone()
        ids2[1, 15:] = torch.randint(5, V, (N - 15,), generator=torch.Generator().manual_seed(2))
        hidden2 = model.encoder(ids2, kpm, dense)
        torch.testing.assert_close(hidden2[1, :15], hidden[1, :15], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(hidden2[0], hidden[0], atol=1e-4, rtol=1e-4)
