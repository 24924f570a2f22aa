"""Read train / validation / test records into HF ``datasets`` with two columns: ``text`` and ``label``.

Local files (csv, json, jsonl, parquet, plain text) are read by the HF ``datasets`` packaged builders;
the format comes from the file extension unless ``data.format`` says otherwise. A plain-text file
holds one record per line (blank lines skipped) in a column named ``text``, without labels. A hub
dataset name (``data.hub_name``) is for online users only: offline it fails at once with a message
saying how to point ``data.train`` / ``data.validation`` / ``data.test`` at local files.

With ``need_labels=False`` (MLM pretraining) labels are optional: an integer label column is kept
(-1 = unlabelled), anything else gives -1 everywhere.

Labels: string labels become ids in sorted order (stable across runs), the names returned as
``label_names``; integer labels keep their ids, named from a ``label_name`` column when there is one.
Every user mistake (missing file or column, non-UTF-8 bytes, empty split) is a one-line EffxError.
"""
from __future__ import annotations

import contextlib
import os
import socket
import threading
from pathlib import Path
from typing import Any, Optional

import attrs
import datasets
import numpy as np

from ..config import DataConfig
from ..errors import EffxError

BUILDERS = {"csv": "csv", "json": "json", "jsonl": "json", "parquet": "parquet", "text": "text"}
EXTENSIONS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "jsonl", ".parquet": "parquet",
              ".pq": "parquet", ".txt": "text", ".text": "text"}
SPLITS = ("train", "validation", "test")
FEATURES = datasets.Features({"text": datasets.Value("string"), "label": datasets.Value("int64")})
_LOCAL_HINT = ("set data.train (and optionally data.validation / data.test) to local "
               "csv/json/jsonl/parquet/txt files, e.g. data/sample/agnews_train.csv, and remove data.hub_name")


@attrs.frozen
class Splits:
    """The three splits (``test`` may be missing) and the name of every label id (None if unlabelled)."""

    train: datasets.Dataset
    validation: datasets.Dataset
    test: Optional[datasets.Dataset]
    label_names: Optional[list[str]]

    @property
    def num_classes(self) -> int:
        return len(self.label_names or [])


def load_splits(cfg: DataConfig, seed: int, need_labels: bool = True, label_names: Optional[list[str]] = None,
                cache_dir: Optional[str] = None) -> Splits:
    """Load, normalise and sub-sample the splits described by ``cfg``.

    ``label_names`` (a mapping saved by an earlier run) fixes the string-label ids instead of deriving
    them from the training file. ``cache_dir`` is where ``datasets`` keeps its Arrow cache.
    """
    _check_cfg(cfg)
    raw = _read_raw(cfg, cache_dir)
    cols = {name: _columns(ds, cfg, name, need_labels) for name, ds in raw.items()}
    names = None
    if need_labels:
        cols, names = _map_labels(cols, cfg, raw["train"], label_names)
    out = {name: _to_dataset(c) for name, c in cols.items()}
    if "validation" not in out:
        out["train"], out["validation"] = _carve(out["train"], cfg.validation_fraction, seed)
    out["train"] = _subsample(out["train"], cfg.max_train_samples, seed, "data.max_train_samples")
    for name in ("validation", "test"):
        if name in out:
            out[name] = _subsample(out[name], cfg.max_eval_samples, seed + 1, "data.max_eval_samples")
    return Splits(out["train"], out["validation"], out.get("test"), names)


# ----------------------------------------------------------------------------- reading
def _check_cfg(cfg: DataConfig) -> None:
    if cfg.train is None and cfg.hub_name is None:
        raise EffxError(f"no training data configured: {_LOCAL_HINT}, or set data.hub_name when online")
    if cfg.train is not None and cfg.hub_name is not None:
        raise EffxError("both data.train and data.hub_name are set; keep one of them (local files or a hub name)")


def _read_raw(cfg: DataConfig, cache_dir: Optional[str]) -> dict[str, datasets.Dataset]:
    if cfg.hub_name is not None:
        return _read_hub(cfg.hub_name, cfg, cache_dir)
    paths = {name: getattr(cfg, name) for name in SPLITS if getattr(cfg, name) is not None}
    return {name: read_file(path, cfg.format, f"data.{name}", cache_dir) for name, path in paths.items()}


def file_format(path: str | Path, fmt: str = "auto", key: str = "data.train") -> str:
    """The builder format of ``path``: ``fmt`` unless it is ``auto``, else from the extension."""
    if fmt != "auto":
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in EXTENSIONS:
        known = ", ".join(sorted(EXTENSIONS))
        raise EffxError(f"{key}: cannot tell the format of {path} from its extension ({suffix or 'none'}); "
                        f"use one of {known} or set data.format")
    return EXTENSIONS[suffix]


