"""Experiment configs: ``effx init`` (template -> config.yaml) and finetune inheritance.

A finetune config holds only ``seed``, ``head``, ``data``, ``train``, ``checkpoint`` and ``logging``;
the architecture (``model``), the tokenizer and the MLM settings come from the pretraining
experiment. Writing an inherited key is accepted only if it equals the pretraining value; a key that
differs is an error naming it.

A finetune *without pretraining* (``effx init --finetune --no-pretrain``) also holds ``model`` and
``tokenizer``: the encoder starts from a fresh initialisation of that architecture and the tokenizer
is trained on its own training text.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable

import yaml

from ..config import ExperimentConfig, dump_yaml, load_yaml, parse_yaml, structure, to_dict
from ..data.tokenizer import BYTE_VOCAB_SIZE
from ..errors import ConfigError
from ..resources import PACKAGE_ROOT, TEMPLATES
from .paths import experiment_dir
from .runfiles import atomic_write_text, now_iso

FINETUNE_SECTIONS = ("seed", "head", "data", "train", "checkpoint", "logging")
INHERITED_SECTIONS = ("model", "tokenizer", "mlm")
SCRATCH_SECTIONS = ("model", "tokenizer")  # what a finetune without pretraining adds to FINETUNE_SECTIONS
COMPONENT_SECTIONS = ("head", "model.attention", "model.positional")
DATA_PATH_KEYS = ("train", "validation", "test")


# ----------------------------------------------------------------------------- --set
def parse_set(item: str) -> tuple[str, Any]:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set train.optimizer.lr=3e-4")
    try:
        value = parse_yaml(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):  # YAML 1.1 reads 3e-4 as a string; users mean a number
        try:
            value = float(value) if any(c in value.lower() for c in ".e") else value
        except ValueError:
            pass
    return key.strip(), value


def apply_set(data: dict, key: str, value: Any) -> None:
    """Set a dotted key in nested dicts; setting ``<component>.type`` drops that component's old fields."""
    parts = key.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {'.'.join(parts[:i + 1])} is a value, not a section")
        node = child
    if parts[-1] == "type" and ".".join(parts[:-1]) in COMPONENT_SECTIONS and node.get("type") != value:
        node.clear()
    node[parts[-1]] = value


# ----------------------------------------------------------------------------- init
def init_experiment(name: str, root=None, template: str | None = None, sets: Iterable[str] = (),
                    force: bool = False, finetune: bool = False, registry=None, pretrained: bool = True,
                    recommend_dtype: bool = False) -> Path:
    """Write ``<root>/{pretrain|finetune}/NAME/config.yaml`` with every default filled in.

    ``pretrained=False`` (finetune only) writes the ``model`` and ``tokenizer`` sections too (from the
    pretraining template unless ``template`` has them): the finetune then trains from scratch.

    ``recommend_dtype`` (what ``effx init`` does): with the built-in template, ``train.dtype`` is
    bf16 where this machine has fast bf16 (:func:`effx.train.precision.recommended_dtype`), else fp32;
    a ``--set train.dtype=...`` still wins.
    """
    from ..plugins import load_registry

    registry = registry or load_registry()
    kind = "finetune" if finetune else "pretrain"
    exp = experiment_dir(kind, name, root)
    target = exp / "config.yaml"
    if target.exists() and not force:
        raise ConfigError(f"{kind}/{name} already exists ({target}); pass --force to overwrite its config.yaml")
    tpath = Path(template) if template else TEMPLATES / f"{kind}.yaml"
    raw = load_yaml(tpath)
    if not isinstance(raw, dict):
        raise ConfigError(f"template {tpath} must be a YAML mapping of config sections")
    note = _recommend_dtype(raw) if recommend_dtype and template is None else ""
    chosen = raw.get("train", {}).get("dtype")
    if finetune:
        check_finetune_keys(raw, str(tpath), scratch=not pretrained)
        if not pretrained:
            add_scratch_sections(raw)
    parsed = [parse_set(item) for item in sets]
    for item, (key, value) in zip(sets, parsed):
        if finetune:
            check_set_key(item, key, name, scratch=not pretrained)
        apply_set(raw, key, value)
    if raw.get("train", {}).get("dtype") != chosen:
        note = ""  # the user chose the dtype
    drop_template_eval_files(raw, {key for key, _ in parsed})
    fill_data_paths(raw, exp.parent.parent)
    data = finetune_dict(raw, registry, scratch=not pretrained) if finetune else pretrain_dict(raw, registry)
    run = f"effx {kind} -exp {name}" + (" -pretrain PRE" if finetune and pretrained else "")
    header = (f"# effx {kind} experiment '{name}', generated by `effx init` from {tpath.name} on {now_iso()}.\n"
              f"# Every setting is listed with its value; edit freely. Relative data paths are relative to\n"
              f"# the experiments root ({exp.parent.parent}). Run: {run}\n" + note)
    if finetune and not pretrained:
        header += "# No pretraining: the encoder starts from a fresh initialisation of `model` below.\n"
    exp.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, header + dump_yaml(data))
    return target


