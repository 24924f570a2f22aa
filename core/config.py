"""Typed, strict configuration: attrs classes at the edge, structured from YAML by cattrs.

* Unknown keys are rejected with the dotted path and a close match
  (``model.attention: extra fields found (nb_featurs); did you mean 'nb_features'?``).
* Wrong types are rejected, never coerced (``model.attention.n_hashes: expected int, got 'four'``).
* Component sections (``model.attention``, ``model.positional``, ``head``) carry a ``type`` key;
  the rest of the section is structured into that component's own ``Config``.
* YAML -> objects -> YAML round-trips without loss (:func:`to_dict` writes every default).
"""
from __future__ import annotations

import difflib
import enum
import re
import typing
from pathlib import Path
from typing import Any, Literal, Optional

import attrs
import cattrs
import yaml
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

from .errors import ConfigError


class _Mismatch(Exception):
    """Raised by the strict primitive hooks; its message is shown to the user as-is."""


# ----------------------------------------------------------------------------- components
@attrs.frozen
class ComponentSpec:
    """A named component plus its own typed config (``type`` + the plugin's ``Config`` fields)."""

    type: str
    config: Any = None

    kind: typing.ClassVar[str] = ""


@attrs.frozen
class AttentionSpec(ComponentSpec):
    kind: typing.ClassVar[str] = "attention"


@attrs.frozen
class PositionalSpec(ComponentSpec):
    kind: typing.ClassVar[str] = "positional"


@attrs.frozen
class HeadSpec(ComponentSpec):
    kind: typing.ClassVar[str] = "head"


# ----------------------------------------------------------------------------- sections
@attrs.frozen
class ModelConfig:
    """Architecture of the encoder. Everything here is inherited unchanged by finetuning."""

    vocab_size: int = 8000
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 1024
    dropout: float = 0.1
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    activation: Literal["gelu", "relu"] = "gelu"
    norm: Literal["pre", "post"] = "pre"
    layer_norm_eps: float = 1e-5
    max_seq_len: int = 512
    gradient_checkpointing: bool = False
    attention: AttentionSpec = AttentionSpec("sdpa")
    positional: PositionalSpec = PositionalSpec("sin")


@attrs.frozen
class DataConfig:
    """Where records come from. Paths are local files (csv/json/jsonl/parquet/txt) or, online, a hub name."""

    train: Optional[str] = None
    validation: Optional[str] = None
    test: Optional[str] = None
    hub_name: Optional[str] = None
    format: Literal["auto", "csv", "json", "jsonl", "parquet", "text"] = "auto"
    text_field: str = "text"
    label_field: str = "label"
    max_length: int = 128
    validation_fraction: float = 0.1
    max_train_samples: Optional[int] = None
    max_eval_samples: Optional[int] = None
    length_bucketing: bool = True  # similar-length batches: little padding (docs/BENCHMARKS.md, real-token throughput)
    num_workers: int = 0


@attrs.frozen
class TokenizerConfig:
    vocab_size: int = 8000
    min_frequency: int = 2
    lowercase: bool = True
    path: Optional[str] = None


@attrs.frozen
class MLMConfig:
    mask_prob: float = 0.15
    mask_token_frac: float = 0.8
    random_token_frac: float = 0.1
    mode: Literal["bert", "roberta"] = "roberta"


@attrs.frozen
class OptimizerConfig:
    name: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = 5e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    momentum: float = 0.0


@attrs.frozen
class SchedulerConfig:
    name: Literal["linear", "cosine", "constant"] = "linear"
    warmup_steps: int = 0
    warmup_ratio: float = 0.06


@attrs.frozen
class TrainConfig:
    epochs: int = 1
    max_steps: Optional[int] = None
    batch_size: int = 32
    eval_batch_size: int = 64
    grad_accum_steps: int = 1
    clip_grad_norm: Optional[float] = 1.0
    dtype: Literal["fp32", "bf16", "fp16"] = "fp32"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    log_every_steps: int = 10
    eval_every_steps: Optional[int] = None
    optimizer: OptimizerConfig = OptimizerConfig()
    scheduler: SchedulerConfig = SchedulerConfig()


@attrs.frozen
class CheckpointConfig:
    every_steps: Optional[int] = None
    every_epochs: Optional[int] = 1
    keep_last: int = 3


@attrs.frozen
class WandbConfig:
    mode: Literal["offline", "online", "disabled"] = "offline"
    project: str = "effx"
    entity: Optional[str] = None


@attrs.frozen
class LoggingConfig:
    wandb: WandbConfig = WandbConfig()
    progress_bar: bool = True


@attrs.frozen
class ExperimentConfig:
    """One experiment: everything needed to re-create a run."""

    seed: int = 0
    model: ModelConfig = ModelConfig()
    head: HeadSpec = HeadSpec("mlm")
    tokenizer: TokenizerConfig = TokenizerConfig()
    data: DataConfig = DataConfig()
    mlm: MLMConfig = MLMConfig()
    train: TrainConfig = TrainConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    logging: LoggingConfig = LoggingConfig()


# ----------------------------------------------------------------------------- converter
def _type_name(t: Any) -> str:
    return getattr(t, "__name__", str(t))


def _strict(t: type):
    def hook(value: Any, _: Any) -> Any:
        ok = isinstance(value, t) and not (t is not bool and isinstance(value, bool))
        if t is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not ok:
            raise _Mismatch(f"expected {_type_name(t)}, got {value!r}")
        return value

    return hook


def _literal_hook(t: Any):
    choices = typing.get_args(t)

    def hook(value: Any, _: Any) -> Any:
        if value not in choices:
            opts = ", ".join(repr(c) for c in choices)
            close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise _Mismatch(f"expected one of {opts}, got {value!r}{hint}")
        return value

    return hook


