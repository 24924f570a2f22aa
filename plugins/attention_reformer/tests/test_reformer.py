"""Correctness of the Reformer types against dense references built from the same hash orders."""
import math

import pytest
import torch
import torch.nn.functional as F

import effx
from effx.testing import run_attention_checks
from effx_reformer.balanced import BalancedConfig, ReformerBalanced, tree_order
from effx_reformer.chunked import SELF
from effx_reformer.lsh import ReformerConfig, ReformerLSH

B, H, D = 2, 2, 8
TYPES = [(ReformerLSH, ReformerConfig), (ReformerBalanced, BalancedConfig)]
SMALL = [pytest.param(cls, cfg(bucket_size=4, n_hashes=3, shared_qk=shared), id=f"{cls.name}-shared={shared}")
         for cls, cfg in TYPES for shared in (True, False)]


def make(cls, cfg, seed=0, max_seq_len=256, dropout=0.0):
    return cls(cfg, effx.AttentionContext(H, D, max_seq_len, dropout=dropout, seed=seed)).eval()


def qkv(n, seed=0, dtype=torch.float32, grad=False):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, H, n, D, generator=g, dtype=dtype).requires_grad_(grad) for _ in range(3)]


def slot_orders(att, q, k, kpm=None):
    """The (B, H, R, Np) query and key orders the module uses in eval mode."""
    n = q.shape[2]
    bs = min(att.config.bucket_size, n)
    npad = math.ceil(n / bs) * bs
    pad = ~kpm if kpm is not None else None
    qperm = att._sort(F.normalize(q, dim=-1), att.rotations, npad, bs, pad)
    kperm = qperm if att.config.shared_qk else att._sort(F.normalize(k, dim=-1), att.rotations, npad, bs, pad)
    return qperm, kperm, bs


def pair_counts(qperm, kperm, n, bs):
    """(B, H, N, N): in how many rounds query i is compared with key j (chunk and its two neighbours)."""
    b, h, r, npad = qperm.shape
    nc = npad // bs
    counts = torch.zeros(b, h, n, n)
    for bi in range(b):
        for hi in range(h):
            for ri in range(r):
                for c in range(nc):
                    qs = qperm[bi, hi, ri, c * bs:(c + 1) * bs]
                    ks = kperm[bi, hi, ri, max(c - 1, 0) * bs:min(c + 2, nc) * bs]
                    qs, ks = qs[qs < n], ks[ks < n]
                    counts[bi, hi, qs[:, None], ks[None, :]] += 1
    return counts


def dense_reference(q, k, v, counts, *, shared_qk, dedup=True, kpm=None, attn_mask=None, bias=None):
    """Softmax over the compared pairs (each once, or ``count`` times without dedup), dense."""
    d = q.shape[-1]
    keys = F.normalize(q, dim=-1) if shared_qk else k
    s = q @ keys.transpose(-1, -2) / math.sqrt(d)  # (B, H, N, N)
    if shared_qk:
        s = s.masked_fill(torch.eye(q.shape[2], dtype=torch.bool), SELF)
    if bias is not None:
        s = s + bias
    allowed = counts > 0
    if kpm is not None:
        allowed = allowed & kpm[:, None, None, :]
    if attn_mask is not None:
        allowed = allowed & attn_mask
    if not dedup:
        s = s + counts.clamp(min=1).log()
    s = s.masked_fill(~allowed, float("-inf"))
    p = torch.softmax(s, -1).nan_to_num(0.0)
    return p @ v


def test_plugin_is_installed_with_defaults():
    reg = effx.load_registry()
    for name in ("reformer_lsh", "reformer_balanced"):
        entry = reg.get("attention", name)
        assert entry.dist == "effx-attention-reformer"
        cfg = entry.cls.Config()
        assert (cfg.bucket_size, cfg.n_hashes, cfg.shared_qk, cfg.rotations, cfg.dedup) == (64, 4, True, "redraw", True)
        assert not entry.cls.exact


