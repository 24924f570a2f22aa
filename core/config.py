"""Typed, strict configuration: attrs classes at the edge, structured from YAML by cattrs.

* Unknown keys are rejected with the dotted path and a close match
  (``model: extra fields found (d_modle); did you mean 'd_model'?``).
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
from typing import Any, Literal, Optional, Union

import attrs
import cattrs
import yaml
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

from .bounds import BoundsError, at_least, between, each, greater_than, optional
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


def _defaults():
    from . import defaults  # imported late: it reads the plugin registry, which imports this module

    return defaults


# ----------------------------------------------------------------------------- sections
@attrs.frozen
class ModelConfig:
    """Architecture of the encoder. Everything here is inherited unchanged by finetuning."""

    vocab_size: int = attrs.field(default=8000, validator=at_least(1))
    d_model: int = attrs.field(default=256, validator=at_least(1))
    n_layers: int = attrs.field(default=4, validator=at_least(1))
    n_heads: int = attrs.field(default=4, validator=at_least(1))
    d_ff: int = attrs.field(default=1024, validator=at_least(1))
    dropout: float = attrs.field(default=0.1, validator=between(0, 1, high_open=True))
    attention_dropout: float = attrs.field(default=0.0, validator=between(0, 1, high_open=True))
    activation_dropout: float = attrs.field(default=0.0, validator=between(0, 1, high_open=True))
    activation: Literal["gelu", "relu"] = "gelu"
    norm: Literal["pre", "post"] = "pre"
    layer_norm_eps: float = attrs.field(default=1e-5, validator=greater_than(0))
    max_seq_len: int = attrs.field(default=512, validator=at_least(1))
    gradient_checkpointing: bool = False
    # unnamed: the components the installed plugins declare as defaults (effx.defaults)
    attention: AttentionSpec = attrs.field(factory=lambda: AttentionSpec(_defaults().default_attention()))
    positional: PositionalSpec = attrs.field(
        default=attrs.Factory(lambda self: PositionalSpec(_defaults().default_positional(self.attention.type)),
                              takes_self=True))

    def __attrs_post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise BoundsError("n_heads", f"must divide d_model ({self.d_model}), got {self.n_heads}")


@attrs.frozen
class DataFile:
    """One entry of a list of data files: a path or glob, with the fields that differ from ``data.*``."""

    path: str
    text_field: Optional[str] = None  # null: data.text_field (for plain text files: their one column)
    label_field: Optional[str] = None  # null: data.label_field
    format: Optional[Literal["csv", "json", "jsonl", "parquet", "text"]] = None  # null: data.format


# A split's files: one path, or a list of paths / globs / DataFile entries (read and concatenated in order).
DataSource = Optional[Union[str, list[Union[str, DataFile]]]]


@attrs.frozen
class DataConfig:
    """Where records come from. Paths are local files (csv/json/jsonl/parquet/txt) or, online, a hub name.

    ``train`` / ``validation`` / ``test`` are each a path, or a list of paths, globs and
    ``{path, text_field, label_field, format}`` entries (e.g. task text plus an unlabelled corpus).
    """

    train: DataSource = None
    validation: DataSource = None
    test: DataSource = None
    hub_name: Optional[str] = None
    format: Literal["auto", "csv", "json", "jsonl", "parquet", "text"] = "auto"
    text_field: str = "text"
    label_field: str = "label"
    max_length: int = attrs.field(default=128, validator=at_least(2))  # room for [CLS] and [SEP]
    validation_fraction: float = attrs.field(default=0.1, validator=between(0, 1, low_open=True, high_open=True))
    max_overlap_fraction: float = attrs.field(default=0.05, validator=between(0, 1))  # validation/test rows also in train: above this fraction, an error
    max_train_samples: Optional[int] = attrs.field(default=None, validator=optional(at_least(1)))
    max_eval_samples: Optional[int] = attrs.field(default=None, validator=optional(at_least(1)))
    length_bucketing: bool = True  # similar-length batches: little padding (docs/BENCHMARKS.md, real-token throughput)
    num_workers: int = attrs.field(default=0, validator=at_least(0))


@attrs.frozen
class TokenizerConfig:
    """``kind``: ``wordpiece`` (trained on the training text, up to ``vocab_size`` entries) or ``byte``
    (every UTF-8 byte one token: a fixed vocabulary of the special tokens + 256 bytes, nothing to train,
    no unknown tokens; the form of long-input benchmarks such as the Long Range Arena text task)."""

    kind: Literal["wordpiece", "byte"] = "wordpiece"
    vocab_size: int = attrs.field(default=8000, validator=at_least(1))
    min_frequency: int = attrs.field(default=2, validator=at_least(1))
    lowercase: bool = True
    path: Optional[str] = None


@attrs.frozen
class MLMConfig:
    mask_prob: float = attrs.field(default=0.15, validator=between(0, 1, low_open=True))
    mask_token_frac: float = attrs.field(default=0.8, validator=between(0, 1))
    random_token_frac: float = attrs.field(default=0.1, validator=between(0, 1))
    mode: Literal["bert", "roberta"] = "roberta"

    def __attrs_post_init__(self) -> None:
        if self.mask_token_frac + self.random_token_frac > 1:
            raise BoundsError("random_token_frac", f"must be <= 1 - mask_token_frac ({1 - self.mask_token_frac:g}), "
                              f"got {self.random_token_frac!r}")


@attrs.frozen
class OptimizerConfig:
    name: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = attrs.field(default=5e-4, validator=greater_than(0))
    weight_decay: float = attrs.field(default=0.01, validator=at_least(0))
    betas: tuple[float, float] = attrs.field(default=(0.9, 0.999), validator=each(between(0, 1, high_open=True)))
    eps: float = attrs.field(default=1e-8, validator=greater_than(0))
    momentum: float = attrs.field(default=0.0, validator=between(0, 1, high_open=True))


@attrs.frozen
class SchedulerConfig:
    name: Literal["linear", "cosine", "constant"] = "linear"
    warmup_steps: int = attrs.field(default=0, validator=at_least(0))
    warmup_ratio: float = attrs.field(default=0.06, validator=between(0, 1))


@attrs.frozen
class TrainConfig:
    epochs: int = attrs.field(default=1, validator=at_least(1))
    max_steps: Optional[int] = attrs.field(default=None, validator=optional(at_least(1)))
    batch_size: int = attrs.field(default=32, validator=at_least(1))
    eval_batch_size: int = attrs.field(default=64, validator=at_least(1))
    grad_accum_steps: int = attrs.field(default=1, validator=at_least(1))
    clip_grad_norm: Optional[float] = attrs.field(default=1.0, validator=optional(greater_than(0)))
    dtype: Literal["fp32", "bf16", "fp16"] = "fp32"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    log_every_steps: int = attrs.field(default=10, validator=at_least(1))
    eval_every_steps: Optional[int] = attrs.field(default=None, validator=optional(at_least(1)))
    optimizer: OptimizerConfig = OptimizerConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    # every registered metric is computed; ``metrics.<name>`` holds that metric's Config fields
    metrics: dict[str, dict[str, Any]] = attrs.field(factory=dict)


@attrs.frozen
class CheckpointConfig:
    every_steps: Optional[int] = attrs.field(default=None, validator=optional(at_least(1)))
    every_epochs: Optional[int] = attrs.field(default=1, validator=optional(at_least(1)))
    keep_last: int = attrs.field(default=3, validator=at_least(1))


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

    seed: int = attrs.field(default=0, validator=at_least(0))
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
    conv.register_structure_hook_func(lambda t: t == DataSource, lambda v, t: _structure_source(conv, v))
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


def _structure_source(conv: cattrs.Converter, value: Any) -> Any:
    """A path, or a list of paths / ``{path, text_field, label_field, format}`` mappings."""
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, list) or not value:
        raise _Mismatch(f"expected a file path or a non-empty list of paths / {{path, text_field, ...}} entries, "
                        f"got {value!r}")
    out = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            try:
                out.append(conv.structure(item, DataFile))
            except (ClassValidationError, _Mismatch) as exc:
                raise _Mismatch(f"[{i}]: {config_error(exc)}") from None
        else:
            raise _Mismatch(f"[{i}]: expected a path or a {{path, text_field, label_field, format}} mapping, "
                            f"got {item!r}")
    return out


def _unstructure_spec(conv: cattrs.Converter, registry, spec: ComponentSpec) -> dict:
    config = spec.config
    if config is None and registry is not None:
        config = registry.get(spec.kind, spec.type).cls.Config()
    body = dict(config) if isinstance(config, dict) else (conv.unstructure(config) if config is not None else {})
    return {"type": spec.type, **body}


_FIELD = "\x1f"  # separates a message from the attribute it is about (see _format)


def _format(exc: BaseException, t: Any) -> str:
    if isinstance(exc, BoundsError):
        return f"{exc.message}{_FIELD}{exc.field}"
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
        msg, _, field = msg.partition(_FIELD)
        path = ".".join(p for p in (path, field) if p)
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
    if registry is None:
        return obj
    if isinstance(obj, (ExperimentConfig, TrainConfig)):  # a bad metric section fails at load time
        train = obj.train if isinstance(obj, ExperimentConfig) else obj
        metric_configs(train.metrics, registry, root=".".join(p for p in (root, "" if train is obj else "train") if p))
    return fill_defaults(obj, registry)


def metric_configs(section: dict[str, Any], registry, root: str = "train") -> dict[str, Any]:
    """The typed Config of every registered metric: its ``metrics.<name>`` section, else its defaults.

    A section naming no registered metric, or holding a field its Config lacks, is a one-line error.
    """
    where = f"{root}.metrics" if root else "metrics"
    for name in section:
        registry.get("metric", name, where)
    return {name: structure(section.get(name) or {}, entry.cls.Config, root=f"{where}.{name}")
            for name, entry in registry.entries["metric"].items()}


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
