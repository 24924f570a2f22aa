"""Base classes every component derives from, and the capability vocabulary.

A component class carries three class attributes:

* ``name`` - the string users write in YAML (``model.attention.type: my_attention``);
* ``Config`` - a frozen attrs class with every tunable field, typed and defaulted;
* for attention, ``capabilities`` - what it supports, checked when the model is built.

Attention classes may also declare what the report, the bench and the cost rules need (all
optional, with defaults that make an undeclared third-party attention work everywhere):
``family`` (the report's group label; default: the class's own ``name``), ``exact``,
``cost_thresholds`` (its default cost rule), ``impl_variants`` (code paths the bench measures
separately), ``bench_peers`` and ``break_even_target`` (the bench's comparisons and targets) and
:meth:`Attention.exact_reference` (what its fidelity is measured against).
Every module component may define :meth:`reset_plugin_parameters`, called once after the
core's weight initialisation.

Components receive only their own ``Config`` instance plus a small frozen context with the
structural sizes they need (never the whole experiment config).
"""
from __future__ import annotations

import contextlib
import enum
from typing import Any, Callable, ClassVar, ContextManager, Mapping

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import EffxError

SOFTMAX_REFERENCE = "softmax(QK^T)V"  # the name of the default exact reference


@attrs.frozen
class EmptyConfig:
    """Config for a component with no tunable fields."""


class PositionMode(str, enum.Enum):
    """The ways a positional encoding can act on the model."""

    ADDITIVE = "additive"  # vector added to the token embedding (e.g. a sinusoidal or learned table)
    ROTARY = "rotary"  # rotation of q and k before attention (RoPE); applied by the core
    RELATIVE_BIAS = "relative_bias"  # per-head additive score bias b_h(i - j) (T5-style)


@attrs.frozen
class AttentionCapabilities:
    """What an attention mechanism honours. Unsupported combinations fail at build time."""

    key_padding_mask: bool = True
    attn_mask: bool = True
    positional: frozenset = frozenset(PositionMode)


@attrs.frozen
class AttentionContext:
    """Structural facts an attention needs; not user-tunable through its own Config."""

    n_heads: int
    head_dim: int
    max_seq_len: int
    dropout: float = 0.0
    seed: int = 0
    layer_index: int = 0


@attrs.frozen
class PositionalContext:
    """Structural facts a positional encoding needs. ``embedding_std`` is the standard deviation the
    token embeddings are initialised with: an additive encoding sizes its vectors against it."""

    d_model: int
    n_heads: int
    head_dim: int
    max_seq_len: int
    embedding_std: float = 0.02


@attrs.frozen
class HeadContext:
    d_model: int
    vocab_size: int
    layer_norm_eps: float = 1e-12


class RelativeBias:
    """A relative-position bias handed to attention as a function of distance, not an N x N matrix.

    ``table`` is ``[H, 2N-1]``: the bias added to the score of query ``i`` and key ``j`` in head
    ``h`` is ``table[h, (i - j) + N - 1]``. Sub-quadratic attentions gather only the pairs they
    compare (:meth:`gather`); exact attention may materialise :meth:`dense`.
    """

    def __init__(self, table: torch.Tensor, n: int) -> None:
        assert table.shape[-1] == 2 * n - 1, (table.shape, n)
        self.table = table  # (H, 2N-1)
        self.n = n

    def dense(self) -> torch.Tensor:
        """Materialise the ``[H, N, N]`` bias (quadratic: exact attention only)."""
        i = torch.arange(self.n, device=self.table.device)
        idx = i[:, None] - i[None, :] + self.n - 1  # (N, N)
        return self.table[:, idx]  # (H, N, N)

    def gather(self, qpos: torch.Tensor, kpos: torch.Tensor) -> torch.Tensor:
        """Bias of position pairs: ``table[h, qpos - kpos + N - 1]``.

        ``qpos``, ``kpos``: integer positions in ``[0, N)`` whose shapes broadcast to
        ``[B, H, *S]`` with ``H`` equal to the table's head count (a size-1 head axis would give
        every head one head's bias, so it is refused, as are plain ``[*S]`` positions: add the
        two leading axes, e.g. ``pos[None, None].expand(B, H, ...)``). Returns ``[B, H, *S]``.
        """
        heads = self.table.shape[0]
        offset = torch.broadcast_tensors(qpos, kpos)[0].shape
        if qpos.dtype.is_floating_point or kpos.dtype.is_floating_point:
            raise EffxError("RelativeBias.gather takes integer positions, got floating-point ones")
        if len(offset) < 2 or offset[1] != heads:
            raise EffxError(f"RelativeBias.gather: positions must broadcast to [B, {heads}, ...] (one row per "
                            f"head), got shape {tuple(offset)}")
        for name, pos in (("qpos", qpos), ("kpos", kpos)):
            if pos.numel() and (int(pos.min()) < 0 or int(pos.max()) >= self.n):
                raise EffxError(f"RelativeBias.gather: {name} must lie in [0, {self.n}), got "
                                f"[{int(pos.min())}, {int(pos.max())}]")
        idx = (qpos - kpos + self.n - 1).expand(offset)  # (B, H, *S)
        b = offset[0]
        table = self.table.unsqueeze(0).expand(b, -1, -1)  # (B, H, 2N-1)
        return torch.gather(table, 2, idx.reshape(b, heads, -1)).reshape(offset)


