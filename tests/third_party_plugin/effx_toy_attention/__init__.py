"""A throwaway third-party attention: linear attention with the elu(x)+1 feature map
(Katharopoulos et al., ICML 2020), used to prove plugins need no change to effx core."""
import attrs
import torch.nn.functional as F

import effx


@attrs.frozen
class ToyConfig:
    eps: float = 1e-6


class ToyLinearAttention(effx.Attention):
    name = "toy_linear"
    Config = ToyConfig
    capabilities = effx.AttentionCapabilities(attn_mask=False, positional=frozenset(
        {effx.PositionMode.ADDITIVE, effx.PositionMode.ROTARY}))

    def forward(self, q, k, v, *, key_padding_mask=None, attn_mask=None, rel_bias=None):
        q, k = F.elu(q) + 1, F.elu(k) + 1  # (B, H, N, Dh)
        if key_padding_mask is not None:
            k = k * key_padding_mask[:, None, :, None]
        kv = k.transpose(-2, -1) @ v  # (B, H, Dh, Dh)
        z = q @ k.sum(-2, keepdim=True).transpose(-2, -1)  # (B, H, N, 1)
        return (q @ kv) / (z + self.config.eps)


@effx.hookimpl
def effx_attention_types():
    return [ToyLinearAttention]
