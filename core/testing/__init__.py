"""Conformance suite any attention or positional plugin can run on itself.

Use from pytest::

    from effx.testing import attention_checks, run_attention_checks
    @pytest.mark.parametrize("check", attention_checks())
    def test_my_attention(check):
        check(MyAttention, MyAttention.Config())

Each check raises ``AssertionError`` with a message naming the failed property. The in-repo test
suite runs every check over every registered attention and positional type.
"""
from .attention import attention_checks, run_attention_checks
from .long_sequence import long_sequence_step
from .positional import positional_checks, run_positional_checks

__all__ = ["attention_checks", "run_attention_checks", "long_sequence_step", "positional_checks", "run_positional_checks"]