def drop_template_eval_files(raw: dict, set_keys: set[str]) -> None:
    """A template's validation/test files belong to its training file: when ``--set data.train`` replaces
    that, they are dropped unless set too (validation is then held out of the user's training data)."""
    data = raw.get("data")
    if "data.train" not in set_keys or not isinstance(data, dict):
        return
    for split in ("validation", "test"):
        if f"data.{split}" not in set_keys:
            data[split] = None


def add_scratch_sections(raw: dict) -> None:
    """Give a finetune without pretraining the pretraining template's model and tokenizer (if missing)."""
    base = load_yaml(TEMPLATES / "pretrain.yaml")
    for key in SCRATCH_SECTIONS:
        raw.setdefault(key, copy.deepcopy(base[key]))


def check_set_key(item: str, key: str, name: str, scratch: bool) -> None:
    """A finetune ``--set`` may touch only finetune sections (plus model/tokenizer without pretraining)."""
    top = key.split(".", 1)[0]
    if top in FINETUNE_SECTIONS or (scratch and top in SCRATCH_SECTIONS):
        return
    if top in SCRATCH_SECTIONS:
        raise ConfigError(f"--set {item}: '{top}' is inherited from the pretraining experiment (-pretrain PRE); "
                          f"set it on that experiment (effx init -exp PRE --set {item}), or train without "
                          f"pretraining: effx init -exp {name} --finetune --no-pretrain --set {item}")
    allowed = FINETUNE_SECTIONS + (SCRATCH_SECTIONS if scratch else ())
    raise ConfigError(f"--set {item}: '{top}' is not a finetune setting; allowed sections: {', '.join(allowed)}")
def _recommend_dtype(raw: dict) -> str:
    """Set ``train.dtype`` in the template to this machine's recommendation; return a header line."""
    import torch

    from .precision import BF16_CPU_FLAGS, recommended_dtype

    train = raw.setdefault("train", {})
    device = train.get("device", "auto")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    train["dtype"] = recommended_dtype(device)
    why = ("this machine has fast bf16" + (f" ({' or '.join(BF16_CPU_FLAGS)})" if device == "cpu" else "")
           if train["dtype"] == "bf16" else f"this {device} has no fast bf16")
    return f"# train.dtype {train['dtype']}: {why}; fp16 is refused on CPU.\n"


def pretrain_dict(raw: dict, registry) -> dict:
    cfg = structure(raw, ExperimentConfig, registry)
    check_consistency(cfg, "pretrain", registry)
    return to_dict(cfg, registry)


