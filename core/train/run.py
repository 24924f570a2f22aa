"""``effx pretrain`` / ``effx finetune``: one function each, from experiment name to finished run.

A :class:`Session` prepares everything a :class:`~effx.train.loop.Trainer` needs (config, data,
tokenizer, model, output files, W&B), restores a checkpoint on ``resume``, runs the loop and marks
the outcome in ``status.json`` and ``events.jsonl``: ``finished``; ``failed`` with the cause (NaN/Inf
loss or gradient, out of memory, any other error); or ``interrupted`` (SIGINT/SIGTERM: a checkpoint
is written first).
"""
from __future__ import annotations

import io
import random
import shutil
import signal
import threading
from pathlib import Path

import attrs
import numpy as np
import torch

from ..config import ExperimentConfig, dump_yaml, load_experiment, load_yaml, to_dict
from ..data import EncodedDataset, encode_with_stats, load_splits, tokenizer_from_str, tokenizer_to_str
from ..data import load_tokenizer, train_tokenizer, unk_rate
from ..errors import ConfigError
from ..plugins import load_registry
from ..sysinfo import run_info
from . import checkpoint as ckpt
from .distributed import Dist
from .experiment import check_consistency, resolve_finetune
from .loop import Interrupted, Trainer, TrainingFailed
from .paths import require_experiment, resolve_data_path, resolve_root
from .precision import Precision, check_fp16
from .runfiles import RunFiles, atomic_write_bytes, atomic_write_text, read_status, write_json
from .task import make_task
from .wandb_log import WandbLogger
from .weights import load_encoder, load_head

RUN_ARTEFACTS = ("metrics.csv", "events.jsonl", "status.json", "run_info.json", "head.pt", "wandb_run_id.txt",
                 "resolved_config.yaml")


@attrs.frozen
class RunResult:
    exp_dir: Path
    status: str
    step: int
    validation: dict
    best_checkpoint: Path | None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------- entry points
def run_pretrain(name: str, root=None, resume: bool = False, overwrite: bool = False) -> RunResult:
    registry = load_registry()
    exp = require_experiment("pretrain", name, root)
    cfg = load_experiment(exp / "config.yaml", registry)
    check_consistency(cfg, "pretrain", registry)
    return Session("pretrain", exp, cfg, registry, resolve_root(root)).run(resume, overwrite)


def run_finetune(name: str, pretrain: str, ckpt_choice: str = "best", root=None, resume: bool = False,
                 overwrite: bool = False) -> RunResult:
    registry = load_registry()
    exp = require_experiment("finetune", name, root)
    pre = require_experiment("pretrain", pretrain, root)
    pre_dict = to_dict(load_experiment(pre / "config.yaml", registry), registry)
    cfg = resolve_finetune(load_yaml(exp / "config.yaml"), pre_dict, str(exp / "config.yaml"), pretrain, registry)
    session = Session("finetune", exp, cfg, registry, resolve_root(root))
    session.pretrain = (pretrain, pre, ckpt_choice, pre_dict)
    return session.run(resume, overwrite)


