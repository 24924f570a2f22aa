"""Unpadded encoder (real tokens only) against the padded computation, for every attention and positional type."""
import pytest
import torch

import effx
from effx.config import AttentionSpec, ModelConfig, PositionalSpec
from effx.model.unpad import Packing
from effx.plugins import load_registry
from effx.testing.params import attention_variants

LENS = [37, 5, 64, 20]
POSITIONALS = ("sin", "learned", "rope", "relative")


def build(att_cls=None, att_cfg=None, pos="sin", pooling="mean", **kw):
    spec = AttentionSpec(att_cls.name, att_cfg) if att_cls is not None else AttentionSpec("sdpa", {})
    cfg = ModelConfig(vocab_size=60, d_model=32, n_layers=2, n_heads=4, d_ff=64, dropout=0.0, max_seq_len=128,
                      attention=spec, positional=PositionalSpec(pos), **kw)
    torch.manual_seed(0)
    return effx.build_model(cfg, {"type": "classification", "num_classes": 3, "pooling": pooling, "dropout": 0.0})


def batch(lens=LENS, width=64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 60, (len(lens), width), generator=gen)  # (B, N)
    mask = torch.arange(width)[None] < torch.tensor(lens)[:, None]  # (B, N)
    return ids.masked_fill(~mask, 0), mask


def both_paths(model, ids, mask, attn_mask=None):
    """(hidden at real tokens, logits, parameter grads) unpadded and padded."""
    out = []
    for unpad in (True, False):
        model.encoder.unpad = unpad
        model.zero_grad(set_to_none=True)
        hidden = model.encoder(ids, mask, attn_mask)  # (B, N, D)
        logits = model.head(hidden, mask)  # (B, C)
        (logits.square().sum() + hidden[mask].sum()).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        out.append((hidden[mask].detach(), logits.detach(), grads))
    return out


def assert_same(a, b, tol):
    torch.testing.assert_close(a[0], b[0], atol=tol, rtol=tol)
    torch.testing.assert_close(a[1], b[1], atol=tol, rtol=tol)
    assert a[2].keys() == b[2].keys()
    for name in a[2]:
        torch.testing.assert_close(a[2][name], b[2][name], atol=tol, rtol=tol, msg=name)


def compatible(att_cls):
    reg = load_registry()
    return [p for p in POSITIONALS if reg.get("positional", p).cls.mode in att_cls.capabilities.positional]


@pytest.mark.parametrize("att_cls,att_cfg", attention_variants())
def test_unpadded_equals_padded_for_every_attention_and_positional(att_cls, att_cfg):
    """Dynamic padding (width = longest sequence): the attention layout is the padded one, so every
    attention type gives the padded result up to fp32 rounding - forward and every gradient."""
    ids, mask = batch()
    for pos in compatible(att_cls):
        model = build(att_cls, att_cfg, pos).eval()
        unpadded, padded = both_paths(model, ids, mask)
        assert_same(unpadded, padded, 1e-5)


@pytest.mark.parametrize("att_cls,att_cfg", attention_variants())
@pytest.mark.slow
def test_trailing_padding_columns_are_dropped(att_cls, att_cfg):
    """Static padding to 128 (64 columns of padding in every row): the unpadded path attends over the
    64 used columns only. Exact attention is unchanged to fp32 rounding; approximate attentions
    whose hashing / chunking depends on the padded length may differ slightly (tolerance 1e-4)."""
    ids, mask = batch()
    ids, mask = (torch.nn.functional.pad(t, (0, 64)) for t in (ids, mask))  # (B, 128)
    tol = 1e-5 if att_cls.exact else 1e-4
    for pos in compatible(att_cls):
        model = build(att_cls, att_cfg, pos).eval()
        unpadded, padded = both_paths(model, ids, mask)
        assert_same(unpadded, padded, tol)


def test_token_wise_layers_see_real_tokens_only_and_padding_is_zero():
    model = build().eval()
    ids, mask = batch()
    seen = []
    model.encoder.blocks[0].fc1.register_forward_hook(lambda mod, inp, out: seen.append(tuple(inp[0].shape)))
    model.encoder.blocks[1].attn.qkv.register_forward_hook(lambda mod, inp, out: seen.append(tuple(inp[0].shape)))
    hidden = model.encoder(ids, mask)  # (B, N, D)
    assert seen == [(sum(LENS), 32), (sum(LENS), 32)]
    assert hidden.shape == (4, 64, 32) and bool((hidden[~mask] == 0).all())


def test_batch_without_padding_takes_the_plain_path():
    model = build().eval()
    ids, _ = batch([64] * 4)
    seen = []
    model.encoder.blocks[0].fc1.register_forward_hook(lambda mod, inp, out: seen.append(tuple(inp[0].shape)))
    full = model.encoder(ids, torch.ones(4, 64, dtype=torch.bool))
    assert seen == [(4, 64, 32)]
    torch.testing.assert_close(full, model.encoder(ids), atol=0, rtol=0)


@pytest.mark.parametrize("pooling", ["cls", "mean", "max"])
def test_unpadded_model_logits_match_padded_with_dense_attn_mask(pooling):
    model = build(pooling=pooling).eval()
    ids, mask = batch()
    ids, mask = (torch.nn.functional.pad(t, (0, 16)) for t in (ids, mask))  # (B, 80)
    gen = torch.Generator().manual_seed(3)
    attn = torch.rand(4, 80, 80, generator=gen) > 0.3  # (B, N, N)
    attn |= torch.eye(80, dtype=torch.bool)
    unpadded, padded = both_paths(model, ids, mask, attn)
    assert_same(unpadded, padded, 1e-5)


def test_wrong_attn_mask_shape_is_still_refused_when_unpadding():
    model = build().eval()
    ids, mask = batch()
    with pytest.raises(effx.EffxError, match=r"attn_mask must end in \(64, 64\)"):
        model(ids, mask, torch.ones(40, 40, dtype=torch.bool))


def test_gradient_checkpointing_and_dropout_train_on_packed_tokens():
    ids, mask = batch()
    grads = []
    for gc in (False, True):
        model = build(gradient_checkpointing=gc).train()
        for mod in model.modules():
            if hasattr(mod, "p"):
                mod.p = 0.2
        torch.manual_seed(7)
        model(ids, mask).sum().backward()
        grads.append(model.encoder.blocks[0].attn.qkv.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


def test_packing_round_trip_and_positions():
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [0, 1, 0, 0, 0]], dtype=torch.bool)  # (B, N)
    p = Packing(mask)
    assert p.n == 3 and p.tokens == 6
    assert p.positions.tolist() == [0, 1, 0, 1, 2, 1]  # a token keeps its column as its position
    x = torch.arange(6.0)[:, None].repeat(1, 2).requires_grad_()  # (T, 2)
    full = p.unpack_full(x)  # (B, N, 2)
    assert full.shape == (3, 5, 2) and full[2, 1, 0] == 5 and full[2, 0].abs().sum() == 0
    torch.testing.assert_close(p.pack(p.unpack(x)), x)
    full.sum().backward()
    assert x.grad.eq(1).all()


def test_bf16_autocast_unpadded_close_to_padded():
    model = build().eval()
    ids, mask = batch()
    outs = []
    for unpad in (True, False):
        model.encoder.unpad = unpad
        with torch.autocast("cpu", dtype=torch.bfloat16):
            outs.append(model(ids, mask).float())
    torch.testing.assert_close(outs[0], outs[1], atol=2e-2, rtol=2e-2)