def finetune_dict(raw: dict, registry, scratch: bool = False) -> dict:
    raw = copy.deepcopy(raw)
    raw.setdefault("head", {"type": "classification"})
    if isinstance(raw["head"], dict):
        raw["head"].setdefault("type", "classification")
    cfg = structure(raw, ExperimentConfig, registry)
    check_head_task(cfg, "classification", registry)
    if scratch:
        check_consistency(cfg, "scratch", registry)
    full = to_dict(cfg, registry)
    return {k: full[k] for k in FINETUNE_SECTIONS + (SCRATCH_SECTIONS if scratch else ())}


def fill_data_paths(raw: dict, root: Path) -> None:
    """Keep a relative data path if it exists under ``root``; else make it absolute if it exists under
    the current directory or the installed effx package (where the shipped sample lives). Lists of paths
    and ``{path: ...}`` entries are handled path by path; glob patterns stay relative to ``root``."""
    data = raw.get("data")
    if not isinstance(data, dict):
        return
    for key in DATA_PATH_KEYS:
        value = data.get(key)
        if isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict) and isinstance(item.get("path"), str):
                    item["path"] = _filled(item["path"], root)
                elif isinstance(item, str):
                    value[i] = _filled(item, root)
        elif isinstance(value, str):
            data[key] = _filled(value, root)


def _filled(value: str, root: Path) -> str:
    if Path(value).expanduser().is_absolute() or (root / value).exists():
        return value
    for base in (Path.cwd(), PACKAGE_ROOT):  # a template's data/sample/... is the shipped sample
        if (base / value).exists():
            return str((base / value).resolve())
    return value


# ----------------------------------------------------------------------------- checks
def check_head_task(cfg: ExperimentConfig, task: str, registry) -> None:
    entry = registry.get("head", cfg.head.type, "head")
    if entry.cls.task != task:
        have = [n for n in registry.names("head") if registry.get("head", n).cls.task == task]
        raise ConfigError(f"head.type '{cfg.head.type}' is a {entry.cls.task} head; this experiment needs a {task} "
                          f"head ({', '.join(have)})")


def check_consistency(cfg: ExperimentConfig, kind: str, registry) -> None:
    """``kind``: pretrain, finetune, or scratch (a finetune that trains its own tokenizer and model)."""
    check_head_task(cfg, "mlm" if kind == "pretrain" else "classification", registry)
    if cfg.data.max_length > cfg.model.max_seq_len:
        raise ConfigError(f"data.max_length ({cfg.data.max_length}) exceeds model.max_seq_len "
                          f"({cfg.model.max_seq_len}); lower data.max_length or raise model.max_seq_len")
    if kind in ("pretrain", "scratch") and cfg.tokenizer.kind == "byte" and cfg.model.vocab_size < BYTE_VOCAB_SIZE:
        raise ConfigError(f"tokenizer.kind byte needs model.vocab_size >= {BYTE_VOCAB_SIZE} (5 special tokens + 256 "
                          f"bytes), got {cfg.model.vocab_size}; set model.vocab_size={BYTE_VOCAB_SIZE}")
    if kind in ("pretrain", "scratch") and cfg.tokenizer.kind == "wordpiece" \
            and cfg.tokenizer.vocab_size > cfg.model.vocab_size:
        raise ConfigError(f"tokenizer.vocab_size ({cfg.tokenizer.vocab_size}) exceeds model.vocab_size "
                          f"({cfg.model.vocab_size}); set both to the same value")
    if cfg.train.batch_size < 1 or cfg.train.grad_accum_steps < 1 or cfg.train.epochs < 1:
        raise ConfigError("train.batch_size, train.grad_accum_steps and train.epochs must be >= 1")
    if cfg.checkpoint.keep_last < 1:
        raise ConfigError(f"checkpoint.keep_last must be >= 1, got {cfg.checkpoint.keep_last}")


