"""``effx predict``: classify new texts from CSV, JSONL or plain text (one text per line).

Awkward input never crashes the run; each case is counted and reported:

* bytes that are not UTF-8 are decoded with U+FFFD replacement (``invalid_utf8`` = affected lines);
* empty texts keep their row (so output rows line up with input rows) with no label and ``note: empty``;
* texts longer than ``data.max_length`` tokens are truncated (``truncated`` = how many).

Output (by extension): ``.csv`` with ``row, text, label, label_name, prob_<name>..., note`` or
``.jsonl`` with ``{"row", "text", "label", "label_name", "probs": {name: p}, "note"}``.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import attrs
import pandas as pd

from ..errors import EffxError
from ..train.distributed import pick_device
from ..train.precision import inference_dtype
from ._io import write_text
from .inference import predict_proba

FORMATS = ("auto", "csv", "jsonl", "text")


@attrs.frozen
class PredictSummary:
    rows: int
    empty: int
    truncated: int
    invalid_utf8: int
    output: Path
    texts_per_s: float = float("nan")  # forward-pass throughput
    tokens_per_s: float = float("nan")  # real tokens only
    dtype: str = "fp32"

    def warnings(self) -> list[str]:
        out = []
        if self.invalid_utf8:
            out.append(f"{self.invalid_utf8} line(s) had bytes that are not UTF-8; they were replaced by U+FFFD")
        if self.empty:
            out.append(f"{self.empty} empty text(s) were not classified (note 'empty' in the output)")
        if self.truncated:
            out.append(f"{self.truncated} text(s) were longer than data.max_length and were truncated")
        return out


def decode(raw: bytes) -> tuple[str, int]:
    """UTF-8 text with invalid bytes replaced, and the number of lines that contained such bytes."""
    bad = 0
    for line in raw.split(b"\n"):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            bad += 1
    text = raw.decode("utf-8", errors="replace")
    return text.removeprefix("\ufeff"), bad


def input_format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    return {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(path.suffix.lower(), "text")


def _csv_texts(text: str, field: str, path: Path) -> list[str]:
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, sep=sep)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        first = str(exc).splitlines()[0]
        raise EffxError(f"{path}: not readable as CSV ({first}); check quoting and the header row") from None
    if field not in df.columns:
        raise EffxError(f"{path}: no column '{field}' (columns: {', '.join(map(str, df.columns))}); pass --text-field")
    return df[field].tolist()


def _jsonl_texts(text: str, field: str, path: Path) -> list[str]:
    out = []
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            out.append("")
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EffxError(f"{path} line {no}: invalid JSON ({exc.msg}); fix the line or use plain text input") from None
        if not isinstance(rec, dict) or field not in rec:
            raise EffxError(f"{path} line {no}: no field '{field}'; pass --text-field")
        out.append("" if rec[field] is None else str(rec[field]))
    return out


def read_texts(path: str | Path, fmt: str = "auto", text_field: str = "text") -> tuple[list[str], int]:
    """Texts in input order and the count of lines with invalid UTF-8."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise EffxError(f"cannot read --input {path}: {exc.strerror}") from None
    text, bad = decode(raw)
    kind = input_format(path, fmt)
    if kind == "csv":
        return _csv_texts(text, text_field, path), bad
    if kind == "jsonl":
        return _jsonl_texts(text, text_field, path), bad
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline does not start another text
    return [ln.removesuffix("\r") for ln in lines], bad


def _rows(texts: list[str], probs, keep: list[int], names: list[str]) -> list[dict[str, Any]]:
    rows = [{"row": i + 1, "text": t, "label": None, "label_name": None, "probs": None, "note": "empty"}
            for i, t in enumerate(texts)]
    for p, i in zip(probs, keep):
        label = int(p.argmax())
        rows[i].update(label=label, label_name=names[label], probs=dict(zip(names, map(float, p))), note="")
    return rows


def write_predictions(rows: list[dict[str, Any]], names: list[str], path: Path) -> Path:
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    flat = [{**{k: v for k, v in r.items() if k != "probs"},
             **{f"prob_{n}": (r["probs"] or {}).get(n) for n in names}} for r in rows]
    df = pd.DataFrame(flat, columns=["row", "text", "label", "label_name", *[f"prob_{n}" for n in names], "note"])
    df["label"] = df["label"].astype("Int64")
    return write_text(path, df.to_csv(index=False))


def predict_file(exp: str, input_path: str | Path, output_path: str | Path, ckpt: str = "best",
                 root: str | Path | None = None, fmt: str = "auto", text_field: str | None = None,
                 batch_size: int | None = None) -> PredictSummary:
    """Classify every text of ``input_path`` with experiment ``exp``; write ``output_path`` atomically."""
    from ..data import encode_with_stats
    from ..train import load_for_inference
    from .evaluate import finetune_dir

    inf = load_for_inference(finetune_dir(exp, root), ckpt=ckpt, owner=f"finetune/{exp}")
    cfg = inf.config
    texts, bad = read_texts(input_path, fmt, text_field or cfg.data.text_field)
    keep = [i for i, t in enumerate(texts) if t.strip()]
    ids, cut = encode_with_stats(inf.tokenizer, [texts[i] for i in keep], cfg.data.max_length) if keep else ([], 0)
    names = [str(n) for n in inf.label_names]
    device = pick_device(cfg.train.device)
    dtype = inference_dtype(cfg.train.dtype, device)  # bf16 for a bf16-trained model on bf16 hardware
    res = predict_proba(inf.model, ids, len(names), batch_size or cfg.train.eval_batch_size, device, dtype)
    out = write_predictions(_rows(texts, res.probs, keep, names), names, Path(output_path))
    return PredictSummary(len(texts), len(texts) - len(keep), cut, bad, out, res.texts_per_s, res.tokens_per_s,
                          res.dtype)
