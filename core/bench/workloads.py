"""The things a bench times: one attention layer, a PyPI peer layer, one encoder training step.

Each workload offers ``forward()`` (inference under ``torch.no_grad``; not ``inference_mode``,
whose tensors a module may not cache and reuse in a later training step) and ``train_step()`` (forward +
backward; for the encoder also the AdamW update). A *spec* is a plain dict so it can cross into the
worker process; :func:`build` turns it into a workload there.

Peers: the PyPI implementations an attention plugin declares (``Attention.bench_peers``), in the
layer suite. In the step suite the peer is Hugging Face transformers' ``BertForSequenceClassification``
with its fused scaled-dot-product attention at the encoder's sizes and dropouts (an optional install,
never a dependency of effx); both models train with the same fused AdamW.

Fidelity: the relative error ``||o - o*|| / ||o*||`` on evenly spaced query rows, where ``o*`` is
the exact attention the measured one approximates, in fp32: what its class's
:meth:`effx.Attention.exact_reference` (or its peer's ``reference``) returns - softmax attention
unless the plugin says otherwise.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

import effx
from effx.components import SOFTMAX_REFERENCE

from ..train.precision import DTYPES
STEP_PEERS = {"hf-bert": ("transformers", None)}  # any installed version; recorded in machine.json


def adamw(model: torch.nn.Module) -> torch.optim.Optimizer:
    """The optimizer of every step workload, effx and peer alike (fused, as the effx trainer uses)."""
    return torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)


def autocast(spec: dict):
    """Autocast for low-precision runs; a no-op context for fp32."""
    if spec["dtype"] == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(spec["device"], dtype=DTYPES[spec["dtype"]])


def kernel_context(spec: dict):
    """The context an implementation variant declares around every call (``spec["variant"]``)."""
    if not spec.get("variant") or not spec.get("type"):
        return contextlib.nullcontext()
    cls = effx.load_registry().get("attention", spec["type"]).cls
    variant = next(v for v in cls.impl_variants if v.name == spec["variant"])
    return variant.context()


def softmax_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rows: torch.Tensor):
    """Exact softmax attention of query ``rows``: ``(B, H, S, Dh)``, and its name."""
    return F.scaled_dot_product_attention(q[:, :, rows], k, v), SOFTMAX_REFERENCE


def fidelity_rows(n: int, count: int) -> torch.Tensor:
    """Evenly spaced query rows compared with exact attention (keeps the reference O(rows * N))."""
    return torch.linspace(0, n - 1, min(n, count)).round().long().unique()


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.float() - ref).norm() / ref.norm().clamp_min(1e-30))


class LayerWorkload:
    """``q, k, v [B, H, N, Dh] -> [B, H, N, Dh]`` through one attention callable.

    ``reference(q, k, v, rows) -> (out [B, H, S, Dh], name)`` is the exact attention the fidelity is
    measured against (default: softmax attention).
    """

    def __init__(self, spec: dict, fn, module: torch.nn.Module, reference=softmax_reference) -> None:
        self.spec, self.fn, self.module, self.exact_reference = spec, fn, module, reference
        dev, dt = spec["device"], DTYPES[spec["dtype"]]
        shape = (spec["batch"], spec["heads"], spec["n"], spec["head_dim"])  # (B, H, N, Dh)
        gen = torch.Generator().manual_seed(0)
        std = (spec.get("qk_std", 1.0), spec.get("qk_std", 1.0), 1.0)
        self.q, self.k, self.v = (torch.randn(shape, generator=gen).mul_(s).to(dev, dt) for s in std)
        self.grad = torch.randn(shape, generator=gen).to(dev, dt)
        self.rows = fidelity_rows(spec["n"], spec["fidelity_rows"]).to(dev)

    def forward(self) -> torch.Tensor:
        self.module.eval()
        with torch.no_grad(), autocast(self.spec), kernel_context(self.spec):
            out = self.fn(self.q, self.k, self.v)  # (B, H, N, Dh)
        return out[:, :, self.rows].float().clone()  # (B, H, S, Dh) kept for the fidelity check

    def train_step(self) -> None:
        self.module.train()
        q, k, v = (t.detach().requires_grad_() for t in (self.q, self.k, self.v))
        with autocast(self.spec), kernel_context(self.spec):
            out = self.fn(q, k, v)  # (B, H, N, Dh)
        out.backward(self.grad.to(out.dtype))

    def reference(self) -> tuple[torch.Tensor, str]:
        """The exact attention for the sampled query rows, in fp32: ``(B, H, S, Dh)``, and its name."""
        q, k, v = (t.float() for t in (self.q, self.k, self.v))
        return self.exact_reference(q, k, v, self.rows)

    def fidelity(self, out: torch.Tensor) -> tuple[float, str]:
        """Relative error of the sampled output rows, and which exact attention it is measured against."""
        with torch.no_grad():
            ref, name = self.reference()
            return relative_error(out, ref), name


def effx_layer(spec: dict) -> LayerWorkload:
    entry = effx.load_registry().get("attention", spec["type"])
    from effx.config import structure

    cfg = structure(dict(spec["config"]), entry.cls.Config, root="attention")
    ctx = effx.AttentionContext(spec["heads"], spec["head_dim"], max(spec["n"], 1), 0.0, seed=0)
    module = entry.cls(cfg, ctx).to(spec["device"])
    return LayerWorkload(spec, lambda q, k, v: module(q, k, v), module, reference=module.exact_reference)


def find_peer(label: str, of_type: str) -> effx.BenchPeer:
    """The peer ``label`` that attention ``of_type`` declares."""
    cls = effx.load_registry().get("attention", of_type).cls
    return next(p for p in cls.bench_peers if p.label == label)


def peer_layer(spec: dict) -> LayerWorkload:
    peer = find_peer(spec["label"], spec["peer_of"])
    fn, module = peer.build(spec)
    return LayerWorkload(spec, fn, module, reference=peer.reference or softmax_reference)


class StepWorkload:
    """One training step of an encoder classifier built through :func:`effx.build_model`.

    ``spec["positional"]`` names its positional encoding (absent or None: a config's default).

    ``micro_batches > 1`` splits the batch and accumulates gradients (same optimiser update,
    smaller activations); ``checkpointing`` recomputes each block in backward.
    """

    def __init__(self, spec: dict) -> None:
        from effx.config import AttentionSpec, ModelConfig, PositionalSpec

        self.spec = spec
        positional = {"positional": PositionalSpec(spec["positional"])} if spec.get("positional") else {}
        cfg = ModelConfig(
            vocab_size=8000, d_model=spec["d_model"], n_layers=spec["n_layers"], n_heads=spec["heads"],
            d_ff=spec["d_ff"], max_seq_len=spec["n"], gradient_checkpointing=spec.get("checkpointing", False),
            attention=AttentionSpec(spec["type"], dict(spec["config"])), **positional,
        )
        self.model = effx.build_model(cfg, {"type": "classification", "num_classes": 2}).to(spec["device"])
        self._optimizer_and_batch(spec)

    def _optimizer_and_batch(self, spec: dict) -> None:
        """AdamW over ``self.model`` and one fixed random batch (token ids 5..7999, 2 classes)."""
        self.opt = adamw(self.model)
        gen = torch.Generator().manual_seed(0)
        b, n = spec["batch"], spec["n"]
        self.ids = torch.randint(5, 8000, (b, n), generator=gen).to(spec["device"])  # (B, N)
        self.labels = torch.randint(0, 2, (b,), generator=gen).to(spec["device"])  # (B,)
        self.micro = max(1, spec.get("micro_batches", 1))

    def forward(self) -> None:
        self.model.eval()
        with torch.no_grad(), autocast(self.spec), kernel_context(self.spec):
            self.model(self.ids)  # (B, C)

    def train_step(self) -> None:
        self.model.train()
        self.opt.zero_grad(set_to_none=True)
        for ids, labels in zip(self.ids.chunk(self.micro), self.labels.chunk(self.micro)):
            with autocast(self.spec), kernel_context(self.spec):
                loss = F.cross_entropy(self.model(ids).float(), labels) / self.micro
            loss.backward()
        self.opt.step()


class HFStepWorkload(StepWorkload):
    """The same step on ``transformers.BertForSequenceClassification``, same sizes: vocabulary 8000,
    hidden dropout 0.1 and attention dropout 0.0 as the effx defaults. The attention implementation is
    left to transformers, whose default is its fused one wherever torch provides it."""

    def __init__(self, spec: dict) -> None:  # noqa: D107 - see the class
        from transformers import BertConfig, BertForSequenceClassification

        self.spec = spec
        cfg = BertConfig(vocab_size=8000, hidden_size=spec["d_model"], num_hidden_layers=spec["n_layers"],
                         num_attention_heads=spec["heads"], intermediate_size=spec["d_ff"],
                         max_position_embeddings=max(spec["n"], 512), hidden_dropout_prob=0.1,
                         attention_probs_dropout_prob=0.0, num_labels=2)
        hf = BertForSequenceClassification(cfg).to(spec["device"])
        self.model = _Logits(hf)
        self._optimizer_and_batch(spec)


class _Logits(torch.nn.Module):
    """``ids (B, N) -> logits (B, C)`` around an HF model (which returns an output object)."""

    def __init__(self, hf: torch.nn.Module) -> None:
        super().__init__()
        self.hf = hf

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.hf(input_ids=ids).logits  # (B, C)


def build(spec: dict):
    if spec["suite"] == "step" and spec["source"] == "peer":
        return HFStepWorkload(spec)
    if spec["suite"] in ("step", "train", "savers"):
        return StepWorkload(spec)
    if spec["source"] == "peer":
        return peer_layer(spec)
    return effx_layer(spec)