def make_converter(registry=None) -> cattrs.Converter:
    """A strict converter; with ``registry`` it also resolves component sections."""
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    for t in (int, float, str, bool):
        conv.register_structure_hook(t, _strict(t))
    conv.register_structure_hook_func(lambda t: typing.get_origin(t) is Literal, lambda v, t: _literal_hook(t)(v, t))
    conv.register_structure_hook_func(
        lambda t: isinstance(t, type) and issubclass(t, enum.Enum), lambda v, t: t(v)
    )
    conv.register_unstructure_hook_func(lambda t: isinstance(t, type) and issubclass(t, enum.Enum), lambda v: v.value)
    conv.register_structure_hook_func(
        lambda t: isinstance(t, type) and issubclass(t, ComponentSpec), lambda v, t: _structure_spec(conv, registry, v, t)
    )
    conv.register_unstructure_hook_func(
        lambda t: isinstance(t, type) and issubclass(t, ComponentSpec), lambda s: _unstructure_spec(conv, registry, s)
    )
    return conv


def _structure_spec(conv: cattrs.Converter, registry, value: Any, t: type) -> ComponentSpec:
    if not isinstance(value, dict):
        raise _Mismatch(f"expected a mapping with a 'type' key, got {value!r}")
    if "type" not in value:
        raise _Mismatch(f"missing 'type' (the {t.kind} name)")
    name = value["type"]
    rest = {k: v for k, v in value.items() if k != "type"}
    if registry is None:  # structural parse only (e.g. before plugins are loaded)
        return t(name, rest)
    entry = registry.get(t.kind, name)
    return t(name, conv.structure(rest, entry.cls.Config))


def _unstructure_spec(conv: cattrs.Converter, registry, spec: ComponentSpec) -> dict:
    config = spec.config
    if config is None and registry is not None:
        config = registry.get(spec.kind, spec.type).cls.Config()
    body = dict(config) if isinstance(config, dict) else (conv.unstructure(config) if config is not None else {})
    return {"type": spec.type, **body}


def _format(exc: BaseException, t: Any) -> str:
    if isinstance(exc, (_Mismatch, ConfigError)):
        return str(exc)
    if isinstance(exc, ForbiddenExtraKeysError):
        extra = sorted(exc.extra_fields)
        msg = f"extra fields found ({', '.join(extra)})"
        fields = [a.name for a in attrs.fields(exc.cl)] if attrs.has(exc.cl) else []
        close = difflib.get_close_matches(extra[0], fields, n=1)
        if close:
            msg += f"; did you mean '{close[0]}'?"
        elif fields:
            msg += f"; allowed: {', '.join(fields)}"
        return msg
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, AttributeError) and "items" in str(exc):
        return f"expected a mapping, got a {t and _type_name(t) or 'scalar'}"
    return f"invalid value ({exc})"


def config_error(exc: BaseException, root: str = "") -> ConfigError:
    """Turn a cattrs exception tree into one ConfigError with dotted paths."""
    if isinstance(exc, ConfigError):
        return exc
    lines = cattrs.transform_error(exc, path="$", format_exception=_format)
    out = []
    for line in lines:
        msg, _, path = line.rpartition(" @ ")
        path = path.replace("$.", "").replace("$", "")
        full = ".".join(p for p in (root, path) if p)
        out.append(f"{full}: {msg}" if full else msg)
    return ConfigError("; ".join(out))


def structure(data: Any, cls: type, registry=None, root: str = "") -> Any:
    """Structure ``data`` into ``cls`` strictly; any problem raises one-line :class:`ConfigError`."""
    conv = make_converter(registry)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{root or 'config'}: expected a mapping, got {type(data).__name__}")
    try:
        obj = conv.structure(data, cls)
    except (ClassValidationError, IterableValidationError, _Mismatch, ConfigError) as exc:
        raise config_error(exc, root) from None
    return fill_defaults(obj, registry) if registry is not None else obj


def fill_defaults(obj: Any, registry) -> Any:
    """Give every component spec left at its class default a typed config (so equality holds)."""
    if isinstance(obj, ComponentSpec):
        if obj.config is None or isinstance(obj.config, dict):
            cfg_cls = registry.get(obj.kind, obj.type).cls.Config
            return attrs.evolve(obj, config=structure(obj.config or {}, cfg_cls))
        return obj
    if attrs.has(type(obj)):
        changes = {}
        for a in attrs.fields(type(obj)):
            val = getattr(obj, a.name)
            new = fill_defaults(val, registry)
            if new is not val:
                changes[a.name] = new
        return attrs.evolve(obj, **changes) if changes else obj
    return obj


def to_dict(obj: Any, registry=None) -> dict:
    """Unstructure to plain YAML-able data, every default filled in."""
    data = make_converter(registry).unstructure(obj)
    return _plain(data)


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads YAML 1.2 floats such as ``3e-4`` (YAML 1.1 would read a string)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


def load_yaml(path: str | Path) -> Any:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} not found; create it with `effx init`")
    try:
        return parse_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}{where}: invalid YAML ({problem}); fix the syntax") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save the file as UTF-8") from None


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def load_experiment(path: str | Path, registry=None) -> ExperimentConfig:
    from .plugins import load_registry

    registry = registry or load_registry()
    return structure(load_yaml(path), ExperimentConfig, registry)


def replace_in(obj: Any, dotted: str, value: Any) -> Any:
    """Return a copy of an attrs tree with the field at ``dotted`` replaced."""
    head, _, rest = dotted.partition(".")
    if not rest:
        return attrs.evolve(obj, **{head: value})
    return attrs.evolve(obj, **{head: replace_in(getattr(obj, head), rest, value)})
