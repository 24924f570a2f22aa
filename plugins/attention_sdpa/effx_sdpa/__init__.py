"""effx plugin: exact scaled-dot-product attention (``sdpa``)."""
import effx

from .sdpa import SDPAttention


@effx.hookimpl
def effx_attention_types():
    return [SDPAttention]
