"""The explicit and fused paths agree to fp32 tolerance, with and without each mask kind."""
import math

import pytest
import torch

import effx
from effx_sdpa import SDPAttention
from effx_sdpa.sdpa import SDPAConfig

B, H, N, DH = 2, 3, 21, 8


def att(impl, dropout=0.0):
    return SDPAttention(SDPAConfig(impl=impl), effx.AttentionContext(H, DH, 64, dropout=dropout)).eval()


def inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, H, N, DH, generator=g, requires_grad=True) for _ in range(3)]


def mask_kinds():
    g = torch.Generator().manual_seed(1)
    kpm = torch.ones(B, N, dtype=torch.bool)
    kpm[1, 13:] = False
    dense2 = torch.rand(N, N, generator=g) > 0.5
    dense3 = torch.rand(B, N, N, generator=g) > 0.5
    dense4 = torch.rand(B, H, N, N, generator=g) > 0.5
    dense2[4] = False  # a fully-masked row
    return {"none": (None, None), "padding": (kpm, None), "dense2": (None, dense2), "dense3": (None, dense3),
            "dense4": (None, dense4), "both": (kpm, dense2)}


def table(seed=2):
    return effx.RelativeBias(torch.randn(H, 2 * N - 1, generator=torch.Generator().manual_seed(seed)), N)


@pytest.mark.parametrize("rel", [False, True])
@pytest.mark.parametrize("kind", list(mask_kinds()))
def test_fused_equals_explicit(kind, rel):
    kpm, am = mask_kinds()[kind]
    outs, grads = [], []
    for impl in ("explicit", "fused"):
        q, k, v = inputs()
        out = att(impl)(q, k, v, key_padding_mask=kpm, attn_mask=am, rel_bias=table() if rel else None)
        out.square().sum().backward()
        outs.append(out)
        grads.append([t.grad for t in (q, k, v)])
    torch.testing.assert_close(outs[0], outs[1], atol=1e-5, rtol=1e-5)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_matches_reference_formula_with_masks_and_bias():
    q, k, v = inputs(3)
    kpm, am = mask_kinds()["both"]
    rel = table()
    scores = q @ k.transpose(-2, -1) / math.sqrt(DH) + rel.dense()
    allowed = am[None, None] & kpm[:, None, None, :]
    probs = torch.softmax(scores.masked_fill(~allowed, float("-inf")), -1).nan_to_num(0.0)
    ref = probs @ v
    out = att("explicit")(q, k, v, key_padding_mask=kpm, attn_mask=am, rel_bias=rel)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert out[:, :, 4].abs().max() == 0  # the fully-masked row


@pytest.mark.parametrize("impl", ["explicit", "fused"])
def test_dropout_only_in_training(impl):
    q, k, v = inputs(4)
    a = att(impl, dropout=0.5)
    torch.testing.assert_close(a(q, k, v), a(q, k, v))
    a.train()
    torch.manual_seed(0)
    assert not torch.allclose(a(q, k, v), att(impl)(q, k, v))


def test_plugin_is_installed():
    assert effx.load_registry().get("attention", "sdpa").cls is SDPAttention


@pytest.mark.parametrize("impl", ["fused", "explicit"])
def test_integer_masks_mean_what_bool_masks_mean(impl):
    """core/masks.py documents 0/1 integer masks as accepted: both paths take them, same result."""
    att = SDPAttention(SDPAttention.Config(impl=impl), effx.AttentionContext(2, 8, 64)).eval()
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, 10, 8, generator=g) for _ in range(3))
    kpm = torch.ones(2, 10, dtype=torch.bool)
    kpm[1, 6:] = False
    mask = torch.rand(10, 10, generator=g) > 0.3
    ref = att(q, k, v, key_padding_mask=kpm, attn_mask=mask)
    out = att(q, k, v, key_padding_mask=kpm.long(), attn_mask=mask.to(torch.int32))
    assert torch.equal(out, ref)


@pytest.mark.parametrize("dtype,n,batch,path", [
    (torch.bfloat16, 128, 32, "explicit"), (torch.bfloat16, 512, 8, "explicit"), (torch.float16, 64, 2, "explicit"),
    (torch.float32, 128, 32, "fused"), (torch.bfloat16, 513, 1, "fused"),
    (torch.bfloat16, 512, 65, "fused"),  # 65 x 4 x 512^2 scores exceed the explicit path's memory bound
])
def test_auto_path_choice(dtype, n, batch, path):
    from effx_sdpa.sdpa import auto_path

    assert auto_path(torch.empty(batch, 4, n, 8, dtype=dtype), max_len=512) == path


@pytest.mark.parametrize("dtype,same_as", [(torch.bfloat16, "explicit"), (torch.float32, "fused")])
def test_auto_runs_the_path_it_chooses(dtype, same_as):
    """``auto`` gives bit-for-bit the output of the path it picks (half precision: explicit, fp32: fused)."""
    q, k, v = (x.detach().to(dtype) for x in inputs(4))
    kpm, _ = mask_kinds()["padding"]
    out = att("auto")(q, k, v, key_padding_mask=kpm)
    assert torch.equal(out, att(same_as)(q, k, v, key_padding_mask=kpm))
    other = "fused" if same_as == "explicit" else "explicit"
    assert not torch.equal(out, att(other)(q, k, v, key_padding_mask=kpm))