def read_file(path: str | Path, fmt: str = "auto", key: str = "data.train",
              cache_dir: Optional[str] = None) -> datasets.Dataset:
    """Read one local file into a Dataset with its own columns (``text`` only for plain text)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise EffxError(f"{key}: file {path} not found; fix the path (relative data paths are "
                        f"resolved against the experiments root: --root, else $EFFX_ROOT, else the current directory)")
    fmt = file_format(path, fmt, key)
    if path.stat().st_size == 0:
        raise EffxError(_no_records(key, path))
    if fmt != "parquet":
        check_utf8(path, key)
    kwargs: dict[str, Any] = {"sep": "\t"} if fmt == "csv" and path.suffix.lower() == ".tsv" else {}
    with _quiet():
        try:
            ds = datasets.load_dataset(BUILDERS[fmt], data_files={"train": str(path.resolve())}, split="train",
                                       cache_dir=cache_dir, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any reader failure is a malformed user file
            if "corresponds to no data" in str(exc):  # the builder's way of saying: zero rows
                raise EffxError(_no_records(key, path)) from None
            raise EffxError(f"{key}: could not read {path} as {fmt} ({_first_line(exc)}); "
                            f"check the file or set data.format") from None
        if fmt == "text":  # one record per line; blank lines are not records
            ds = ds.filter(lambda row: bool(row["text"].strip()), keep_in_memory=True)
    if len(ds) == 0:
        raise EffxError(_no_records(key, path))
    return ds


def _no_records(key: str, path: Path) -> str:
    return f"{key}: {path} has no records; give a file with at least one row"


@contextlib.contextmanager
def _quiet():
    """Hide the ``datasets`` progress bars while reading (the trainer has its own progress bar)."""
    was = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was:
            datasets.enable_progress_bars()


def check_utf8(path: Path, key: str, chunk: int = 1 << 20) -> None:
    """Raise a one-line EffxError naming the line of the first byte sequence that is not UTF-8."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                bad = block[exc.start:exc.start + 1]
                line += block[:exc.start].count(b"\n")
                raise EffxError(f"{key}: {path} is not UTF-8 text (byte 0x{bad.hex()} on line {line}); "
                                f"re-save the file as UTF-8") from None
            if not block:
                return
            line += block.count(b"\n")


def _first_line(exc: BaseException) -> str:
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# ----------------------------------------------------------------------------- hub
def offline_reason() -> Optional[str]:
    """Why the hub cannot be reached (an env switch or no network), or None when it can."""
    for var in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"{var}={os.environ[var]}"
    if not _reachable("huggingface.co", 443, timeout=3.0):
        return "huggingface.co cannot be reached"
    return None


def _reachable(host: str, port: int, timeout: float) -> bool:
    """Open a TCP connection within ``timeout`` seconds in all (a thread bounds a hanging DNS lookup too)."""
    ok: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            ok.append(True)
        except OSError:
            ok.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(ok and ok[0])


def _read_hub(name: str, cfg: DataConfig, cache_dir: Optional[str]) -> dict[str, datasets.Dataset]:
    reason = offline_reason()
    if reason is not None:
        raise EffxError(f"data.hub_name '{name}' needs the Hugging Face Hub but this machine is offline "
                        f"({reason}); {_LOCAL_HINT}")
    try:
        dd = datasets.load_dataset(name, cache_dir=cache_dir)
    except Exception as exc:  # noqa: BLE001 - unknown name, no access, network failure
        raise EffxError(f"data.hub_name '{name}' could not be loaded ({_first_line(exc)}); "
                        f"check the name or {_LOCAL_HINT}") from None
    if "train" not in dd:
        raise EffxError(f"data.hub_name '{name}' has no 'train' split (it has: {', '.join(dd)}); {_LOCAL_HINT}")
    return {s: dd[s] for s in SPLITS if s in dd}


# ----------------------------------------------------------------------------- columns and labels
def _columns(ds: datasets.Dataset, cfg: DataConfig, split: str, need_labels: bool) -> dict[str, list]:
    """``{'text': [...], 'label': [...] }`` with the user's field names resolved (labels still raw)."""
    names = ds.column_names
    text_field = cfg.text_field
    _require(names, text_field, "data.text_field", split)
    texts = _column(ds, text_field)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise EffxError(f"data.{split}: column '{text_field}' has {len(bad)} rows that are not text "
                        f"(first at row {bad[0]}: {texts[bad[0]]!r}); remove them or fix the column")
    if cfg.label_field not in names:
        if need_labels:
            _require(names, cfg.label_field, "data.label_field", split)
        return {"text": texts, "label": [-1] * len(texts)}
    labels = _column(ds, cfg.label_field)
    if not need_labels and not all(type(v) is int for v in labels):
        labels = [-1] * len(texts)  # labels are optional here: only integer ids (-1 = unlabelled) are kept
    out = {"text": texts, "label": labels}
    if "label_name" in names and cfg.label_field != "label_name":
        out["label_name"] = _column(ds, "label_name")
    return out


