import pytest
import torch

import effx
from effx.config import AttentionSpec, ModelConfig, PositionalSpec
from effx.testing.params import attention_variants


def cfg(**kw):
    base = dict(vocab_size=60, d_model=32, n_layers=2, n_heads=4, d_ff=64, dropout=0.0, max_seq_len=128)
    base.update(kw)
    return ModelConfig(**base)


def test_no_torch_transformer_shortcuts():
    m = effx.build_model(cfg(), "mlm")
    banned = (torch.nn.TransformerEncoder, torch.nn.TransformerEncoderLayer, torch.nn.MultiheadAttention)
    assert not any(isinstance(mod, banned) for mod in m.modules())


@pytest.mark.parametrize("att_cls,att_cfg", attention_variants())
def test_layer_and_block_shapes_for_every_attention(att_cls, att_cfg):
    m = effx.build_model(cfg(attention=AttentionSpec(att_cls.name, att_cfg)), "mlm")
    x = torch.randn(3, 19, 32)
    block = m.encoder.blocks[0]
    assert block.attn(x).shape == (3, 19, 32)
    assert block(x).shape == (3, 19, 32)


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_pre_and_post_ln(norm):
    m = effx.build_model(cfg(norm=norm), {"type": "classification", "num_classes": 2})
    out = m(torch.randint(0, 60, (2, 9)))
    assert out.shape == (2, 2) and torch.isfinite(out).all()
    assert isinstance(m.encoder.final_ln, torch.nn.LayerNorm) == (norm == "pre")


def test_too_long_input_names_length_limit_and_key():
    m = effx.build_model(cfg(max_seq_len=16), "mlm")
    with pytest.raises(effx.SequenceTooLongError) as exc:
        m(torch.zeros(1, 17, dtype=torch.long))
    assert str(exc.value) == ("input length 17 exceeds model.max_seq_len=16; truncate the input "
                              "(data.max_length) or raise model.max_seq_len in the config")


def test_mlm_head_tied_to_embedding():
    m = effx.build_model(cfg(), "mlm")
    assert m.head.decoder.weight is m.encoder.tok.weight
    assert m(torch.randint(0, 60, (2, 5))).shape == (2, 5, 60)


def test_seeded_build_is_reproducible():
    # build_model initialises from the global RNG: same global seed -> same weights
    torch.manual_seed(5)
    a = effx.build_model(cfg(), "mlm")
    torch.manual_seed(5)
    b = effx.build_model(cfg(), "mlm")
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_gradient_checkpointing_same_gradients():
    torch.manual_seed(0)
    ids = torch.randint(0, 60, (2, 12))
    grads = []
    for gc in (False, True):
        torch.manual_seed(1)
        m = effx.build_model(cfg(gradient_checkpointing=gc), {"type": "classification", "num_classes": 2}).train()
        m(ids).sum().backward()
        grads.append(m.encoder.blocks[0].attn.qkv.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


def test_long_sequence_4096_sdpa_forward_backward():
    """Issue 2 'Done when': 2-layer model at N=4096 with sdpa, forward + backward on CPU."""
    m = effx.build_model(cfg(max_seq_len=4096, d_model=64, n_heads=2, d_ff=128), {"type": "classification", "num_classes": 2})
    ids = torch.randint(0, 60, (1, 4096))
    mask = torch.ones(1, 4096, dtype=torch.bool)
    mask[0, 4000:] = False
    loss = torch.nn.functional.cross_entropy(m(ids, mask), torch.tensor([1]))
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


def test_swapping_attention_needs_no_block_change():
    outs = {}
    for pos in ("sin", "rope", "relative"):
        m = effx.build_model(cfg(positional=PositionalSpec(pos)), "mlm")
        outs[pos] = m(torch.randint(0, 60, (1, 8))).shape
    assert set(outs.values()) == {(1, 8, 60)}


def test_unsupported_mask_fails_instead_of_being_ignored():
    class NoMask(effx.Attention):
        name = "nomask"
        capabilities = effx.AttentionCapabilities(key_padding_mask=False, attn_mask=False)

        def forward(self, q, k, v, **_):
            return v

    from effx.model.encoder import MultiHeadAttention

    mha = MultiHeadAttention(8, 2, NoMask(NoMask.Config(), effx.AttentionContext(2, 4, 16)))
    x = torch.randn(1, 5, 8)
    assert mha(x).shape == (1, 5, 8)
    with pytest.raises(effx.CapabilityError, match="does not support a dense attn_mask"):
        mha(x, attn_mask=torch.ones(5, 5, dtype=torch.bool))
    with pytest.raises(effx.CapabilityError, match="does not support padding masks"):
        mha(x, key_padding_mask=torch.ones(1, 5, dtype=torch.bool))


def test_fast_dropout_statistics_and_scaling():
    from effx.model.dropout import dropout

    torch.manual_seed(0)
    x = torch.ones(400_000)
    y = dropout(x, 0.1, True)
    frac = (y == 0).float().mean().item()
    assert abs(frac - 0.1) < 5 * (0.1 * 0.9 / 400_000) ** 0.5  # within 5 sigma
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / 0.9))
    assert abs(y.mean().item() - 1.0) < 0.01
    assert dropout(x, 0.1, False) is x and torch.equal(dropout(x, 1.0, True), torch.zeros_like(x))
    torch.manual_seed(3)
    a = dropout(x, 0.3, True)
    torch.manual_seed(3)
    b = dropout(x, 0.3, True)
    assert torch.equal(a, b)


