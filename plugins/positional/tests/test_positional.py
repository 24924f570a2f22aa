import torch

import effx
from effx.config import ModelConfig, PositionalSpec
from effx_positional.relative import bucket
from effx_positional.sinusoidal import sinusoid_table


def test_rope_dot_product_depends_only_on_offset():
    from effx_positional.rope import RotaryPositional, RopeConfig

    rope = RotaryPositional(RopeConfig(), effx.PositionalContext(32, 2, 16, 64))
    q, k = torch.randn(16), torch.randn(16)
    x_q = q.expand(1, 1, 40, 16).contiguous()
    x_k = k.expand(1, 1, 40, 16).contiguous()
    s = rope.rotate(x_q)[0, 0] @ rope.rotate(x_k)[0, 0].T  # (40, 40)
    assert torch.allclose(s[3, 1], s[30, 28], atol=1e-4) and torch.allclose(s[0, 5], s[20, 25], atol=1e-4)
    assert not torch.allclose(s[3, 1], s[3, 2], atol=1e-3)


def _model(pos, n=64):
    cfg = ModelConfig(vocab_size=40, d_model=32, n_layers=2, n_heads=2, d_ff=64, dropout=0.0, max_seq_len=n,
                      positional=PositionalSpec(pos))
    torch.manual_seed(0)
    return effx.build_model(cfg, "mlm").eval()


def test_sdpa_relative_is_shift_invariant():
    """Prepending masked-out tokens shifts absolute positions but not outputs (only i - j matters)."""
    m = _model("relative")
    torch.nn.init.normal_(m.encoder.positional.bias.weight, 0, 1.0)
    ids = torch.randint(5, 40, (1, 10))
    base = m.encoder(ids)
    shifted_ids = torch.cat([torch.full((1, 7), 3), ids], dim=1)
    mask = torch.ones(1, 17, dtype=torch.bool)
    mask[0, :7] = False
    shifted = m.encoder(shifted_ids, mask)[:, 7:]
    torch.testing.assert_close(shifted, base, atol=1e-5, rtol=1e-5)
    m_sin = _model("sin")  # an absolute encoding is NOT shift-invariant: the test can fail
    assert not torch.allclose(m_sin.encoder(shifted_ids, mask)[:, 7:], m_sin.encoder(ids), atol=1e-3)


def test_relative_buckets_exact_then_log():
    rel = torch.arange(-200, 201)
    b = bucket(rel, 32, 128, True)
    assert b[rel == 0].item() == 0 and b[rel == 3].item() == 16 + 3 and b[rel == -3].item() == 3
    assert b.max().item() == 31 and b[rel == 200].item() == b[rel == 128].item()


def test_sin_and_learned_respect_max_length():
    for pos in ("sin", "learned", "rope"):
        m = _model(pos, n=16)
        m(torch.zeros(1, 16, dtype=torch.long))
        try:
            m.encoder.positional.embed(17, torch.device("cpu")) if pos != "rope" else \
                m.encoder.positional.rotate(torch.zeros(1, 2, 17, 16))
        except effx.SequenceTooLongError as exc:
            assert "16" in str(exc) and "model.max_seq_len" in str(exc)
        else:
            raise AssertionError(f"{pos} accepted 17 > 16 positions")


def test_sinusoid_values():
    t = sinusoid_table(5, 8, 10000.0)
    assert torch.allclose(t[:, 0], torch.sin(torch.arange(5.0)))
    assert torch.allclose(t[:, 1], torch.cos(torch.arange(5.0)))
    assert torch.allclose(t[2, 2], torch.sin(torch.tensor(2.0) / 10000 ** (2 / 8)))