@pytest.mark.slow  # the whole conformance suite again per chunking: tens of seconds each
@pytest.mark.parametrize("cls,cfg", SMALL)
def test_conformance_suite_with_many_chunks(cls, cfg):
    run_attention_checks(cls, cfg)


@pytest.mark.parametrize("cls,cfg_cls", TYPES)
def test_one_chunk_separate_qk_is_exact_attention(cls, cfg_cls):
    n = 37
    att = make(cls, cfg_cls(bucket_size=64, shared_qk=False))
    q, k, v = qkv(n, grad=True)
    kpm = torch.ones(B, n, dtype=torch.bool)
    kpm[1, 30:] = False
    mask = torch.rand(n, n, generator=torch.Generator().manual_seed(1)) > 0.3
    out = att(q, k, v, key_padding_mask=kpm, attn_mask=mask)
    allowed = mask & kpm[:, None, None, :]
    ref = torch.softmax((q @ k.transpose(-1, -2) / math.sqrt(D)).masked_fill(~allowed, float("-inf")), -1)
    ref = ref.nan_to_num(0.0) @ v
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    grads = torch.autograd.grad(out.square().sum(), (q, k, v))
    refs = torch.autograd.grad(ref.square().sum(), (q, k, v))
    for a, b in zip(grads, refs):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cls,cfg_cls", TYPES)
def test_one_chunk_shared_qk_is_exact_apart_from_self(cls, cfg_cls):
    n = 20
    att = make(cls, cfg_cls(bucket_size=32))
    q, k, v = qkv(n)
    mask = torch.ones(n, n, dtype=torch.bool)
    mask[3] = False
    mask[3, 3] = True  # query 3 may see only itself: then it does
    out = att(q, k, v, attn_mask=mask)
    keys = F.normalize(q, dim=-1)
    s = (q @ keys.transpose(-1, -2) / math.sqrt(D)).masked_fill(torch.eye(n, dtype=torch.bool), float("-inf"))
    s[..., 3, :] = float("-inf")
    s[..., 3, 3] = 0.0
    ref = torch.softmax(s, -1) @ v
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[:, :, 3], v[:, :, 3])


@pytest.mark.parametrize("dedup", [True, False])
@pytest.mark.parametrize("cls,cfg", SMALL)
def test_equals_softmax_over_compared_pairs(cls, cfg, dedup):
    """Chunks, neighbours, round mixing, duplicates, masks and relative bias against a dense reference."""
    n = 45
    cfg = type(cfg)(**{**vars_of(cfg), "dedup": dedup})
    att = make(cls, cfg)
    q, k, v = qkv(n, seed=3, grad=True)
    kpm = torch.ones(B, n, dtype=torch.bool)
    kpm[0, 40:] = False
    mask = torch.rand(B, 1, n, n, generator=torch.Generator().manual_seed(4)) > 0.2
    table = torch.randn(H, 2 * n - 1, requires_grad=True)
    rel = effx.RelativeBias(table, n)
    out = att(q, k, v, key_padding_mask=kpm, attn_mask=mask, rel_bias=rel)
    qperm, kperm, bs = slot_orders(att, q, k, kpm)
    counts = pair_counts(qperm, kperm, n, bs)
    assert counts.max() > 1, "no pair compared twice: the duplicate rule is not exercised"
    ref = dense_reference(q, k, v, counts, shared_qk=cfg.shared_qk, dedup=dedup, kpm=kpm, attn_mask=mask,
                          bias=rel.dense())
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=1e-4)
    inputs = (q, k, v, table) if not cfg.shared_qk else (q, v, table)
    grads = torch.autograd.grad(out.square().sum(), inputs)
    refs = torch.autograd.grad(ref.square().sum(), inputs)
    for a, b in zip(grads, refs):
        torch.testing.assert_close(a, b, atol=5e-5, rtol=1e-4)


def vars_of(cfg):
    import attrs

    return attrs.asdict(cfg)