def test_gradient_checkpointing_replays_dropout_masks():
    ids = torch.randint(0, 60, (2, 12), generator=torch.Generator().manual_seed(0))
    grads = []
    for gc in (False, True):
        torch.manual_seed(1)
        m = effx.build_model(cfg(gradient_checkpointing=gc, dropout=0.3), {"type": "classification", "num_classes": 2})
        torch.manual_seed(7)
        m.train()(ids).sum().backward()
        grads.append(m.encoder.blocks[0].fc1.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 1001)])
def test_fast_dropout_all_four_lanes_honour_p(shape):
    from effx.model.dropout import keep_mask

    torch.manual_seed(0)
    masks = torch.stack([keep_mask(torch.Size(shape), 0.25, torch.device("cpu")) for _ in range(8000 // shape[-1] + 80)])
    assert masks.shape[1:] == shape
    flat = masks.reshape(masks.shape[0], -1).float()
    for lane in range(4):  # lanes 0-2: full int16 range, lane 3: the top 15 bits of the int64 draw
        kept = flat[:, lane::4]
        if kept.numel():
            assert abs(kept.mean().item() - 0.75) < 5 * (0.1875 / kept.numel()) ** 0.5, lane


def test_d_model_not_divisible_by_heads_is_a_config_error():
    with pytest.raises(effx.ConfigError, match=r"n_heads: must divide d_model \(30\), got 4"):
        effx.build_model(cfg(d_model=30), "mlm")


@pytest.mark.parametrize("field,value", [("dropout", 1.5), ("attention_dropout", -0.1), ("activation_dropout", 1.0)])
def test_dropout_out_of_range_is_a_config_error(field, value):
    with pytest.raises(effx.ConfigError, match=rf"{field}: must be in \[0, 1\), got {value}"):
        effx.build_model(cfg(**{field: value}), "mlm")


def test_activation_dropout_drops_only_the_mlp_activation():
    """activation_dropout (default 0, as BERT/RoBERTa) masks the d_ff-wide activation; dropout does not."""
    torch.manual_seed(0)
    block = effx.build_model(cfg(dropout=0.0, activation_dropout=0.5), "mlm").encoder.blocks[0].train()
    seen = []
    block.fc2.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    block.mlp(torch.randn(2, 6, block.fc1.in_features))
    zeros = (seen[0] == 0).float().mean().item()  # GELU is never exactly 0 on random input
    assert 0.3 < zeros < 0.7
    off = effx.build_model(cfg(dropout=0.3), "mlm").encoder.blocks[0].train()
    seen.clear()
    off.fc2.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    off.mlp(torch.randn(2, 6, off.fc1.in_features))
    assert not (seen[0] == 0).any()