@attrs.frozen
class ImplVariant:
    """One code path of an attention that the bench measures as its own row, labelled ``type[name]``.

    ``config`` holds the ``Config`` fields that select the path; ``devices`` the device types it
    runs on; ``kernel``, if given, returns a context manager entered around every call of the path
    (for example one that forces a particular torch kernel).
    """

    name: str
    config: Mapping[str, Any] = attrs.field(factory=dict)
    devices: tuple[str, ...] = ("cpu", "cuda")
    kernel: Callable[[], ContextManager] | None = None

    def context(self) -> ContextManager:
        return self.kernel() if self.kernel is not None else contextlib.nullcontext()


@attrs.frozen
class BenchPeer:
    """A reference implementation outside effx that ``effx bench`` times beside an attention.

    The peer runs in the layer suite only, and only when ``module`` is importable. ``build(spec)``
    returns ``(fn, module)``: ``fn(q, k, v)`` maps ``[B, H, N, Dh]`` to ``[B, H, N, Dh]`` and
    ``module`` is the ``nn.Module`` it runs. ``spec`` is the bench's plain dict (``device``,
    ``head_dim``, ``n``, ...). ``reference`` is what its fidelity is measured against, with the
    signature of :meth:`Attention.exact_reference` (None: softmax attention). ``speedup_target`` is
    the bench target "the declaring attention is at least this many times faster (forward +
    backward) at the largest N both ran"; ``seq_multiple`` the length the peer needs N divisible by.
    """

    label: str
    module: str
    build: Callable[[dict], tuple[Callable, nn.Module]]
    version: str | None = None
    speedup_target: float | None = None
    seq_multiple: int = 1
    reference: Callable | None = None


class _Resettable:
    def reset_plugin_parameters(self) -> None:
        """Re-initialise the component's own parameters after the core's weight initialisation.

        :func:`effx.build_model` first initialises every linear and embedding weight of the model
        BERT-style (``N(0, 0.02)``), then calls this method once on every component; override it
        when your parameters need another initialisation (e.g. a learned position table). The
        default does nothing.
        """


