"""The things a bench times: one attention layer, a PyPI peer layer, one encoder training step.

Each workload offers ``forward()`` (inference under ``torch.no_grad``; not ``inference_mode``,
whose tensors a module may not cache and reuse in a later training step) and ``train_step()`` (forward +
backward; for the encoder also the AdamW update). A *spec* is a plain dict so it can cross into the
worker process; :func:`build` turns it into a workload there.

Peers, at the settings of issue 6: ``performer_pytorch.FastAttention(nb_features=256)``
(Choromanski et al., 2021) and ``reformer_pytorch.LSHAttention(bucket_size=64, n_hashes=4)``
(Kitaev et al., 2020). The Reformer peer shares queries and keys (it reads ``q`` only).
In the step suite the peer is Hugging Face transformers' ``BertForSequenceClassification`` with
``attn_implementation="sdpa"`` at the encoder's sizes and dropouts (an optional install, never a
dependency of effx); both models train with the same fused AdamW.

Fidelity: the relative error ``||o - o*|| / ||o*||`` on evenly spaced query rows, where ``o*`` is
exact softmax attention of the same inputs in fp32 - for shared-QK Reformers (the peer, and effx
types whose config has ``shared_qk: true``) the exact shared-QK attention they approximate.
"""
from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

import effx

from ..train.precision import DTYPES

EXACT_REF = "softmax(QK^T)V"
SHARED_REF = "shared-QK softmax(Q norm(Q)^T)V, no self"
PEERS = {
    "performer-pytorch": ("performer_pytorch", "1.1.4"),
    "reformer-pytorch": ("reformer_pytorch", "1.4.4"),
}
STEP_PEERS = {"hf-bert": ("transformers", None)}  # any installed version; recorded in machine.json


def adamw(model: torch.nn.Module) -> torch.optim.Optimizer:
    """The optimizer of every step workload, effx and peer alike (fused, as the effx trainer uses)."""
    return torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)


def autocast(spec: dict):
    """Autocast for low-precision runs; a no-op context for fp32."""
    if spec["dtype"] == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(spec["device"], dtype=DTYPES[spec["dtype"]])


def sdpa_backend(spec: dict):
    """Force the flash kernel of fused sdpa for the ``flash`` rows (CUDA only)."""
    if not spec.get("flash"):
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION])


def fidelity_rows(n: int, count: int) -> torch.Tensor:
    """Evenly spaced query rows compared with exact attention (keeps the reference O(rows * N))."""
    return torch.linspace(0, n - 1, min(n, count)).round().long().unique()


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.float() - ref).norm() / ref.norm().clamp_min(1e-30))


class LayerWorkload:
    """``q, k, v [B, H, N, Dh] -> [B, H, N, Dh]`` through one attention callable."""

    def __init__(self, spec: dict, fn, module: torch.nn.Module, shared_qk: bool = False) -> None:
        self.spec, self.fn, self.module, self.shared_qk = spec, fn, module, shared_qk
        dev, dt = spec["device"], DTYPES[spec["dtype"]]
        shape = (spec["batch"], spec["heads"], spec["n"], spec["head_dim"])  # (B, H, N, Dh)
        gen = torch.Generator().manual_seed(0)
        std = (spec.get("qk_std", 1.0), spec.get("qk_std", 1.0), 1.0)
        self.q, self.k, self.v = (torch.randn(shape, generator=gen).mul_(s).to(dev, dt) for s in std)
        self.grad = torch.randn(shape, generator=gen).to(dev, dt)
        self.rows = fidelity_rows(spec["n"], spec["fidelity_rows"]).to(dev)

    def forward(self) -> torch.Tensor:
        self.module.eval()
        with torch.no_grad(), autocast(self.spec), sdpa_backend(self.spec):
            out = self.fn(self.q, self.k, self.v)  # (B, H, N, Dh)
        return out[:, :, self.rows].float().clone()  # (B, H, S, Dh) kept for the fidelity check

    def train_step(self) -> None:
        self.module.train()
        q, k, v = (t.detach().requires_grad_() for t in (self.q, self.k, self.v))
        with autocast(self.spec), sdpa_backend(self.spec):
            out = self.fn(q, k, v)  # (B, H, N, Dh)
        out.backward(self.grad.to(out.dtype))

    def reference(self) -> torch.Tensor:
        """Exact softmax attention for the sampled query rows, in fp32: ``(B, H, S, Dh)``."""
        q, k, v = (t.float() for t in (self.q, self.k, self.v))
        qs = q[:, :, self.rows]  # (B, H, S, Dh)
        if not self.shared_qk:
            return F.scaled_dot_product_attention(qs, k, v)
        # Reformer's shared-QK attention: keys are the unit-normalised queries and a token attends
        # itself only when nothing else is available (self score -5e4, as in reformer-pytorch).
        scores = qs @ F.normalize(q, dim=-1).transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, S, N)
        scores[..., torch.arange(len(self.rows), device=scores.device), self.rows] = -5e4
        return scores.softmax(-1) @ v  # (B, H, S, Dh)

    def fidelity(self, out: torch.Tensor) -> tuple[float, str]:
        """Relative error of the sampled output rows, and which exact attention it is measured against."""
        with torch.no_grad():
            return relative_error(out, self.reference()), SHARED_REF if self.shared_qk else EXACT_REF


