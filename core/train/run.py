"""``effx pretrain`` / ``effx finetune``: one function each, from experiment name to finished run.

A :class:`Session` prepares everything a :class:`~effx.train.loop.Trainer` needs (config, data,
tokenizer, model, output files, W&B), restores a checkpoint on ``resume``, runs the loop and marks
the outcome in ``status.json`` and ``events.jsonl``: ``finished``; ``failed`` with the cause (NaN/Inf
loss or gradient, out of memory, any other error); or ``interrupted`` (SIGINT/SIGTERM: a checkpoint
is written first).

A run holds the experiment's lock (:mod:`effx.train.lock`) from start to end and first deletes the
temporary files of writers killed mid-write. SIGINT/SIGTERM are handled for the whole run: during
start-up they stop it at once (``interrupted``, nothing trained); during training the current step
finishes and a checkpoint is written (a second signal stops without one); a signal while the run
finishes is ignored.
"""
from __future__ import annotations

import io
import os
import random
import shutil
import signal
import socket
import sys
import threading
from pathlib import Path

import attrs
import numpy as np
import torch

from ..atomic import leftovers
from ..config import ExperimentConfig, dump_yaml, load_experiment, load_yaml, to_dict
from ..data import EncodedDataset, encode_with_stats, load_splits, tokenizer_from_str, tokenizer_to_str
from ..data import load_tokenizer, train_tokenizer, unk_rate
from ..errors import ConfigError
from ..metrics import metric_names
from ..plugins import load_registry
from ..sysinfo import reset_peak_memory, run_info
from . import checkpoint as ckpt
from .distributed import Dist
from .experiment import check_consistency, resolve_finetune, resolve_scratch
from .lock import ExperimentLock
from .loop import Interrupted, Trainer, TrainingFailed
from .memory_check import check_fits
from .paths import require_experiment, resolve_data_path, resolve_root
from .precision import Precision, check_fp16
from .runfiles import RunFiles, atomic_write_bytes, atomic_write_text, read_status, write_json
from .task import make_task
from .wandb_log import WandbLogger
from .weights import load_encoder, load_head

NO_PRETRAINING = {"name": None, "path": None, "checkpoint": None, "sha256": None,
                  "none": "no pretraining: the encoder was trained from a fresh initialisation of `model`"}
RUN_ARTEFACTS = ("metrics.csv", "events.jsonl", "status.json", "run_info.json", "head.pt", "wandb_run_id.txt",
                 "resolved_config.yaml")
WRITTEN = ("ckpt_", *(f"{n}." for n in (*RUN_ARTEFACTS, "tokenizer.json", "labels.json")))  # temp-file prefixes


@attrs.frozen
class RunResult:
    exp_dir: Path
    status: str
    step: int
    validation: dict
    best_checkpoint: Path | None
    main: bool = True  # False on the other ranks of a torchrun job: only rank 0 reports


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


