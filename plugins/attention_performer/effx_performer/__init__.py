"""effx plugin: Performer linear attention (``performer_favor``) and its FAVOR++ variant (``performer_favor_pp``)."""
import effx

from .favor import PerformerAttention
from .favor_pp import PerformerPlusPlusAttention


@effx.hookimpl
def effx_attention_types():
    return [PerformerAttention, PerformerPlusPlusAttention]