def check_finetune_keys(raw: dict, where: str, pre: dict | None = None, pre_name: str = "PRE",
                        scratch: bool = False) -> None:
    """Only finetune sections may be set (plus model/tokenizer without pretraining); with a pretraining
    experiment ``pre``, inherited keys must equal its values."""
    for key, value in raw.items():
        if key in FINETUNE_SECTIONS or (scratch and key in SCRATCH_SECTIONS):
            continue
        if key not in INHERITED_SECTIONS or scratch:
            allowed = FINETUNE_SECTIONS + (SCRATCH_SECTIONS if scratch else ())
            raise ConfigError(f"{where}: '{key}' is not a finetune setting; allowed sections: {', '.join(allowed)}")
        if pre is None:
            raise ConfigError(f"{where}: '{key}' is inherited from the pretraining experiment and cannot be set "
                              f"in a finetune config; remove it (or train without pretraining: "
                              f"effx init --finetune --no-pretrain)")
        _same_as_pre(value, pre.get(key), key, where, pre_name)


def _same_as_pre(value: Any, pre_value: Any, path: str, where: str, pre_name: str) -> None:
    if isinstance(value, dict) and isinstance(pre_value, dict):
        for k, v in value.items():
            if k not in pre_value:
                raise ConfigError(f"{where}: {path}.{k} is not a setting of pretrain/{pre_name}; remove it "
                                  f"(the architecture is inherited)")
            _same_as_pre(v, pre_value[k], f"{path}.{k}", where, pre_name)
        return
    if value != pre_value and not (isinstance(value, list) and list(pre_value or []) == value):
        raise ConfigError(f"{where}: {path} cannot differ from pretrain/{pre_name} ({pre_value!r} there, "
                          f"{value!r} here); a finetune may change only head (num_classes, pooling, dropout), "
                          f"data, train, checkpoint, logging and seed - remove the key")


# ----------------------------------------------------------------------------- finetune resolution
def deep_merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = deep_merge(base.get(k), v) if k in base else v
        return out
    return over


def resolve_finetune(ft_raw: Any, pre_dict: dict, where: str, pre_name: str, registry) -> ExperimentConfig:
    """Flatten a finetune config over its pretraining config (architecture from PRE)."""
    if ft_raw is None:
        ft_raw = {}
    if not isinstance(ft_raw, dict):
        raise ConfigError(f"{where}: expected a mapping of config sections")
    check_finetune_keys(ft_raw, where, pre_dict, pre_name)
    merged = copy.deepcopy(pre_dict)
    for key in FINETUNE_SECTIONS:
        if key in ft_raw and key != "head":
            merged[key] = deep_merge(pre_dict.get(key), ft_raw[key])
    merged["head"] = classification_head(ft_raw, where)
    cfg = structure(merged, ExperimentConfig, registry)
    check_consistency(cfg, "finetune", registry)
    return cfg


def classification_head(raw: dict, where: str) -> dict:
    """The finetune config's ``head`` section with ``type: classification`` as its default."""
    head = raw.get("head") or {}
    if not isinstance(head, dict):
        raise ConfigError(f"{where}: head must be a mapping (type, num_classes, pooling, dropout)")
    return {"type": "classification", **head}


def resolve_scratch(ft_raw: Any, where: str, name: str, registry) -> ExperimentConfig:
    """A finetune without pretraining: its own ``model`` and ``tokenizer`` sections, fresh weights."""
    if not isinstance(ft_raw, dict) or not isinstance(ft_raw.get("model"), dict):
        raise ConfigError(f"{where} has no model section, so finetune/{name} needs a pretraining experiment: "
                          f"pass -pretrain PRE, or recreate it with `effx init -exp {name} --finetune "
                          f"--no-pretrain --force` to train from scratch")
    check_finetune_keys(ft_raw, where, scratch=True)
    raw = copy.deepcopy(ft_raw)
    raw["head"] = classification_head(raw, where)
    cfg = structure(raw, ExperimentConfig, registry)
    check_consistency(cfg, "scratch", registry)
    return cfg