def _column(ds: datasets.Dataset, name: str) -> list:
    return ds.select_columns([name]).to_dict()[name]


def _require(names: list[str], field: str, key: str, split: str) -> None:
    if field not in names:
        raise EffxError(f"data.{split}: column '{field}' not found (available: {', '.join(names)}); "
                        f"set {key} to one of them")


def _map_labels(cols: dict[str, dict], cfg: DataConfig, train_raw: datasets.Dataset,
                given: Optional[list[str]]) -> tuple[dict[str, dict], list[str]]:
    feature = train_raw.features.get(cfg.label_field)
    if given is None and isinstance(feature, datasets.ClassLabel):
        given = list(feature.names)
    for split, c in cols.items():
        missing = [i for i, v in enumerate(c["label"]) if v is None or (isinstance(v, float) and v != v)]
        if missing:
            raise EffxError(f"data.{split}: {len(missing)} rows have no '{cfg.label_field}' value (first at row "
                            f"{missing[0]}); fill them in or drop those rows")
    kinds = {type(v) for c in cols.values() for v in c["label"]}
    if kinds <= {int}:
        return _int_labels(cols, given)
    if kinds <= {str}:
        return _str_labels(cols, given)
    shown = ", ".join(sorted(k.__name__ for k in kinds))
    raise EffxError(f"data: column '{cfg.label_field}' must hold integer ids or strings in every split, "
                    f"found {shown}; clean the label column or set data.label_field")


def _str_labels(cols: dict[str, dict], given: Optional[list[str]]) -> tuple[dict[str, dict], list[str]]:
    names = list(given) if given is not None else sorted(set(cols["train"]["label"]))
    ids = {n: i for i, n in enumerate(names)}
    for split, c in cols.items():
        unknown = sorted(set(c["label"]) - ids.keys())
        if unknown:
            raise EffxError(f"data.{split}: labels {unknown[:5]} are not among the known labels {names}; "
                            f"fix the labels or add those rows to the training file")
        c["label"] = [ids[v] for v in c["label"]]
    return cols, names


def _int_labels(cols: dict[str, dict], given: Optional[list[str]]) -> tuple[dict[str, dict], list[str]]:
    for split, c in cols.items():
        neg = [v for v in c["label"] if v < 0]
        if neg:
            raise EffxError(f"data.{split}: {len(neg)} rows have a negative label ({neg[0]}), i.e. unlabelled; "
                            f"drop them for classification")
    if given is not None:
        names = list(given)
    else:  # the classes are those of the training split; other splits may not add any
        names = [str(i) for i in range(max(cols["train"]["label"]) + 1)]
        for c in cols.values():
            for i, n in zip(c["label"], c.get("label_name", [])):
                if i < len(names):
                    names[i] = str(n)
    for split, c in cols.items():
        extra = sorted({v for v in c["label"] if v >= len(names)})
        if extra:
            rows = sum(v >= len(names) for v in c["label"])
            known = "the model was trained with" if given is not None else "the training split has"
            raise EffxError(f"data.{split}: {rows} row(s) have label id(s) {extra[:5]} outside the {len(names)} "
                            f"classes {known} (ids 0-{len(names) - 1}); fix or drop those rows in data.{split}")
    return cols, names


def _to_dataset(c: dict[str, list]) -> datasets.Dataset:
    labels = [int(v) for v in c["label"]]
    return datasets.Dataset.from_dict({"text": c["text"], "label": labels}, features=FEATURES)


# ----------------------------------------------------------------------------- splitting
def _carve(train: datasets.Dataset, fraction: float, seed: int) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Hold out ``fraction`` of train (seeded, numpy) as validation; both keep the file's row order."""
    if not 0.0 < fraction < 1.0:
        raise EffxError(f"data.validation_fraction must be between 0 and 1 (exclusive), got {fraction}; "
                        f"or set data.validation to a file")
    n = len(train)
    n_val = max(1, int(round(fraction * n)))
    if n_val >= n:
        raise EffxError(f"data.train has only {n} rows: too few to hold out a validation fraction of "
                        f"{fraction}; add rows or set data.validation to a file")
    perm = np.random.default_rng([seed & 0xFFFFFFFF, 1]).permutation(n)
    val = np.sort(perm[:n_val])
    rest = np.sort(perm[n_val:])
    return train.select(rest), train.select(val)


def _subsample(ds: datasets.Dataset, n: Optional[int], seed: int, key: str) -> datasets.Dataset:
    """A seeded random subset of ``n`` rows in file order (not the first n: files may be sorted by label)."""
    if n is None or n >= len(ds):
        return ds
    if n <= 0:
        raise EffxError(f"{key} must be a positive number of rows, got {n}")
    rows = np.random.default_rng([seed & 0xFFFFFFFF, 2]).choice(len(ds), size=n, replace=False)
    return ds.select(np.sort(rows))