class Attention(_Resettable, nn.Module):
    """Base class of attention plugins.

    The core owns the Q/K/V/output projections and the head split. ``forward`` receives
    ``q, k, v`` as ``[B, H, N, Dh]`` (RoPE already applied when configured) and returns
    ``[B, H, N, Dh]``. Masks follow :mod:`effx.masks` (boolean, ``True`` = may attend).
    """

    name: ClassVar[str]
    Config: ClassVar[type] = EmptyConfig
    capabilities: ClassVar[AttentionCapabilities] = AttentionCapabilities()
    exact: ClassVar[bool] = False  # True if output equals softmax attention up to rounding
    # True if which keys a query compares depends on key content (e.g. keys hashed into buckets): then a key hidden
    # from some queries only may still change other keys' routing (effx.testing relaxes that check)
    content_routed: ClassVar[bool] = False
    # relative error vs exact attention with the same dense relative bias that effx.testing allows
    rel_bias_tolerance: ClassVar[float] = 1e-4
    # the report's group label; variants of one mechanism share it (None: the class's own name)
    family: ClassVar[str | None] = None
    # default cost rule of a non-exact attention, e.g. {"min_time_reduction": 0.2, "min_memory_reduction":
    # 0.3}; a ``cost.<family>`` entry of the thresholds file overrides it, ``cost.default`` applies if empty
    cost_thresholds: ClassVar[Mapping[str, float]] = {}
    # code paths the bench measures separately, the default path first (empty: one row, default config)
    impl_variants: ClassVar[tuple[ImplVariant, ...]] = ()
    # implementations outside effx the bench times beside this one
    bench_peers: ClassVar[tuple[BenchPeer, ...]] = ()
    # bench target: faster (forward + backward) than each exact attention's default path from this N on
    break_even_target: ClassVar[int | None] = None
    # a default of its kind: a config that names no attention gets the installed one of lowest rank
    # (None: never chosen by default); see effx.defaults
    default_rank: ClassVar[int | None] = None

    @classmethod
    def family_name(cls) -> str:
        """The report's group label: ``family`` if declared, else ``name``."""
        return cls.family or cls.name

    def exact_reference(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                        rows: torch.Tensor) -> tuple[torch.Tensor, str]:
        """The exact attention this one approximates, for query ``rows`` only, and its name.

        ``q, k, v`` are ``[B, H, N, Dh]`` fp32 and ``rows`` a ``[S]`` index; returns ``[B, H, S, Dh]``.
        The bench measures fidelity against it. Default: softmax attention ``softmax(QK^T)V``;
        override it when the mechanism approximates another exact form.
        """
        return F.scaled_dot_product_attention(q[:, :, rows], k, v), SOFTMAX_REFERENCE  # (B, H, S, Dh)

    @classmethod
    def gradcheck_configs(cls) -> tuple:
        """Configs whose code paths effx.testing checks with float64 gradcheck (default: the default)."""
        return (cls.Config(),)

    def __init__(self, config: Any, ctx: AttentionContext) -> None:
        super().__init__()
        self.config = config
        self.ctx = ctx

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        *,
        key_padding_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        rel_bias: RelativeBias | None = None,
    ) -> torch.Tensor:
        raise NotImplementedError


class PositionalEncoding(_Resettable, nn.Module):
    """Base class of positional-encoding plugins; implement the method matching ``mode``.

    * ``ADDITIVE``: :meth:`embed` returns ``[N, D]`` added to token embeddings.
    * ``ROTARY``: :meth:`rotate` rotates ``[B, H, N, Dh]`` q or k by position.
    * ``RELATIVE_BIAS``: :meth:`relative_bias` returns a :class:`RelativeBias` for length N.
    """

    name: ClassVar[str]
    Config: ClassVar[type] = EmptyConfig
    mode: ClassVar[PositionMode]
    # a default of its kind: a config that names no positional encoding gets the lowest-rank one its
    # attention supports (None: never chosen by default); see effx.defaults
    default_rank: ClassVar[int | None] = None

    def __init__(self, config: Any, ctx: PositionalContext) -> None:
        super().__init__()
        self.config = config
        self.ctx = ctx

    def embed(self, n: int, device: torch.device) -> torch.Tensor:
        raise NotImplementedError(f"{self.name} is not an additive encoding")

    def rotate(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{self.name} is not a rotary encoding")

    def relative_bias(self, n: int) -> RelativeBias:
        raise NotImplementedError(f"{self.name} is not a relative-bias encoding")


class Head(_Resettable, nn.Module):
    """Base class of heads. ``forward(hidden [B, N, D], attention_mask [B, N] bool) -> logits``.

    A head whose ``task`` is ``"mlm"`` decodes each position independently: in training it is called
    on the masked positions only, ``hidden [M, D]`` and ``attention_mask [M]``, returning ``[M, V]``.
    """

    name: ClassVar[str]
    Config: ClassVar[type] = EmptyConfig
    task: ClassVar[str]  # "classification" or "mlm"

    def __init__(self, config: Any, ctx: HeadContext) -> None:
        super().__init__()
        self.config = config
        self.ctx = ctx

    def tie_weights(self, embedding: nn.Embedding) -> None:
        """Heads that decode to the vocabulary tie their decoder to the token embedding."""


class Metric:
    """Base class of metrics. Called on numpy arrays so non-neural baselines are scored alike.

    ``__call__(y_true [n] int, y_prob [n, C] float) -> float``.
    """

    name: ClassVar[str]
    Config: ClassVar[type] = EmptyConfig
    higher_is_better: ClassVar[bool] = True

    def __init__(self, config: Any = None) -> None:
        self.config = config if config is not None else self.Config()

    def __call__(self, y_true: np.ndarray, y_prob: np.ndarray) -> float:
        raise NotImplementedError


KINDS: dict[str, type] = {
    "attention": Attention,
    "positional": PositionalEncoding,
    "head": Head,
    "metric": Metric,
}
