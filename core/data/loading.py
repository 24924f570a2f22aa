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
from .leaks import check_overlap, check_sample_mix, keys, overlap_warnings
from .sources import Source, split_sources

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
    overlap: dict = attrs.Factory(dict)  # split -> rows whose text also occurs in train (below the error limit)

    @property
    def warnings(self) -> list[str]:
        sizes = {"validation": len(self.validation), "test": len(self.test) if self.test is not None else 0}
        return overlap_warnings(self.overlap, sizes)

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
    check_sample_mix(cfg)
    raw = _read_raw(cfg, cache_dir)
    cols = {name: _concat([_columns(ds, src, cfg, need_labels) for src, ds in parts]) for name, parts in raw.items()}
    names = None
    if need_labels:
        src, first = raw["train"][0]
        cols, names = _map_labels(cols, cfg, first.features.get(src.label_field), label_names)
    out = {name: _to_dataset(c) for name, c in cols.items()}
    if "validation" not in out:
        out["train"], out["validation"] = _carve(out["train"], cfg.validation_fraction, seed)
    out["train"] = _subsample(out["train"], cfg.max_train_samples, seed, "data.max_train_samples")
    for name in ("validation", "test"):
        if name in out:
            out[name] = _subsample(out[name], cfg.max_eval_samples, seed + 1, "data.max_eval_samples")
    scored = ("validation", "test") if need_labels else ("validation",)  # pretraining never scores test
    others = {k: out[k]["text"] for k in scored if k in out}
    overlap = check_overlap(out["train"]["text"], others, cfg.max_overlap_fraction)
    return Splits(out["train"], out["validation"], out.get("test"), names, overlap)


# ----------------------------------------------------------------------------- reading
def _check_cfg(cfg: DataConfig) -> None:
    if cfg.train is None and cfg.hub_name is None:
        raise EffxError(f"no training data configured: {_LOCAL_HINT}, or set data.hub_name when online")
    if cfg.train is not None and cfg.hub_name is not None:
        raise EffxError("both data.train and data.hub_name are set; keep one of them (local files or a hub name)")


def _read_raw(cfg: DataConfig, cache_dir: Optional[str]) -> dict[str, list[tuple[Source, datasets.Dataset]]]:
    """Every split's files, each with the :class:`Source` saying which fields to read from it."""
    if cfg.hub_name is not None:
        return {name: [(Source(f"data.hub_name '{cfg.hub_name}' split {name}", cfg.hub_name, "hub", None,
                               cfg.label_field), ds)]
                for name, ds in _read_hub(cfg.hub_name, cfg, cache_dir).items()}
    out = {}
    for name in SPLITS:
        sources = split_sources(getattr(cfg, name), name, cfg)
        if sources:
            out[name] = [(src, read_file(src.path, src.fmt, src.key, cache_dir)) for src in sources]
    return out


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
def _columns(ds: datasets.Dataset, src: Source, cfg: DataConfig, need_labels: bool) -> dict[str, list]:
    """``{'text': [...], 'label': [...], 'label_name': [...]}`` of one file (labels still raw)."""
    names = ds.column_names
    plain = src.fmt != "hub" and file_format(src.path, src.fmt, src.key) == "text"
    text_field = src.text_field or ("text" if plain else cfg.text_field)  # a plain text file has one column
    _require(names, text_field, "text_field", src)
    texts = _column(ds, text_field)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise EffxError(f"{src.key}{_where(src)}: column '{text_field}' has {len(bad)} rows that are not text "
                        f"(first at row {bad[0]}: {texts[bad[0]]!r}); remove them or fix the column")
    none = [None] * len(texts)
    if src.label_field not in names:
        if need_labels:
            _require(names, src.label_field, "label_field", src)
        return {"text": texts, "label": [-1] * len(texts), "label_name": none}
    labels = _column(ds, src.label_field)
    if not need_labels and not all(type(v) is int for v in labels):
        labels = [-1] * len(texts)  # labels are optional here: only integer ids (-1 = unlabelled) are kept
    keep_names = "label_name" in names and src.label_field != "label_name"
    return {"text": texts, "label": labels, "label_name": _column(ds, "label_name") if keep_names else none}


def _concat(parts: list[dict[str, list]]) -> dict[str, list]:
    """The columns of a split's files, one after the other."""
    return {k: [v for p in parts for v in p[k]] for k in parts[0]}


def _column(ds: datasets.Dataset, name: str) -> list:
    return ds.select_columns([name]).to_dict()[name]


def _where(src: Source) -> str:
    """`` (name.csv)`` for an entry of a list of files (a single file is named by its key)."""
    return f" ({Path(src.path).name})" if "[" in src.key else ""


def _require(names: list[str], field: str, what: str, src: Source) -> None:
    if field not in names:
        entry = f" (or {what} of that entry)" if "[" in src.key else ""
        raise EffxError(f"{src.key}{_where(src)}: column '{field}' not found (available: {', '.join(names)}); "
                        f"set data.{what}{entry} to one of them")


def _map_labels(cols: dict[str, dict], cfg: DataConfig, feature: Any,
                given: Optional[list[str]]) -> tuple[dict[str, dict], list[str]]:
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
                if i < len(names) and n is not None:
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
    """Hold out ``fraction`` of train (seeded, numpy) as validation; both keep the file's row order.

    Rows repeating the text of a held-out row are held out too, so no validation text is trained on."""
    if not 0.0 < fraction < 1.0:
        raise EffxError(f"data.validation_fraction must be between 0 and 1 (exclusive), got {fraction}; "
                        f"or set data.validation to a file")
    n = len(train)
    n_val = max(1, int(round(fraction * n)))
    if n_val >= n:
        raise EffxError(f"data.train has only {n} rows: too few to hold out a validation fraction of "
                        f"{fraction}; add rows or set data.validation to a file")
    perm = np.random.default_rng([seed & 0xFFFFFFFF, 1]).permutation(n)
    in_val = np.zeros(n, dtype=bool)
    in_val[perm[:n_val]] = True
    hashes = keys(train["text"])
    held = {hashes[i] for i in np.flatnonzero(in_val)}
    in_val |= np.array([h in held for h in hashes])  # duplicates of a held-out text are held out with it
    if in_val.all():
        raise EffxError(f"data.train has only {n} distinct texts: too few to hold out a validation fraction of "
                        f"{fraction}; add rows or set data.validation to a file")
    return train.select(np.flatnonzero(~in_val)), train.select(np.flatnonzero(in_val))


def _subsample(ds: datasets.Dataset, n: Optional[int], seed: int, key: str) -> datasets.Dataset:
    """A seeded random subset of ``n`` rows in file order (not the first n: files may be sorted by label)."""
    if n is None or n >= len(ds):
        return ds
    if n <= 0:
        raise EffxError(f"{key} must be a positive number of rows, got {n}")
    rows = np.random.default_rng([seed & 0xFFFFFFFF, 2]).choice(len(ds), size=n, replace=False)
    return ds.select(np.sort(rows))
