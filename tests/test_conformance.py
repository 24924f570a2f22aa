"""The shipped conformance suite, run over every registered attention and positional plugin."""
import pytest
import torch

import effx
from effx.testing import attention_checks, positional_checks
from effx.testing.attention import check_dense_mask_invariance, check_fully_masked_rows, check_padding_invariance

from effx.testing.params import attention_variants, positional_types


@pytest.mark.parametrize("check", attention_checks(), ids=lambda c: c.__name__)
@pytest.mark.parametrize("cls,config", attention_variants())
def test_attention_conformance(cls, config, check):
    check(cls, config)


@pytest.mark.parametrize("check", positional_checks(), ids=lambda c: c.__name__)
@pytest.mark.parametrize("cls", positional_types())
def test_positional_conformance(cls, check):
    check(cls)


class LeakyAttention(effx.Attention):
    """Deliberately wrong: ignores every mask. The suite must catch it."""

    name = "leaky"

    def forward(self, q, k, v, *, key_padding_mask=None, attn_mask=None, rel_bias=None):
        return torch.softmax(q @ k.transpose(-2, -1), -1) @ v


@pytest.mark.parametrize("check", [check_padding_invariance, check_dense_mask_invariance, check_fully_masked_rows])
def test_suite_catches_a_broken_attention(check):
    with pytest.raises(AssertionError):
        check(LeakyAttention)