def test_duplicates_are_counted_once_not_per_round():
    n = 45
    on = make(ReformerLSH, ReformerConfig(bucket_size=4, n_hashes=4))
    off = make(ReformerLSH, ReformerConfig(bucket_size=4, n_hashes=4, dedup=False))
    q, k, v = qkv(n, seed=5)
    assert (on(q, k, v) - off(q, k, v)).abs().max() > 1e-3


@pytest.mark.parametrize("cls,cfg", SMALL)
@pytest.mark.parametrize("n", [1, 2, 5, 12, 13, 64, 131])
def test_any_length(cls, cfg, n):
    att = make(cls, cfg).train()
    q, k, v = qkv(n, grad=True)
    out = att(q, k, v)
    assert out.shape == (B, H, n, D)
    out.square().sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, v))


@pytest.mark.parametrize("cls,cfg", SMALL)
def test_gradcheck_float64_with_masks_bias_and_dropout(cls, cfg):
    """The hand-written backward against finite differences, with the hash orders held fixed."""
    n = 11
    att = make(cls, cfg, dropout=0.3).train()
    att.config = type(cfg)(**{**vars_of(cfg), "rotations": "fixed"})
    q, k, v = qkv(n, seed=6, dtype=torch.float64, grad=True)
    table = torch.randn(H, 2 * n - 1, dtype=torch.float64, requires_grad=True)
    kpm = torch.ones(B, n, dtype=torch.bool)
    kpm[1, 8:] = False
    mask = torch.rand(n, n, generator=torch.Generator().manual_seed(7)) > 0.2
    with torch.no_grad():
        orders = slot_orders(att, q, k, kpm)[:2]
    calls = []

    def fixed_sort(x, *args):  # buckets are piecewise constant: differentiate at fixed orders
        calls.append(1)
        return orders[(len(calls) - 1) % (1 if cfg.shared_qk else 2)]

    att._sort = fixed_sort

    def f(q, k, v, table):
        torch.manual_seed(0)  # the same dropout mask on every call
        return att(q, k, v, key_padding_mask=kpm, attn_mask=mask, rel_bias=effx.RelativeBias(table, n))

    assert torch.autograd.gradcheck(f, (q, k, v, table), eps=1e-6, atol=1e-6, fast_mode=True)


@pytest.mark.parametrize("cls,cfg_cls", TYPES)
def test_rotations_eval_deterministic_training_redraws(cls, cfg_cls):
    n = 40
    q, k, v = qkv(n, seed=8)
    att = make(cls, cfg_cls(bucket_size=4, n_hashes=2), seed=11)
    assert torch.equal(att(q, k, v), att(q, k, v))
    att.train()
    a, b = att(q, k, v), att(q, k, v)
    assert (a - b).abs().max() > 1e-4, "training forwards did not redraw the rotations"
    again = make(cls, cfg_cls(bucket_size=4, n_hashes=2), seed=11).train()
    torch.testing.assert_close(again(q, k, v), a)  # the same seed draws the same sequence
    att.eval()
    torch.testing.assert_close(att(q, k, v), make(cls, cfg_cls(bucket_size=4, n_hashes=2), seed=11)(q, k, v))
    fixed = make(cls, cfg_cls(bucket_size=4, n_hashes=2, rotations="fixed"), seed=11).train()
    assert torch.equal(fixed(q, k, v), fixed(q, k, v))
    other = make(cls, cfg_cls(bucket_size=4, n_hashes=2), seed=12)
    assert (other(q, k, v) - att(q, k, v)).abs().max() > 1e-4


def test_gradient_checkpoint_recompute_reuses_the_rotations():
    from torch.utils.checkpoint import checkpoint

    n = 40
    cfg = ReformerConfig(bucket_size=4, n_hashes=2)
    plain, ckpt = make(ReformerLSH, cfg, seed=3).train(), make(ReformerLSH, cfg, seed=3).train()
    q, k, v = qkv(n, seed=9, grad=True)
    g1 = torch.autograd.grad(plain(q, k, v).square().sum(), (q, v))
    out = checkpoint(lambda a, b, c: ckpt(a, b, c), q, k, v, use_reentrant=False)
    g2 = torch.autograd.grad(out.square().sum(), (q, v))
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)


