"""Which rows a bench run measures: every registered attention type, each implementation variant separately.

An attention that declares ``impl_variants`` gets one row per variant that runs on the device,
labelled ``type[variant]``; one that declares none gets one row with its default config. Peers are
the PyPI implementations the attentions declare (``bench_peers``), run only in the layer suite and
only when importable.
"""
from __future__ import annotations

import importlib.util

from ..errors import ConfigError
from ..plugins import Registry, unknown_message
from .settings import BenchSettings
from .workloads import STEP_PEERS

Variant = tuple[str, str, dict, str | None]  # (label, type, config, variant name or None)


def _variants_of(name: str, cls: type, only: str, device: str) -> list[Variant]:
    declared = cls.impl_variants
    if only:
        if only not in [v.name for v in declared]:
            choices = ", ".join(v.name for v in declared) or "none"
            raise ConfigError(f"--types: {name} has no implementation variant '{only}'; variants: {choices}")
        declared = tuple(v for v in declared if v.name == only)
        if device not in declared[0].devices:
            raise ConfigError(f"--types: {name}[{only}] runs on {', '.join(declared[0].devices)} only, not {device}")
    else:
        declared = tuple(v for v in declared if device in v.devices)
    if not declared:
        return [(name, name, {}, None)]
    return [(f"{name}[{v.name}]", name, dict(v.config), v.name) for v in declared]


def variants(registry: Registry, types: tuple[str, ...] | None, device: str) -> list[Variant]:
    """``(label, type, config, variant)`` for every attention row, registry order."""
    names = registry.names("attention")
    wanted = names if types is None else list(types)
    out = []
    for want in wanted:
        name, _, only = want.partition("[")  # "type[variant]" selects one variant
        if name not in names:
            raise ConfigError(unknown_message("attention", name, names, "--types", registry.pm))
        out += _variants_of(name, registry.get("attention", name).cls, only.rstrip("]"), device)
    return out


def layer_peers(registry: Registry, types: list[str]) -> dict[str, tuple[str, object]]:
    """``label -> (declaring type, BenchPeer)`` for the peers of the measured types, first declaration wins."""
    out: dict[str, tuple[str, object]] = {}
    for name in types:
        for peer in registry.get("attention", name).cls.bench_peers:
            out.setdefault(peer.label, (name, peer))
    return out


def available_peers(peers: dict) -> list[str]:
    """The labels of ``peers`` (``label -> (module, version)``) whose module is importable."""
    return [p for p, (mod, _) in peers.items() if importlib.util.find_spec(mod) is not None]


def missing_peers_line(s: BenchSettings, registry: Registry | None = None) -> str | None:
    """One line naming the peers ``--peers`` would run but cannot import, or None."""
    if not s.peers:
        return None
    if registry is None:
        from ..plugins import load_registry

        registry = load_registry()
    layer = {lab: (p.module, p.version) for lab, (_, p) in layer_peers(registry, registry.names("attention")).items()}
    wanted = {**(layer if s.mode in ("layer", "both") else {}), **(STEP_PEERS if s.mode in ("step", "both") else {})}
    missing = [p for p, (mod, _) in wanted.items() if importlib.util.find_spec(mod) is None]
    if not missing:
        return None
    installs = [f"{p}=={wanted[p][1]}" if wanted[p][1] else p for p in missing if p in layer]
    fixes = ([f"pip install {' '.join(installs)}"] if installs else []) + \
            (["pip install transformers"] if "hf-bert" in missing else [])
    names = ", ".join(f"{p} ({wanted[p][0]})" for p in missing)
    return f"peers not installed, not compared: {names}; {' and '.join(fixes)} to include them, or pass --no-peers"


def base_spec(s: BenchSettings) -> dict:
    return {
        "dtype": s.dtype, "device": s.device, "heads": s.heads, "head_dim": s.head_dim, "reps": s.reps,
        "min_time_s": s.min_time_s,
        "warmup": s.warmup, "time_cap_s": s.time_cap_s, "mem_cap_gib": s.mem_cap_gib, "threads": s.threads,
        "fidelity_rows": s.fidelity_rows, "qk_std": s.qk_std, "d_model": s.d_model, "n_layers": s.n_layers, "d_ff": s.d_ff,
        "positional": s.positional,
    }


def layer_specs(s: BenchSettings, registry: Registry) -> list[dict]:
    base = {**base_spec(s), "suite": "layer", "batch": s.batch}
    specs = []
    rows = variants(registry, s.types, s.device)
    for label, name, config, variant in rows:
        exact = registry.get("attention", name).cls.exact
        specs += [{**base, "label": label, "type": name, "config": config, "variant": variant, "source": "effx",
                   "n": n, "exact": exact} for n in s.seq_lens]
    if s.peers:
        peers = layer_peers(registry, list(dict.fromkeys(name for _, name, _, _ in rows)))
        for label in available_peers({lab: (p.module, p.version) for lab, (_, p) in peers.items()}):
            of_type, peer = peers[label]
            specs += [{**base, "label": label, "type": None, "peer_of": of_type, "config": {}, "source": "peer",
                       "n": n, "exact": False} for n in s.seq_lens if n % peer.seq_multiple == 0]
    return specs


def step_specs(s: BenchSettings, registry: Registry) -> list[dict]:
    base = {**base_spec(s), "suite": "step", "heads": s.heads, "head_dim": s.d_model // s.heads}
    specs = [
        {**base, "label": label, "type": name, "config": config, "variant": variant, "source": "effx", "n": n,
         "batch": s.step_batch(n), "exact": registry.get("attention", name).cls.exact}
        for label, name, config, variant in variants(registry, s.types, s.device)
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
