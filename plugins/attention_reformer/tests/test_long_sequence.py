"""Forward + backward at N=16384 through the full encoder (1 layer, d_model 256, 4 heads, batch 1).

Each type runs in a fresh interpreter so ``ru_maxrss`` measures this step alone; the peak is printed
(``pytest -s``) and attached to the test report as a user property.
"""
import json
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, resource, sys, time
import torch
import effx
from effx import AttentionSpec, ModelConfig, PositionalSpec

def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20

n = 16384
cfg = ModelConfig(vocab_size=1000, d_model=256, n_layers=1, n_heads=4, d_ff=1024, dropout=0.0, max_seq_len=n,
                  attention=AttentionSpec(sys.argv[1]), positional=PositionalSpec("sin"))
torch.manual_seed(0)
model = effx.build_model(cfg, {"type": "classification", "num_classes": 2}).train()
ids = torch.randint(5, 1000, (1, n))
mask = torch.ones(1, n, dtype=torch.bool)
mask[0, n - 100:] = False  # some padding: the masked path at full length
before = rss_mib()
t0 = time.perf_counter()
logits = model(ids, mask)
logits.square().sum().backward()
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
finite = all(bool(torch.isfinite(p.grad).all()) for p in model.parameters() if p.grad is not None)
nonzero = bool(model.encoder.blocks[0].attn.qkv.weight.grad.abs().sum() > 0)
print(json.dumps({"type": sys.argv[1], "seconds": seconds, "rss_before_mib": before, "peak_rss_mib": peak,
                  "extra_peak_mib": peak - before, "finite": finite, "nonzero": nonzero}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("name", ["reformer_lsh", "reformer_balanced"])
def test_forward_backward_16k_tokens(name, record_property):
    res = subprocess.run([sys.executable, "-c", SCRIPT, name], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    row = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"\n{name} N=16384 fwd+bwd (1 layer, d_model 256, 4 heads): {row['seconds']:.2f} s, "
          f"peak RSS {row['peak_rss_mib']:.0f} MiB (+{row['extra_peak_mib']:.0f} MiB over the built model)")
    record_property("extra_peak_mib", round(row["extra_peak_mib"]))
    assert row["finite"] and row["nonzero"]
    assert row["extra_peak_mib"] < 2500, row  # exact attention needs > 12 GiB here
