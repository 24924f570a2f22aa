"""Checkpoints that can never execute code: plain data + tensors, loaded with ``weights_only=True``.

A checkpoint is a dict holding the model, optimizer, scheduler and loss-scaler state, the RNG
states of python / numpy / torch and of any private ``torch.Generator`` a plugin module keeps (one
entry per process), the data position (epoch, batch index
within the epoch, global step), the tokenizer as its JSON string, the config as a plain dict and
the library versions. Nothing is pickled as an object, so ``torch.load(weights_only=True)`` reads
it; a file crafted to run code when unpickled is refused before anything runs.

Every checkpoint records a content digest (sha256 over every tensor's bytes, dtype and shape and every
plain value, in order) under ``digest``; :func:`load` recomputes it, so a file whose bytes changed
after it was written (a bit flip on disk, a partial overwrite) is reported like a truncated one
instead of loading garbage weights.

Files in an experiment folder: ``ckpt_step{N}.pt`` (the last ``checkpoint.keep_last`` are kept),
``ckpt_last.pt`` and ``ckpt_best.pt`` (hard links to a step file, or copies where links are not
supported). Every file is written to a temporary name and renamed, so a crash never leaves a
half-written checkpoint under a real name; a truncated or corrupt file found later (e.g. a disk
full) is reported, and resume falls back to the previous good one. A writer killed mid-write leaves
its ``.ckpt_*.tmp`` file behind; :func:`remove_leftovers` deletes them when the next run starts.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import random
import re
import shutil
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_open, leftovers
from ..errors import EffxError

FORMAT = "effx-checkpoint/1"
_STEP_FILE = re.compile(r"^ckpt_step(\d+)\.pt$")


class CheckpointError(EffxError):
    """A checkpoint is missing, truncated, corrupt, or not an effx checkpoint.

    ``reason`` is one of ``missing``, ``corrupt`` (unreadable or its digest does not match), ``refused``
    (it holds Python objects that could run code) or ``foreign`` (not an effx checkpoint).
    """

    def __init__(self, message: str, reason: str = "corrupt") -> None:
        super().__init__(message)
        self.reason = reason


# ----------------------------------------------------------------------------- RNG
def module_generators(model: torch.nn.Module | None) -> dict[str, torch.Generator]:
    """Private ``torch.Generator`` attributes of the model's modules (e.g. an attention plugin that
    draws random rotations / features from its own generator), by ``module.attr`` name."""
    found: dict[str, torch.Generator] = {}
    for name, module in (model.named_modules() if model is not None else ()):
        for attr, value in vars(module).items():
            if isinstance(value, torch.Generator) and value.device.type == "cpu":
                found[f"{name}.{attr}" if name else attr] = value
    return found


def capture_rng(model: torch.nn.Module | None = None) -> dict:
    """RNG states of this process as plain data (lists, ints, tensors), including the private
    generators of ``model``'s modules."""
    version, state, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    out = {
        "python": [version, list(state), gauss],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    out["modules"] = {k: g.get_state() for k, g in module_generators(model).items()}
    return out


def restore_rng(state: dict, model: torch.nn.Module | None = None) -> None:
    version, values, gauss = state["python"]
    random.setstate((version, tuple(values), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    gens = module_generators(model)
    for key, value in state.get("modules", {}).items():
        if key in gens:
            gens[key].set_state(value)


# ----------------------------------------------------------------------------- save / load
def save(path: Path, payload: dict) -> None:
    """``torch.save`` (with the content digest) to a temporary file in the same folder, fsync, then
    rename over ``path``."""
    with atomic_open(path, "wb") as fh:
        try:
            torch.save({"format": FORMAT, **payload, "digest": content_digest(payload)}, fh)
        except RuntimeError as exc:  # torch reports a failed write (e.g. disk full) as a RuntimeError
            cause = exc.__context__
            if isinstance(cause, OSError):
                raise OSError(cause.errno, cause.strerror, str(path)) from None
            raise


def load(path: Path | str, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True`` and verify its digest; any problem is a one-line
    :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found", "missing")
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol notice is noise next to our verdict
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise CheckpointError(
                f"refused to load {path}: it contains Python objects that could run code when unpickled "
                f"(only tensors and plain data are allowed); it is not an effx checkpoint - do not trust it",
                "refused") from None
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({_short(exc)}); "
                              f"delete it or resume from an earlier one") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({_short(exc)}); "
                              f"delete it or resume from an earlier one") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an effx checkpoint (expected format {FORMAT!r}); "
                              f"point at a ckpt_*.pt file written by `effx pretrain` or `effx finetune`", "foreign")
    _verify(path, data)
    return data


def _verify(path: Path, data: dict) -> None:
    """Compare the recorded digest with the content (files written before digests existed have none)."""
    recorded = data.pop("digest", None)
    if recorded is None:
        return
    body = {k: v for k, v in data.items() if k != "format"}
    if content_digest(body) != recorded:
        raise CheckpointError(f"checkpoint {path} is corrupt (its content no longer matches the digest recorded "
                              f"when it was written: changed bytes on disk); delete it or resume from an earlier one")


def content_digest(payload: Any) -> str:
    """sha256 over a checkpoint payload: every tensor's dtype, shape and bytes, every plain value."""
    h = hashlib.sha256()
    _feed(h, payload)
    return h.hexdigest()


def _feed(h, x: Any) -> None:
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(x, dict):
        h.update(f"{{{len(x)}".encode())
        for k, v in x.items():
            _feed(h, k)
            _feed(h, v)
    elif isinstance(x, (list, tuple)):
        h.update(f"{type(x).__name__}{len(x)}".encode())
        for v in x:
            _feed(h, v)
    else:
        h.update(repr((type(x).__name__, x)).encode())


def _short(exc: BaseException) -> str:
    """The first sentence of the loader's message (PyTorch's miniz errors run on for lines)."""
    text = str(exc).strip().splitlines()
    first = text[0].split(". ")[0].rstrip(".") if text else ""
    return first[:160] or type(exc).__name__


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------- folder layout
def step_path(exp_dir: Path, step: int) -> Path:
    return Path(exp_dir) / f"ckpt_step{step}.pt"


def step_files(exp_dir: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every ``ckpt_step{N}.pt``, newest first."""
    out = []
    for p in Path(exp_dir).glob("ckpt_step*.pt"):
        m = _STEP_FILE.match(p.name)
        if m:
            out.append((int(m.group(1)), p))
    return sorted(out, reverse=True)


def link_as(src: Path, dst: Path) -> None:
    """Make ``dst`` name the same bytes as ``src`` (hard link, else copy), atomically."""
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def prune(exp_dir: Path, keep_last: int) -> list[Path]:
    """Delete the oldest step checkpoints beyond ``keep_last`` (ckpt_best/last stay valid: own links)."""
    removed = []
    for _, p in step_files(exp_dir)[max(keep_last, 1):]:
        p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def remove_leftovers(exp_dir: Path) -> list[Path]:
    """Delete the temporary ``.ckpt_*.tmp`` files of writers killed mid-write (call with the
    experiment lock held, so no live writer owns them)."""
    removed = leftovers(exp_dir, ("ckpt_",))
    for p in removed:
        p.unlink(missing_ok=True)
    return removed


def resume_candidates(exp_dir: Path) -> list[Path]:
    """Files to try when resuming, best first: ckpt_last, step files newest first, then ckpt_best."""
    exp_dir = Path(exp_dir)
    names = [exp_dir / "ckpt_last.pt"] + [p for _, p in step_files(exp_dir)] + [exp_dir / "ckpt_best.pt"]
    return [p for p in names if p.is_file()]


def resolve_choice(exp_dir: Path, choice: str) -> Path:
    """``best`` / ``last`` / a path -> the checkpoint file (clear error if missing)."""
    exp_dir = Path(exp_dir)
    if choice in ("best", "last"):
        path = exp_dir / f"ckpt_{choice}.pt"
        if not path.is_file():
            have = sorted(p.name for p in exp_dir.glob("ckpt_*.pt")) or ["none"]
            raise CheckpointError(f"{path} not found (checkpoints in {exp_dir}: {', '.join(have)}); "
                                  f"run the experiment first or pass -ckpt last|PATH", "missing")
        return path
    path = Path(choice).expanduser()
    if not path.is_absolute() and not path.exists():
        path = exp_dir / choice
    if not path.is_file():
        raise CheckpointError(f"checkpoint {choice} not found; pass -ckpt best, last or an existing .pt file",
                              "missing")
    return path