def test_rotations_are_a_checkpointed_buffer():
    att = make(ReformerLSH, ReformerConfig(), max_seq_len=1024)
    assert att.state_dict()["rotations"].shape == (H, D, 4, 8)  # 16 buckets at 1024 tokens -> 8 rotations


@pytest.mark.parametrize("cls,cfg", SMALL)
def test_bf16_autocast_large_norms_no_nan(cls, cfg):
    att = make(cls, cfg).train()
    q, k, v = (t.detach().mul(30).requires_grad_() for t in qkv(50, seed=10))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = att(q, k, v)
    assert torch.isfinite(out.float()).all()
    out.float().square().sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, v))


def test_relative_bias_pulls_attention_to_the_previous_token():
    n = 16
    att = make(ReformerLSH, ReformerConfig(bucket_size=4, n_hashes=4, shared_qk=False))
    q, k, v = qkv(n, seed=11)
    table = torch.zeros(H, 2 * n - 1)
    table[:, 1 + n - 1] = 30.0  # i - j = 1
    out = att(q * 0.1, k * 0.1, v, rel_bias=effx.RelativeBias(table, n))
    qperm, kperm, bs = slot_orders(att, q * 0.1, k * 0.1)
    seen = pair_counts(qperm, kperm, n, bs) > 0
    rows = seen[..., torch.arange(1, n), torch.arange(n - 1)]  # (B, H, N-1): previous token compared?
    assert rows.any()
    got = out[:, :, 1:][rows]
    torch.testing.assert_close(got, v[:, :, :-1][rows], atol=1e-3, rtol=1e-3)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError):
        ReformerConfig(n_buckets=3)
    with pytest.raises(ValueError):
        ReformerConfig(bucket_size=0)
    with pytest.raises(ValueError):
        BalancedConfig(n_hashes=0)


def test_user_config_errors_are_one_line():
    from effx import structure

    with pytest.raises(effx.ConfigError, match="bucket_sise"):
        structure({"bucket_sise": 3}, ReformerConfig, root="model.attention")
    with pytest.raises(effx.ConfigError, match="n_buckets: must be 1 or an even number"):
        structure({"n_buckets": 3}, ReformerConfig, root="model.attention")
    with pytest.raises(effx.ConfigError, match="model.attention.rotations"):
        structure({"rotations": "sometimes"}, BalancedConfig, root="model.attention")


# --- the balanced variant ---------------------------------------------------------------------

def test_balanced_tree_puts_each_tight_cluster_in_one_chunk():
    bs, nc = 8, 8
    g = torch.Generator().manual_seed(0)
    centres = F.normalize(torch.randn(nc, D, generator=g), dim=-1)
    x = centres.repeat_interleave(bs, 0) + 1e-3 * torch.randn(nc * bs, D, generator=g)  # (N, D)
    x = F.normalize(x[torch.randperm(nc * bs, generator=g)], dim=-1)
    label = (x @ centres.T).argmax(-1)  # (N,)
    directions = torch.randn(1, D, 2, 3, generator=g)
    order = tree_order(x.view(1, 1, -1, D), directions, nc * bs, depth=3, bucket_size=bs)  # (1, 1, 2, N)
    for r in range(2):
        chunks = label[order[0, 0, r]].view(nc, bs)
        assert (chunks == chunks[:, :1]).all(), "a chunk mixes clusters"


def test_balanced_padding_sorts_last_whatever_its_content():
    n, npad = 10, 16
    g = torch.Generator().manual_seed(2)
    x = F.normalize(torch.randn(1, 1, n, D, generator=g), dim=-1)
    directions = torch.randn(1, D, 1, 2, generator=g)
    pad = torch.zeros(1, n, dtype=torch.bool)
    pad[0, 7:] = True
    order = tree_order(x, directions, npad, 2, pad)
    assert sorted(order[0, 0, 0, :7].tolist()) == list(range(7))
    x2 = x.clone()
    x2[..., 7:, :] = -x2[..., 7:, :]
    assert torch.equal(order[..., :7], tree_order(x2, directions, npad, 2, pad)[..., :7])