def run_finetune(name: str, pretrain: str | None, ckpt_choice: str = "best", root=None, resume: bool = False,
                 overwrite: bool = False) -> RunResult:
    """Finetune from pretraining experiment ``pretrain``, or (``None``) from a fresh initialisation of the
    architecture in the finetune config's own ``model`` section."""
    registry = load_registry()
    exp = require_experiment("finetune", name, root)
    where = str(exp / "config.yaml")
    if pretrain is None:
        cfg = resolve_scratch(load_yaml(exp / "config.yaml"), where, name, registry)
        return Session("finetune", exp, cfg, registry, resolve_root(root)).run(resume, overwrite)
    pre = require_experiment("pretrain", pretrain, root)
    pre_dict = to_dict(load_experiment(pre / "config.yaml", registry), registry)
    cfg = resolve_finetune(load_yaml(exp / "config.yaml"), pre_dict, where, pretrain, registry)
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
        self._phase = "startup"  # -> training -> finishing; "stopping" once a start-up signal arrived
        self.signum: int | None = None
        self.files: RunFiles | None = None
        self.trainer: Trainer | None = None

    # ------------------------------------------------------------------ run
    def run(self, resume: bool, overwrite: bool) -> RunResult:
        with _signals(self._on_signal, self._must_stop_now, self._hard_stop):
            self.dist = Dist(self.cfg.train.device)
            reset_peak_memory(self.dist.device)  # peak_mem_MiB is this run's, whatever ran before in the process
            try:
                check_fp16(self.cfg.train.dtype, self.dist.device.type)  # before any file (the lock too) is written
                with ExperimentLock(self.exp, f"{self.kind}/{self.exp.name}") if self.dist.main else _no_lock():
                    return self._run(resume, overwrite)
            except Interrupted as exc:
                exc.signum = exc.signum or self.signum
                raise
            finally:
                self.dist.close()

    def _run(self, resume: bool, overwrite: bool) -> RunResult:
        self._remove_leftovers()
        payload = self._resume_payload() if resume else self._fresh_start(overwrite)
        if payload is not None:
            self._check_resume_config(payload)
        seed_everything(self.cfg.seed)
        tok, source_state = self._tokenizer_and_weights(payload)
        train_ds, val_ds, label_names, unk = self._data(tok, payload)
        model = self._model(source_state)
        check_fits(self.cfg, model.num_parameters(), train_ds.lengths, val_ds.lengths, self.dist.device)
        files = RunFiles(self.exp, enabled=self.dist.main, metric_names=metric_names(self.registry))
        files.open(payload["position"]["step"] if payload else None)
        self.files = files
        try:
            return self._train(payload, self.tokenizer, model, train_ds, val_ds, label_names, unk)
        except BaseException as exc:
            if not self._marked:
                step = payload["position"]["step"] if payload else 0
                if isinstance(exc, Interrupted):
                    self._mark("interrupted", step, payload["position"]["epoch"] if payload else 0, str(exc))
                else:
                    self._mark("failed", step, 0, f"{type(exc).__name__}: {str(exc)[:300]}")
            raise
        finally:
            files.close()

    def _train(self, payload, tok, model, train_ds, val_ds, label_names, unk) -> RunResult:
        files, cfg = self.files, self.cfg
        precision = Precision(cfg.train.dtype, self.dist.device)
        extra = {"tokenizer": tokenizer_to_str(tok), "config": to_dict(cfg, self.registry),
                 "label_names": label_names, "pretrain": self.pre_ref, "experiment": f"{self.kind}/{self.exp.name}"}
        wb = WandbLogger(cfg.logging.wandb, self.exp, f"{self.kind}/{self.exp.name}", self._resolved_dict(),
                         self.dist.main, group=self.kind)
        trainer = Trainer(kind=self.kind, cfg=cfg, model=model, task=make_task(self.kind, tok.get_vocab_size(), cfg,
                          cfg.seed), train_ds=train_ds, val_ds=val_ds, files=files, wandb=wb, dist=self.dist,
                          precision=precision, registry=self.registry, payload_extra=extra,
                          stop_requested=self._stop.is_set)
        self._write_start_files(payload, tok, model, label_names, unk, precision, trainer.plan())
        seed_everything(cfg.seed + 7919 * self.dist.rank)  # dropout streams differ per process
        if payload is not None:
            trainer.restore(payload)
        self.trainer = trainer
        self._announce(trainer)
        wb.summary({"unk_rate_validation": unk})
        code = 1
        try:
            self._phase = "training"
            val = self._fit(trainer)
            self._phase = "finishing"
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
        except TrainingFailed as exc:  # status.json names the step the cause names
            self._mark("failed", exc.step if exc.step is not None else step(), trainer.pos.epoch, str(exc))
            raise
        except (torch.OutOfMemoryError, MemoryError) as exc:
            cause = (f"out of memory at step {step() + 1} ({(str(exc) or type(exc).__name__).splitlines()[0][:120]}); lower "
                     f"train.batch_size or data.max_length, or set model.gradient_checkpointing: true")
            self._mark("failed", step() + 1, trainer.pos.epoch, cause)
            raise TrainingFailed(cause, step() + 1) from None
        except BaseException as exc:
            self._mark("failed", step(), trainer.pos.epoch, f"{type(exc).__name__}: {str(exc)[:300]}")
            raise

    def _mark(self, status: str, step: int, epoch: int, cause: str) -> None:
        """Record the outcome; a file error here (e.g. the disk is full) must not hide the real one."""
        self._marked = True
        if self.files is None:
            return
        try:
            self.files.status(status, step, epoch, cause)
            self.files.event(status, step, cause=cause)
            self.files.outcome(status, cause)  # train.log only: the error raised next is what the caller shows
        except OSError:
            pass

    def _on_signal(self, signum: int) -> None:
        """Start-up: stop now. Training: finish the step and checkpoint; a second signal stops at once."""
        self.signum = self.signum or signum
        if self._phase == "startup":
            self._phase = "stopping"
            raise Interrupted(f"interrupted by {signal.Signals(signum).name} during start-up, before training "
                              f"began", signum, startup=True)
        if self._phase != "training":
            return  # already stopping, or the run is finishing: let it finish
        if self._stop.is_set():
            raise KeyboardInterrupt
        self._stop.set()

    def _must_stop_now(self, count: int) -> bool:
        """Whether the ``count``-th signal asks to stop at once (not after the current step)."""
        return count >= 2 or self._phase in ("startup", "stopping")

    def _hard_stop(self, signum: int) -> None:
        """The main thread is stuck in a long operation and did not stop: record that and exit."""
        trainer = self.trainer
        step, epoch = (trainer.pos.step, trainer.pos.epoch) if trainer is not None else (0, 0)
        name = signal.Signals(signum).name
        if self.files is not None and not self._marked:
            self._mark("interrupted", step, epoch, f"stopped by {name} during a long operation, without a "
                                                   f"checkpoint of the step in progress")
        hint = "continue with -resume" if trainer is not None else "run the command again"
        print(f"Interrupted: stopped by {name} during a long operation; {hint}", file=sys.stderr, flush=True)
        os._exit(128 + signum)

    def _remove_leftovers(self) -> None:
        """Delete temporary files of writers killed mid-write (the lock says none is alive)."""
        if not self.dist.main:
            return
        gone = leftovers(self.exp, WRITTEN)
        for p in gone:
            p.unlink(missing_ok=True)
        if gone:
            self.notes.append(("info", f"removed {len(gone)} temporary file(s) left by an interrupted write: "
                               f"{', '.join(p.name for p in gone[:5])}{' ...' if len(gone) > 5 else ''}",
                               {"event": "leftovers_removed", "files": [p.name for p in gone]}))

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
        return RunResult(self.exp, "finished", step, val, best if best.exists() else None, self.dist.main)

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
        bad: list[tuple[Path, str]] = []
        for path in candidates:
            try:
                payload = ckpt.load(path)
            except ckpt.CheckpointError as exc:
                self.notes.append(("warning", f"{exc}; trying an earlier checkpoint",
                                   {"event": "checkpoint_unusable", "path": path.name, "reason": exc.reason}))
                bad.append((path, exc.reason))
                continue
            self.notes.append(("info", f"resuming from {path.name} (step {payload['position']['step']})",
                               {"event": "resume", "path": path.name}))
            self.pre_ref = payload.get("pretrain")
            return payload
        why = {"refused": "refused: contains code that would run when loaded", "foreign": "not an effx checkpoint",
               "corrupt": "truncated or corrupt", "missing": "vanished"}
        listed = "; ".join(f"{p.name} {why.get(r, r)}" for p, r in bad)
        raise ckpt.CheckpointError(f"no usable checkpoint in {self.exp} ({listed}); start over with --overwrite")

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
        if self.kind == "finetune":
            self._check_resume_source()

    def _check_resume_source(self) -> None:
        """A resumed finetune keeps its start: the same pretraining experiment, or none."""
        was = (self.pre_ref or {}).get("name")
        now = self.pretrain[0] if self.pretrain else None
        if was == now:
            return
        if was is None:
            raise ConfigError(f"finetune/{self.exp.name} was started without pretraining; resume it without "
                              f"-pretrain")
        raise ConfigError(f"finetune/{self.exp.name} was started from pretrain/{was}"
                          f"{'' if now is None else f', not {now}'}; pass -pretrain {was}")

    def _tokenizer_and_weights(self, payload: dict | None):
        """The tokenizer (from the checkpoint when resuming / finetuning) and, for a fresh finetune,
        the pretraining weights to start from."""
        if payload is not None:
            return tokenizer_from_str(payload["tokenizer"], "checkpoint tokenizer"), None
        if self.kind == "finetune" and self.pretrain is not None:
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
        for line in splits.warnings:
            self.notes.append(("warning", line, {"event": "overlap"}))
        if tok is None:  # rank 0 trains the tokenizer, the other ranks wait for it and load it
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
                            "validation_examples": len(val_ids), "truncated_train": cut,
                            "overlap_with_train": splits.overlap}))
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
        if self.kind == "finetune" and self.pre_ref:
            data["pretrain"] = {k: self.pre_ref.get(k) for k in ("name", "path", "checkpoint", "sha256")}
        elif self.kind == "finetune":
            data["pretrain"] = dict(NO_PRETRAINING)
        return data

    def _announce(self, trainer: Trainer) -> None:
        p, tc = trainer.plan(), self.cfg.train
        short = tc.max_steps and tc.max_steps < p["steps_per_epoch"] * tc.epochs
        cut = f", cut to train.max_steps={tc.max_steps}" if short else ""
        start = f", resuming at step {trainer.pos.step}" if trainer.pos.step else ""
        self.files.notice(f"{self.kind}/{self.exp.name}: {p['total_steps']:,} optimizer steps of {p['global_batch']} "
                          f"examples ({tc.epochs} epoch(s) of {p['steps_per_epoch']:,} steps{cut}){start}; validation "
                          f"every {p['eval_every_steps']:,} steps and at each epoch end")

    def _write_start_files(self, payload, tok, model, label_names, unk, precision, plan: dict) -> None:
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
        write_json(self.exp / "run_info.json", {**info, "kind": self.kind, "unk_rate_validation": unk, **plan,
                                                "pretrain": self._resolved_dict().get("pretrain")})


