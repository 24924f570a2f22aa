"""Forward + backward at N=16384 through the full encoder (1 layer, d_model 256, 4 heads, batch 1),
each type in a fresh interpreter (:func:`effx.testing.long_sequence_step`); the peak is printed
(``pytest -s``) and attached to the test report as a user property."""
import pytest

from effx.testing import long_sequence_step


@pytest.mark.slow
@pytest.mark.parametrize("name", ["reformer_lsh", "reformer_balanced"])
def test_forward_backward_16k_tokens(name, record_property):
    row = long_sequence_step(name, n=16384, positional="sin", padded=100)
    print(f"\n{name} N=16384 fwd+bwd (1 layer, d_model 256, 4 heads): {row['seconds']:.2f} s, "
          f"peak RSS {row['peak_rss_mib']:.0f} MiB (+{row['step_peak_mib']:.0f} MiB over the built model)")
    record_property("extra_peak_mib", round(row["step_peak_mib"]))
    assert row["finite"] and row["nonzero"]
    assert row["step_peak_mib"] < 2500, row  # exact attention needs > 12 GiB here
