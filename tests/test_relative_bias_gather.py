"""RelativeBias.gather: the documented shapes and ranges give the right per-head values; anything else
is a one-line error, never a silent head-0 bias or a raw torch error."""
from __future__ import annotations

import pytest
import torch

from effx import RelativeBias
from effx.errors import EffxError

N, H, B = 5, 3, 2


@pytest.fixture
def bias() -> RelativeBias:
    return RelativeBias(torch.arange(H * (2 * N - 1), dtype=torch.float64).reshape(H, 2 * N - 1), N)


def test_gather_gives_each_head_its_own_bias_and_matches_dense(bias):
    q = torch.arange(N)[None, None, :, None].expand(B, H, N, N)  # (B, H, N, N)
    k = torch.arange(N)[None, None, None, :].expand(B, H, N, N)
    got = bias.gather(q, k)
    assert got.shape == (B, H, N, N)
    assert torch.equal(got[0], bias.dense()) and torch.equal(got[1], bias.dense())
    assert got[0, 1, 4, 0] == bias.table[1, 4 - 0 + N - 1]  # query 4, key 0, head 1
    assert not torch.equal(got[0, 0], got[0, 1])  # heads differ


@pytest.mark.parametrize("q, k, message", [
    (torch.zeros(B, H, 4), torch.zeros(B, H, 4, dtype=torch.long), "integer positions"),
    (torch.zeros(4, dtype=torch.long), torch.zeros(4, dtype=torch.long), r"broadcast to \[B, 3"),
    (torch.zeros(B, 1, 4, dtype=torch.long), torch.zeros(B, 1, 4, dtype=torch.long), r"broadcast to \[B, 3"),
    (torch.full((B, H, 4), N, dtype=torch.long), torch.zeros(B, H, 4, dtype=torch.long), r"qpos must lie in \[0, 5\)"),
    (torch.zeros(B, H, 4, dtype=torch.long), torch.full((B, H, 4), -1, dtype=torch.long), r"kpos must lie in \[0, 5\)"),
])
def test_gather_refuses_what_it_cannot_honour_in_one_line(bias, q, k, message):
    with pytest.raises(EffxError, match=message) as err:
        bias.gather(q, k)
    assert "\n" not in str(err.value)