def _save_plain(path: Path, state: dict) -> None:
    """Write a tensor dict atomically (read back with ``torch.load(weights_only=True)``)."""
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state.items()}, buf)
    atomic_write_bytes(path, buf.getvalue())


class _no_lock:
    """Stands in for the experiment lock on ranks other than 0 (rank 0 holds it for the run)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _signals:
    """Route SIGINT/SIGTERM to ``handler`` for the duration of the run (main thread only).

    Python runs a signal handler only between bytecodes, so a long call into C (one huge attention
    product, tokenising a big file) would delay it indefinitely. A watchdog thread therefore hears
    every signal at once (``signal.set_wakeup_fd``); when ``urgent(count)`` says the signal asks to
    stop at once and the process is still alive ``GRACE_S`` later, it calls ``hard_stop(signum)``.
    """

    GRACE_S = 5.0

    def __init__(self, handler, urgent=None, hard_stop=None) -> None:
        self.handler, self.urgent, self.hard_stop = handler, urgent, hard_stop
        self.old: dict = {}
        self.count = 0
        self.timers: list[threading.Timer] = []
        self.sockets: tuple | None = None
        self.closing = False

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.old[sig] = signal.signal(sig, lambda s, f: self.handler(s))
            if self.hard_stop is not None:
                self._start_watchdog()
        return self

    def _start_watchdog(self) -> None:
        r, w = socket.socketpair()
        w.setblocking(False)
        self.old_fd = signal.set_wakeup_fd(w.fileno(), warn_on_full_buffer=False)
        self.sockets = (r, w)
        self.thread = threading.Thread(target=self._watch, args=(r,), daemon=True, name="effx-signal-watchdog")
        self.thread.start()

    def _watch(self, r) -> None:
        while True:
            try:
                data = r.recv(64)
            except OSError:
                return
            if not data or self.closing:
                return
            for signum in data:
                if signum not in (signal.SIGINT, signal.SIGTERM):
                    continue
                self.count += 1
                if self.urgent(self.count):
                    timer = threading.Timer(self.GRACE_S, self.hard_stop, args=(signum,))
                    timer.daemon = True
                    self.timers.append(timer)
                    timer.start()

    def __exit__(self, *exc):
        for timer in self.timers:
            timer.cancel()
        if self.sockets is not None:
            signal.set_wakeup_fd(self.old_fd)
            self.closing = True
            self.sockets[1].send(b"\0")  # wakes the watchdog, which then returns
            self.thread.join()
            for sock in self.sockets:
                sock.close()
        for sig, old in self.old.items():
            signal.signal(sig, old)
        return False
