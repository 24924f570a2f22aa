"""The encoder written from scratch, heads assembly and model building."""
from .build import build_model, build_encoder, resolve_spec
from .encoder import Block, Encoder, MultiHeadAttention
from .model import EffxModel

__all__ = ["build_model", "build_encoder", "resolve_spec", "Block", "Encoder", "MultiHeadAttention", "EffxModel"]