def effx_layer(spec: dict) -> LayerWorkload:
    entry = effx.load_registry().get("attention", spec["type"])
    from effx.config import structure

    cfg = structure(dict(spec["config"]), entry.cls.Config, root="attention")
    ctx = effx.AttentionContext(spec["heads"], spec["head_dim"], max(spec["n"], 1), 0.0, seed=0)
    module = entry.cls(cfg, ctx).to(spec["device"])
    shared = bool(getattr(cfg, "shared_qk", False))  # Reformer's shared-QK: compare with its exact form
    return LayerWorkload(spec, lambda q, k, v: module(q, k, v), module, shared_qk=shared)


def peer_layer(spec: dict) -> LayerWorkload:
    if spec["label"] == "performer-pytorch":
        from performer_pytorch import FastAttention

        module = FastAttention(dim_heads=spec["head_dim"], nb_features=256).to(spec["device"])
        return LayerWorkload(spec, module, module)
    from reformer_pytorch import LSHAttention

    module = LSHAttention(bucket_size=64, n_hashes=4, causal=False).to(spec["device"])

    def run(q, k, v):
        b, h, n, d = q.shape
        out, _, _ = module(q.reshape(b * h, n, d), v.reshape(b * h, n, d))  # (B*H, N, Dh)
        return out.reshape(b, h, n, d)

    return LayerWorkload(spec, run, module, shared_qk=True)


class StepWorkload:
    """One training step of an encoder classifier built through :func:`effx.build_model`.

    ``micro_batches > 1`` splits the batch and accumulates gradients (same optimiser update,
    smaller activations); ``checkpointing`` recomputes each block in backward.
    """

    def __init__(self, spec: dict) -> None:
        from effx.config import AttentionSpec, ModelConfig

        self.spec = spec
        cfg = ModelConfig(
            vocab_size=8000, d_model=spec["d_model"], n_layers=spec["n_layers"], n_heads=spec["heads"],
            d_ff=spec["d_ff"], max_seq_len=spec["n"], gradient_checkpointing=spec.get("checkpointing", False),
            attention=AttentionSpec(spec["type"], dict(spec["config"])),
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
        with torch.no_grad(), autocast(self.spec), sdpa_backend(self.spec):
            self.model(self.ids)  # (B, C)

    def train_step(self) -> None:
        self.model.train()
        self.opt.zero_grad(set_to_none=True)
        for ids, labels in zip(self.ids.chunk(self.micro), self.labels.chunk(self.micro)):
            with autocast(self.spec), sdpa_backend(self.spec):
                loss = F.cross_entropy(self.model(ids).float(), labels) / self.micro
            loss.backward()
        self.opt.step()


class HFStepWorkload(StepWorkload):
    """The same step on ``transformers.BertForSequenceClassification`` (sdpa attention), same sizes:
    vocabulary 8000, hidden dropout 0.1 and attention dropout 0.0 as the effx defaults."""

    def __init__(self, spec: dict) -> None:  # noqa: D107 - see the class
        from transformers import BertConfig, BertForSequenceClassification

        self.spec = spec
        cfg = BertConfig(vocab_size=8000, hidden_size=spec["d_model"], num_hidden_layers=spec["n_layers"],
                         num_attention_heads=spec["heads"], intermediate_size=spec["d_ff"],
                         max_position_embeddings=max(spec["n"], 512), hidden_dropout_prob=0.1,
                         attention_probs_dropout_prob=0.0, num_labels=2, attn_implementation="sdpa")
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