# ----------------------------------------------------------------------------- session
class Session:
    """Everything about one run of one experiment folder."""

    def __init__(self, kind: str, exp: Path, cfg: ExperimentConfig, registry, root: Path) -> None:
        self.kind, self.exp, self.cfg, self.registry, self.root = kind, exp, cfg, registry, root
        self.pretrain: tuple | None = None
        self.pre_ref: dict | None = None
        self.notes: list[tuple[str, str, dict]] = []  # (level, message, event fields) before files open
        self._stop = threading.Event()
        self._marked = False

    # ------------------------------------------------------------------ run
    def run(self, resume: bool, overwrite: bool) -> RunResult:
        self.dist = Dist(self.cfg.train.device)
        try:
            return self._run(resume, overwrite)
        finally:
            self.dist.close()

    def _run(self, resume: bool, overwrite: bool) -> RunResult:
        check_fp16(self.cfg.train.dtype, self.dist.device.type)  # before any file is written
        payload = self._resume_payload() if resume else self._fresh_start(overwrite)
        if payload is not None:
            self._check_resume_config(payload)
        seed_everything(self.cfg.seed)
        tok, source_state = self._tokenizer_and_weights(payload)
        train_ds, val_ds, label_names, unk = self._data(tok, payload)
        model = self._model(source_state)
        files = RunFiles(self.exp, enabled=self.dist.main)
        files.open(payload["position"]["step"] if payload else None)
        self.files = files
        try:
            return self._train(payload, self.tokenizer, model, train_ds, val_ds, label_names, unk)
        except BaseException as exc:
            if not self._marked:
                self._mark("failed", payload["position"]["step"] if payload else 0, 0,
                           f"{type(exc).__name__}: {str(exc)[:300]}")
            raise
        finally:
            files.close()

    def _train(self, payload, tok, model, train_ds, val_ds, label_names, unk) -> RunResult:
        files, cfg = self.files, self.cfg
        precision = Precision(cfg.train.dtype, self.dist.device)
        self._write_start_files(payload, tok, model, label_names, unk, precision)
        seed_everything(cfg.seed + 7919 * self.dist.rank)  # dropout streams differ per process
        extra = {"tokenizer": tokenizer_to_str(tok), "config": to_dict(cfg, self.registry),
                 "label_names": label_names, "pretrain": self.pre_ref}
        wb = WandbLogger(cfg.logging.wandb, self.exp, f"{self.kind}/{self.exp.name}", self._resolved_dict(),
                         self.dist.main, group=self.kind)
        trainer = Trainer(kind=self.kind, cfg=cfg, model=model, task=make_task(self.kind, tok.get_vocab_size(), cfg,
                          cfg.seed), train_ds=train_ds, val_ds=val_ds, files=files, wandb=wb, dist=self.dist,
                          precision=precision, registry=self.registry, payload_extra=extra,
                          stop_requested=self._stop.is_set)
        if payload is not None:
            trainer.restore(payload)
        wb.summary({"unk_rate_validation": unk})
        code = 1
        try:
            with _signals(self._on_signal):
                val = self._fit(trainer)
            result = self._finish(trainer, val, wb)
            code = 0
        finally:
            wb.finish(exit_code=code)
        return result

    def _fit(self, trainer: Trainer) -> dict:
        step = lambda: trainer.pos.step  # noqa: E731
        try:
            return trainer.fit()
        except Interrupted as exc:
            self._mark("interrupted", step(), trainer.pos.epoch, str(exc))
            raise
        except KeyboardInterrupt:
            self._mark("interrupted", step(), trainer.pos.epoch, "second interrupt: stopped without a checkpoint")
            raise Interrupted(f"interrupted at step {step()} without a checkpoint") from None
        except TrainingFailed as exc:
            self._mark("failed", step(), trainer.pos.epoch, str(exc))
            raise
        except (torch.OutOfMemoryError, MemoryError) as exc:
            cause = (f"out of memory at step {step() + 1} ({(str(exc) or type(exc).__name__).splitlines()[0][:120]}); lower "
                     f"train.batch_size or data.max_length, or set model.gradient_checkpointing: true")
            self._mark("failed", step(), trainer.pos.epoch, cause)
            raise TrainingFailed(cause) from None
        except BaseException as exc:
            self._mark("failed", step(), trainer.pos.epoch, f"{type(exc).__name__}: {str(exc)[:300]}")
            raise

    def _mark(self, status: str, step: int, epoch: int, cause: str) -> None:
        self._marked = True
        self.files.status(status, step, epoch, cause)
        self.files.event(status, step, cause=cause)
        (self.files.warning if status == "interrupted" else self.files.log.error)(f"{status}: {cause}")

    def _on_signal(self, signum: int) -> None:
        if self._stop.is_set():
            raise KeyboardInterrupt
        self._stop.set()

    def _finish(self, trainer: Trainer, val: dict, wb: WandbLogger) -> RunResult:
        step, files = trainer.pos.step, self.files
        best = self.exp / "ckpt_best.pt"
        if self.dist.main:
            name = f"{self.kind}-{self.exp.name}"
            wb.artifact(best, f"{name}-best", "checkpoint", {"best_val_loss": trainer.best_val})
            if self.kind == "finetune":
                _save_plain(self.exp / "head.pt", trainer.model.head.state_dict())
                wb.artifact(self.exp / "head.pt", f"{name}-head", "head-weights", {"step": step})
            wb.summary({f"final/{k}": v for k, v in val.items() if v is not None})
            files.status("finished", step, trainer.pos.epoch)
            files.event("finished", step, validation=val, best_val_loss=trainer.best_val)
            files.info(f"finished at step {step}; best validation loss {trainer.best_val}")
        return RunResult(self.exp, "finished", step, val, best if best.exists() else None)

    # ------------------------------------------------------------------ preparation
    def _fresh_start(self, overwrite: bool) -> None:
        """Refuse to overwrite checkpoints unless asked; files of a run without checkpoints are replaced."""
        if list(self.exp.glob("ckpt_*.pt")) and not overwrite:
            status = (read_status(self.exp) or {}).get("status", "unknown")
            raise ConfigError(f"{self.kind}/{self.exp.name} already has a run (status: {status}); continue it "
                              f"with -resume or start over with --overwrite")
        if self.dist.main:
            for p in list(self.exp.glob("ckpt_*.pt")) + [self.exp / n for n in RUN_ARTEFACTS]:
                p.unlink(missing_ok=True)
            shutil.rmtree(self.exp / "logs", ignore_errors=True)
            shutil.rmtree(self.exp / "wandb", ignore_errors=True)
        self.dist.barrier()
        return None

    def _resume_payload(self) -> dict:
        candidates = ckpt.resume_candidates(self.exp)
        if not candidates:
            raise ConfigError(f"nothing to resume: no checkpoint in {self.exp}; run without -resume")
        for path in candidates:
            try:
                payload = ckpt.load(path)
            except ckpt.CheckpointError as exc:
                self.notes.append(("warning", f"{exc}; trying an earlier checkpoint",
                                   {"event": "checkpoint_unusable", "path": path.name}))
                continue
            self.notes.append(("info", f"resuming from {path.name} (step {payload['position']['step']})",
                               {"event": "resume", "path": path.name}))
            self.pre_ref = payload.get("pretrain")
            return payload
        raise ckpt.CheckpointError(f"no usable checkpoint in {self.exp} (all {len(candidates)} are corrupt: "
                                   f"{', '.join(p.name for p in candidates)}); start over with --overwrite")

    def _check_resume_config(self, payload: dict) -> None:
        old = payload["config"]
        new = to_dict(self.cfg, self.registry)
        for key in ("model", "tokenizer", "mlm", "head"):
            if old.get(key) != new.get(key):
                raise ConfigError(f"{self.exp / 'config.yaml'}: section '{key}' changed since the checkpoint was "
                                  f"written; the architecture cannot change on resume - restore it or start a new "
                                  f"experiment")
        changed = sorted(k for k in new if old.get(k) != new.get(k))
        if changed:
            self.notes.append(("warning", f"config sections changed since the checkpoint: {', '.join(changed)}",
                               {"event": "config_changed", "sections": changed}))
        if self.kind == "finetune" and self.pre_ref and self.pre_ref.get("name") != self.pretrain[0]:
            raise ConfigError(f"finetune/{self.exp.name} was started from pretrain/{self.pre_ref.get('name')}, "
                              f"not {self.pretrain[0]}; pass -pretrain {self.pre_ref.get('name')}")

    def _tokenizer_and_weights(self, payload: dict | None):
        """The tokenizer (from the checkpoint when resuming / finetuning) and, for a fresh finetune,
        the pretraining weights to start from."""
        if payload is not None:
            return tokenizer_from_str(payload["tokenizer"], "checkpoint tokenizer"), None
        if self.kind == "finetune":
            name, pre_dir, choice, _ = self.pretrain
            path = ckpt.resolve_choice(pre_dir, choice)
            pre_payload = ckpt.load(path)
            self._check_source_arch(pre_payload, path)
            self.pre_ref = {"name": name, "path": str(pre_dir), "checkpoint": str(path), "sha256": ckpt.sha256(path),
                            "step": pre_payload["position"]["step"]}
            return tokenizer_from_str(pre_payload["tokenizer"], f"tokenizer in {path}"), (pre_payload["model"], path)
        if self.cfg.tokenizer.path:
            return load_tokenizer(resolve_data_path(self.cfg.tokenizer.path, self.root)), None
        return None, None  # trained on the training split once it is loaded

    def _check_source_arch(self, pre_payload: dict, path: Path) -> None:
        have = pre_payload.get("config", {}).get("model")
        want = to_dict(self.cfg, self.registry)["model"]
        if have != want:
            diff = sorted(k for k in want if (have or {}).get(k) != want[k])
            raise ConfigError(f"checkpoint {path} was trained with a different architecture than "
                              f"pretrain/{self.pretrain[0]}/config.yaml (model.{diff[0] if diff else '?'}); "
                              f"pick a checkpoint of that experiment")

    def _data(self, tok, payload):
        cfg = self.cfg
        data_cfg = attrs.evolve(cfg.data, **{k: resolve_data_path(getattr(cfg.data, k), self.root)
                                             for k in ("train", "validation", "test")})
        need_labels = self.kind == "finetune"
        saved = payload.get("label_names") if payload else None
        splits = load_splits(data_cfg, cfg.seed, need_labels=need_labels, label_names=saved)
        if tok is None:
            text = tokenizer_to_str(train_tokenizer(splits.train["text"], cfg.tokenizer)) if self.dist.main else None
            tok = tokenizer_from_str(self.dist.broadcast(text), "trained tokenizer")
        self.tokenizer = tok
        if tok.get_vocab_size() > cfg.model.vocab_size:
            raise ConfigError(f"the tokenizer has {tok.get_vocab_size()} tokens but model.vocab_size is "
                              f"{cfg.model.vocab_size}; set model.vocab_size >= tokenizer.vocab_size")
        if need_labels:
            self._check_labels(splits.label_names)
        train_ids, cut = encode_with_stats(tok, splits.train["text"], cfg.data.max_length)
        val_ids = encode_with_stats(tok, splits.validation["text"], cfg.data.max_length)[0]
        labels = (lambda ds: ds["label"]) if need_labels else (lambda ds: None)
        unk = unk_rate(tok, splits.validation["text"])
        self.notes.append(("info", f"[UNK] rate on validation text: {unk:.4%}; {cut} of {len(train_ids)} training "
                           f"texts truncated to data.max_length={cfg.data.max_length}",
                           {"event": "data", "unk_rate_validation": unk, "train_examples": len(train_ids),
                            "validation_examples": len(val_ids), "truncated_train": cut}))
        return (EncodedDataset(train_ids, labels(splits.train)), EncodedDataset(val_ids, labels(splits.validation)),
                splits.label_names, unk)

    def _check_labels(self, names: list[str] | None) -> None:
        k = self.cfg.head.config.num_classes
        if names is None or len(names) != k:
            found = len(names or [])
            raise ConfigError(f"head.num_classes is {k} but the training data has {found} labels "
                              f"({', '.join(map(str, names or []))}); set head.num_classes: {found}")

    def _model(self, source_state):
        from ..model import build_model

        torch.manual_seed(self.cfg.seed)
        model = build_model(self.cfg.model, self.cfg.head, self.registry, seed=self.cfg.seed)
        if source_state is not None:
            state, path = source_state
            load_encoder(model, state, str(path))
            outcome, msg = load_head(model, state, str(path))
            level = "warning" if outcome == "reinitialised" else "info"
            self.notes.append((level, msg, {"event": "head_init", "outcome": outcome}))
        return model.to(self.dist.device)

    # ------------------------------------------------------------------ files at start
    def _resolved_dict(self) -> dict:
        data = to_dict(self.cfg, self.registry)
        if self.kind == "finetune":
            data["pretrain"] = {k: self.pre_ref.get(k) for k in ("name", "path", "checkpoint", "sha256")}
        return data

    def _write_start_files(self, payload, tok, model, label_names, unk, precision) -> None:
        files = self.files
        step = payload["position"]["step"] if payload else 0
        epoch = payload["position"]["epoch"] if payload else 0
        if not self.dist.main:
            return
        files.status("running", step, epoch)
        files.event("start", step, kind=self.kind, resumed=payload is not None, world_size=self.dist.world)
        for level, msg, fields in self.notes:
            getattr(files, level)(msg)
            fields = dict(fields)
            files.event(fields.pop("event"), step, message=msg, **fields)
        atomic_write_text(self.exp / "resolved_config.yaml", dump_yaml(self._resolved_dict()))
        atomic_write_text(self.exp / "tokenizer.json", tokenizer_to_str(tok))
        if label_names is not None:
            write_json(self.exp / "labels.json", label_names)
        info = run_info(self.cfg.seed, self.cfg.train.dtype, self.dist.device, self.registry,
                        model.num_parameters(), self.dist.world)
        write_json(self.exp / "run_info.json", {**info, "kind": self.kind, "unk_rate_validation": unk,
                                                "pretrain": self.pre_ref})


def _save_plain(path: Path, state: dict) -> None:
    """Write a tensor dict atomically (read back with ``torch.load(weights_only=True)``)."""
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state.items()}, buf)
    atomic_write_bytes(path, buf.getvalue())


class _signals:
    """Route SIGINT/SIGTERM to ``handler`` while training (main thread only)."""

    def __init__(self, handler) -> None:
        self.handler = handler
        self.old: dict = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.old[sig] = signal.signal(sig, lambda s, f: self.handler(s))
        return self

    def __exit__(self, *exc):
        for sig, old in self.old.items():
            signal.signal(sig, old)
        return False