def test_balanced_beats_lsh_on_clustered_inputs():
    """With tokens in tight clusters of unequal size, balanced chunks capture more softmax mass."""
    g = torch.Generator().manual_seed(1)
    n, d = 256, 16
    sizes = [96, 64, 32, 24, 16, 12, 8, 4]
    centres = F.normalize(torch.randn(len(sizes), d, generator=g), dim=-1) * 4
    x = torch.cat([c + 0.3 * torch.randn(s, d, generator=g) for c, s in zip(centres, sizes)])
    x = x[torch.randperm(n, generator=g)].view(1, 1, n, d)
    v = torch.randn(1, 1, n, d, generator=g)
    keys = F.normalize(x, dim=-1)
    s = (x @ keys.transpose(-1, -2) / math.sqrt(d)).masked_fill(torch.eye(n, dtype=torch.bool), float("-inf"))
    exact = torch.softmax(s, -1) @ v
    errs = {}
    for cls, cfg_cls in TYPES:
        att = cls(cfg_cls(bucket_size=16, n_hashes=2), effx.AttentionContext(1, d, n, seed=0)).eval()
        errs[cls.name] = ((att(x, x, v) - exact).norm() / exact.norm()).item()
    assert errs["reformer_balanced"] < errs["reformer_lsh"], errs


# --- buffer recycling -------------------------------------------------------------------------

def test_recycled_buffers_give_identical_steps_and_survive_inference_mode():
    att = make(ReformerLSH, ReformerConfig(bucket_size=4, n_hashes=3, rotations="fixed")).train()
    q, k, v = qkv(40, seed=12, grad=True)
    with torch.inference_mode():
        first = att(q, k, v)
    grads = []
    for _ in range(3):  # step 2 and 3 write into the buffers step 1 handed back
        out = att(q, k, v)
        grads.append(torch.autograd.grad(out.square().sum(), (q, v)))
        torch.testing.assert_close(out.detach(), first)
    for g in grads[1:]:
        for a, b in zip(g, grads[0]):
            torch.testing.assert_close(a, b)


def test_retained_graph_reused_after_recycling_fails_loudly():
    att = make(ReformerLSH, ReformerConfig(bucket_size=4, n_hashes=2, rotations="fixed")).train()
    q, k, v = qkv(40, seed=13, grad=True)
    loss = att(q, k, v).sum()
    loss.backward(retain_graph=True)
    att(q * 2, k, v).sum().backward()  # reuses the buffers the first graph still refers to
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_longer_than_max_seq_len_is_a_one_line_error():
    att = make(ReformerLSH, ReformerConfig(bucket_size=4), max_seq_len=16)
    with pytest.raises(effx.SequenceTooLongError, match="max_seq_len=16"):
        att(*qkv(17))


def test_encoder_gradient_checkpointing_matches_plain_training_step():
    from effx import AttentionSpec, ModelConfig, PositionalSpec

    def step(checkpointing):
        cfg = ModelConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=2, d_ff=64, dropout=0.0, max_seq_len=64,
                          gradient_checkpointing=checkpointing,
                          attention=AttentionSpec("reformer_lsh", {"bucket_size": 4, "n_hashes": 2}),
                          positional=PositionalSpec("rope"))
        torch.manual_seed(0)
        model = effx.build_model(cfg, {"type": "classification", "num_classes": 3}).train()
        ids = torch.randint(5, 50, (2, 40), generator=torch.Generator().manual_seed(1))
        kpm = torch.ones(2, 40, dtype=torch.bool)
        kpm[1, 30:] = False
        model(ids, kpm).square().sum().backward()
        return [p.grad for p in model.parameters() if p.grad is not None]

    for a, b in zip(step(False), step(True)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
