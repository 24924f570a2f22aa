"""Rendering of ``effx plugins``."""
from __future__ import annotations

import json
import typing

import attrs


def _type_str(t) -> str:
    if t is None:
        return "?"
    origin = typing.get_origin(t)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(t))
    if origin is typing.Union or type(t).__name__ == "UnionType":
        return " | ".join(_type_str(a) if a is not type(None) else "None" for a in typing.get_args(t))
    if origin is not None:
        return str(t).replace("typing.", "")
    return getattr(t, "__name__", None) or str(t).replace("typing.", "")


def fields_of(cls) -> list[dict]:
    out = []
    attrs.resolve_types(cls.Config)
    for f in attrs.fields(cls.Config):
        default = f.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory()
        out.append({"name": f.name, "type": _type_str(f.type), "default": default})
    return out


def describe(kind: str | None, as_json: bool) -> str:
    from effx.plugins import load_registry

    reg = load_registry()
    rows = []
    for e in reg:
        if kind and e.kind != kind:
            continue
        extra = {}
        if e.kind == "attention":
            caps = e.cls.capabilities
            extra = {"exact": e.cls.exact, "key_padding_mask": caps.key_padding_mask, "attn_mask": caps.attn_mask,
                     "positional": sorted(m.value for m in caps.positional)}
        elif e.kind == "positional":
            extra = {"mode": e.cls.mode.value}
        rows.append({"kind": e.kind, "name": e.name, "dist": e.dist, "version": e.version,
                     "fields": fields_of(e.cls), **extra})
    if as_json:
        return json.dumps(rows, indent=2, default=str)
    lines = []
    for r in rows:
        lines.append(f"{r['kind']:<10} {r['name']:<20} {r['dist']} {r['version']}")
        if r["kind"] == "attention":
            lines.append(f"{'':<32}supports: padding={r['key_padding_mask']} dense_mask={r['attn_mask']} "
                         f"positional={','.join(r['positional'])}")
        if r["kind"] == "positional":
            lines.append(f"{'':<32}mode: {r['mode']}")
        for f in r["fields"]:
            lines.append(f"{'':<32}{f['name']}: {f['type']} = {f['default']!r}")
    return "\n".join(lines)
