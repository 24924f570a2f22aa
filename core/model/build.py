"""Assemble a model from config names: look components up, check capabilities, construct."""
from __future__ import annotations

from typing import Any

from torch import nn

from ..components import Attention, AttentionContext, Head, HeadContext, PositionalContext, PositionalEncoding
from ..config import ComponentSpec, HeadSpec, ModelConfig, structure
from ..errors import CapabilityError, ConfigError
from ..plugins import Registry, load_registry
from .encoder import Encoder
from .model import EffxModel

INIT_STD = 0.02  # BERT's N(0, 0.02) for linear and embedding weights


def resolve_spec(spec: ComponentSpec, registry: Registry, path: str) -> tuple[type, Any]:
    """Return ``(class, typed config)`` for a spec whose config may still be a plain dict."""
    entry = registry.get(spec.kind, spec.type, path)
    config = spec.config
    if config is None or isinstance(config, dict):
        config = structure(config or {}, entry.cls.Config, root=path)
    return entry.cls, config


def check_compatible(att_cls: type, pos_cls: type, registry: Registry) -> None:
    caps = att_cls.capabilities
    if pos_cls.mode not in caps.positional:
        att_dist = registry.get("attention", att_cls.name).dist
        pos_dist = registry.get("positional", pos_cls.name).dist
        ok = ", ".join(sorted(m.value for m in caps.positional)) or "none"
        raise CapabilityError(
            f"attention '{att_cls.name}' ({att_dist}) does not support positional encoding "
            f"'{pos_cls.name}' ({pos_dist}, acts as {pos_cls.mode.value}); it supports: {ok}. "
            f"Change model.attention.type or model.positional.type"
        )


def build_encoder(cfg: ModelConfig, registry: Registry | None = None, seed: int = 0) -> Encoder:
    registry = registry or load_registry()
    if cfg.d_model % cfg.n_heads:
        raise ConfigError(f"model.d_model={cfg.d_model} is not divisible by model.n_heads={cfg.n_heads}; "
                          f"choose sizes with d_model % n_heads == 0")
    for field in ("dropout", "attention_dropout", "activation_dropout"):
        if not 0.0 <= getattr(cfg, field) < 1.0:
            raise ConfigError(f"model.{field}={getattr(cfg, field)} is not a dropout probability; use a value in [0, 1)")
    att_cls, att_cfg = resolve_spec(cfg.attention, registry, "model.attention")
    pos_cls, pos_cfg = resolve_spec(cfg.positional, registry, "model.positional")
    check_compatible(att_cls, pos_cls, registry)
    head_dim = cfg.d_model // cfg.n_heads
    pos = pos_cls(pos_cfg, PositionalContext(cfg.d_model, cfg.n_heads, head_dim, cfg.max_seq_len, INIT_STD))
    atts = [
        att_cls(att_cfg, AttentionContext(cfg.n_heads, head_dim, cfg.max_seq_len, cfg.attention_dropout,
                                          seed=seed * 1000 + i, layer_index=i))
        for i in range(cfg.n_layers)
    ]
    return Encoder(cfg, atts, pos)


def build_head(spec: HeadSpec, cfg: ModelConfig, registry: Registry):
    head_cls, head_cfg = resolve_spec(spec, registry, "head")
    return head_cls(head_cfg, HeadContext(cfg.d_model, cfg.vocab_size, cfg.layer_norm_eps))


def init_weights(module: nn.Module, std: float = INIT_STD) -> None:
    """BERT initialisation: N(0, 0.02) for linear and embedding weights, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, std)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def build_model(cfg: ModelConfig, head: HeadSpec | dict | str = "mlm", registry: Registry | None = None,
                seed: int = 0) -> EffxModel:
    """Build encoder + head from names. ``head`` may be a HeadSpec, ``{'type': ..., ...}`` or a name."""
    registry = registry or load_registry()
    if isinstance(cfg, dict):
        cfg = structure(cfg, ModelConfig, registry, root="model")
    if isinstance(head, str):
        head = HeadSpec(head)
    elif isinstance(head, dict):
        head = HeadSpec(head.get("type", ""), {k: v for k, v in head.items() if k != "type"})
    encoder = build_encoder(cfg, registry, seed)
    model = EffxModel(encoder, build_head(head, cfg, registry))
    init_weights(model)  # in place: the decoder tied in EffxModel stays the embedding's Parameter
    for m in model.modules():  # components may keep their own parameter init (e.g. learned tables)
        if isinstance(m, (Attention, PositionalEncoding, Head)):
            m.reset_plugin_parameters()
    return model
