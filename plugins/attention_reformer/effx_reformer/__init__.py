"""effx plugin: Reformer LSH attention (``reformer_lsh``) and its balanced variant (``reformer_balanced``)."""
import effx

from .balanced import ReformerBalanced
from .lsh import ReformerLSH


@effx.hookimpl
def effx_attention_types():
    return [ReformerLSH, ReformerBalanced]
