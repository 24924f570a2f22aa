"""Which rows a bench run measures: every registered attention type, each ``impl`` choice separately.

An attention whose ``Config`` has an ``impl`` field with ``Literal`` choices (``sdpa``: fused and
explicit) gets one row per choice, labelled ``type[impl]``; on CUDA the fused sdpa path also gets a
``sdpa[flash]`` row with the flash kernel forced. Peers are the PyPI reference implementations,
run only in the layer suite and only when importable.
"""
from __future__ import annotations

import importlib.util
import typing

import attrs

from ..errors import ConfigError
from ..plugins import Registry, unknown_message
from .settings import BenchSettings
from .workloads import PEERS, STEP_PEERS


def impl_choices(cls: type) -> tuple[str, ...]:
    attrs.resolve_types(cls.Config)
    for f in attrs.fields(cls.Config):
        if f.name == "impl" and typing.get_origin(f.type) is typing.Literal:
            return typing.get_args(f.type)
    return ()


def variants(registry: Registry, types: tuple[str, ...] | None, device: str) -> list[tuple[str, str, dict, bool]]:
    """``(label, type, config, flash)`` for every attention row, registry order."""
    names = registry.names("attention")
    wanted = names if types is None else list(types)
    out = []
    for want in wanted:
        name, _, only = want.partition("[")  # "sdpa[fused]" selects one impl
        if name not in names:
            raise ConfigError(unknown_message("attention", name, names, "--types"))
        choices = impl_choices(registry.get("attention", name).cls)
        if only:
            if only.rstrip("]") not in choices:
                raise ConfigError(f"--types: {name} has no impl '{only.rstrip(']')}'; choices: {', '.join(choices)}")
            choices = (only.rstrip("]"),)
        if not choices:
            out.append((name, name, {}, False))
            continue
        for impl in choices:
            out.append((f"{name}[{impl}]", name, {"impl": impl}, False))
        if device == "cuda" and "fused" in choices:
            out.append((f"{name}[flash]", name, {"impl": "fused"}, True))
    return out


def available_peers(peers: dict = PEERS) -> list[str]:
    return [p for p, (mod, _) in peers.items() if importlib.util.find_spec(mod) is not None]


def missing_peers_line(s: BenchSettings) -> str | None:
    """One line naming the peers ``--peers`` would run but cannot import, or None."""
    if not s.peers:
        return None
    wanted = {**(PEERS if s.mode in ("layer", "both") else {}), **(STEP_PEERS if s.mode in ("step", "both") else {})}
    missing = [p for p, (mod, _) in wanted.items() if importlib.util.find_spec(mod) is None]
    if not missing:
        return None
    fixes = (["pip install 'effx[bench]'"] if any(p in PEERS for p in missing) else []) + \
            (["pip install transformers"] if "hf-bert" in missing else [])
    names = ", ".join(f"{p} ({wanted[p][0]})" for p in missing)
    return f"peers not installed, not compared: {names}; {' and '.join(fixes)} to include them, or pass --no-peers"


def base_spec(s: BenchSettings) -> dict:
    return {
        "dtype": s.dtype, "device": s.device, "heads": s.heads, "head_dim": s.head_dim, "reps": s.reps,
        "min_time_s": s.min_time_s,
        "warmup": s.warmup, "time_cap_s": s.time_cap_s, "mem_cap_gib": s.mem_cap_gib, "threads": s.threads,
        "fidelity_rows": s.fidelity_rows, "qk_std": s.qk_std, "d_model": s.d_model, "n_layers": s.n_layers, "d_ff": s.d_ff,
    }


def layer_specs(s: BenchSettings, registry: Registry) -> list[dict]:
    base = {**base_spec(s), "suite": "layer", "batch": s.batch}
    specs = []
    for label, name, config, flash in variants(registry, s.types, s.device):
        exact = registry.get("attention", name).cls.exact
        specs += [{**base, "label": label, "type": name, "config": config, "flash": flash, "source": "effx", "n": n,
                   "exact": exact} for n in s.seq_lens]
    if s.peers:
        for peer in available_peers():
            # reformer-pytorch needs N divisible by 2 * bucket_size (128)
            specs += [{**base, "label": peer, "type": None, "config": {}, "source": "peer", "n": n, "exact": False}
                      for n in s.seq_lens if peer != "reformer-pytorch" or n % 128 == 0]
    return specs


def step_specs(s: BenchSettings, registry: Registry) -> list[dict]:
    base = {**base_spec(s), "suite": "step", "heads": s.heads, "head_dim": s.d_model // s.heads}
    specs = [
        {**base, "label": label, "type": name, "config": config, "flash": flash, "source": "effx", "n": n,
         "batch": s.step_batch(n), "exact": registry.get("attention", name).cls.exact}
        for label, name, config, flash in variants(registry, s.types, s.device)
        for n in s.seq_lens
    ]
    if s.peers:
        specs += [{**base, "label": peer, "type": None, "config": {}, "source": "peer", "n": n,
                   "batch": s.step_batch(n), "exact": True}
                  for peer in available_peers(STEP_PEERS) for n in s.seq_lens]
    return specs


def plan(s: BenchSettings, registry: Registry) -> list[dict]:
    specs = []
    if s.mode in ("layer", "both"):
        specs += layer_specs(s, registry)
    if s.mode in ("step", "both"):
        specs += step_specs(s, registry)
    return specs
