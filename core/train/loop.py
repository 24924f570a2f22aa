"""The training loop shared by pretraining (MLM) and finetuning (classification).

Resume is exact: the data order of epoch ``e`` is a pure function of ``(seed, e)``, a resumed run
skips the micro-batches already consumed in the epoch, MLM masks are a pure function of
``(seed, epoch, idx)``, DataLoaders draw from their own seeded generators (never from the global
RNG), and the global RNG states saved after step ``S`` are restored before step ``S + 1``. So the
losses after resuming equal those of an uninterrupted run; at most the steps after the last
checkpoint are recomputed (with ``checkpoint.every_steps: 1``, at most one).
"""
from __future__ import annotations

import contextlib
import math
import time
from typing import Callable

import attrs
import numpy as np
import torch
from torch.utils.data import DataLoader

from ..data import LengthBucketSampler, eval_batches
from ..errors import ConfigError, EffxError
from ..memtrim import HeapTrimmer
from ..sysinfo import peak_memory, versions
from . import checkpoint as ckpt
from .optim import build_optimizer, build_scheduler


AUTO_VALIDATIONS = 5  # with train.eval_every_steps null: validate at least this many times per run
ESTIMATE_AFTER = 3  # steps timed (the first is warm-up and not counted) before the time estimate is shown


class TrainingFailed(EffxError):
    """The run cannot continue (NaN/Inf loss or gradient, out of memory); the message says why and
    ``step`` is the optimizer step (1-based) that failed, when known."""

    def __init__(self, message: str, step: int | None = None) -> None:
        super().__init__(message)
        self.step = step

    def __reduce__(self):  # keep ``step`` when the error crosses a process boundary
        return type(self), (str(self), self.step)


class Interrupted(EffxError):
    """SIGINT/SIGTERM arrived; ``signum`` is the signal (the CLI exits with ``128 + signum``);
    ``startup``: it came before training began (nothing to resume from this attempt)."""

    def __init__(self, message: str, signum: int | None = None, startup: bool = False) -> None:
        super().__init__(message)
        self.signum, self.startup = signum, startup


@attrs.define
class Position:
    """Where training stands: epoch (0-based), micro-batches consumed in it, optimizer steps done."""

    epoch: int = 0
    batch: int = 0
    step: int = 0


@attrs.define
class Window:
    """Running sums between two train log rows (kept in checkpoints so resumed rows match)."""

    loss: float = 0.0
    steps: int = 0
    tokens: float = 0.0
    seconds: float = 0.0
    epoch_seconds: float = 0.0


def epoch_batches(n: int, lengths: list[int], global_batch: int, seed: int, epoch: int, bucketing: bool,
                  rank: int, world: int, accum: int = 1) -> list[list[int]]:
    """This rank's micro-batches of ``epoch``: global batches (a pure function of seed, epoch), each
    split ``[rank::world]``; incomplete global batches are dropped so every rank takes equal steps.
    Length buckets are cut at the size of a whole optimizer step (``global_batch * accum``) and then
    into its ``accum`` micro-batches, so accumulating gradients sees the examples of one big batch."""
    if bucketing:
        sampler = LengthBucketSampler(lengths, global_batch * accum, seed, drop_last=True)
        sampler.set_epoch(epoch)
        batches = [step[i:i + global_batch] for step in sampler.batches()
                   for i in range(0, len(step), global_batch)]
    else:
        order = np.random.default_rng([seed % 2**63, epoch, 11]).permutation(n)
        batches = [order[i:i + global_batch].tolist() for i in range(0, n - global_batch + 1, global_batch)]
    return [b[rank::world] for b in batches]


def _duration(seconds: float) -> str:
    """``3 h 05 min`` / ``12 min 30 s`` / ``45 s``."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def _generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) % 2**63)


def _seed_worker(worker_id: int) -> None:
    import random

    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


class Trainer:
    """Runs epochs of optimizer steps, evaluates, logs and checkpoints. One instance per run."""

    def __init__(self, *, kind, cfg, model, task, train_ds, val_ds, files, wandb, dist, precision, registry,
                 payload_extra: dict, stop_requested: Callable[[], bool]) -> None:
        self.kind, self.cfg, self.model, self.task = kind, cfg, model, task
        self.train_ds, self.val_ds = train_ds, val_ds
        self.files, self.wandb, self.dist, self.precision = files, wandb, dist, precision
        self.registry, self.extra, self.stop_requested = registry, payload_extra, stop_requested
        self.tc = cfg.train
        self.device = dist.device
        self.pos, self.window = Position(), Window()
        self.best_val: float | None = None
        self.fp16_skips = 0
        self.steps_per_epoch = self._steps_per_epoch()
        self.total_steps = self._total_steps()
        self.eval_every = self._eval_interval()
        self._step_times: list[float] = []
        self.ddp = dist.wrap(model)
        self.opt = build_optimizer(model, self.tc.optimizer)
        self.sched = build_scheduler(self.opt, self.tc.scheduler, self.total_steps)
        self.progress = None
        self.heap = HeapTrimmer() if self.device.type == "cpu" else None  # varying shapes fragment the heap

    # ------------------------------------------------------------------ sizes
    @property
    def global_batch(self) -> int:
        return self.tc.batch_size * self.dist.world

    def _steps_per_epoch(self) -> int:
        n_batches = len(self.train_ds) // self.global_batch
        steps = n_batches // self.tc.grad_accum_steps
        if steps < 1:
            raise ConfigError(
                f"the training split has {len(self.train_ds)} examples, fewer than one optimizer step needs "
                f"(train.batch_size {self.tc.batch_size} x {self.dist.world} process(es) x "
                f"train.grad_accum_steps {self.tc.grad_accum_steps}); lower the batch size or add data")
        return steps

    def _total_steps(self) -> int:
        total = self.steps_per_epoch * self.tc.epochs
        return min(total, self.tc.max_steps) if self.tc.max_steps else total

    def _eval_interval(self) -> int:
        """``train.eval_every_steps``, or (null) every epoch and at least :data:`AUTO_VALIDATIONS` times a run."""
        if self.tc.eval_every_steps:
            return self.tc.eval_every_steps
        return min(self.steps_per_epoch, math.ceil(self.total_steps / AUTO_VALIDATIONS))

    def plan(self) -> dict:
        """The sizes of this run, recorded in run_info.json and shown before training."""
        return {"steps_per_epoch": self.steps_per_epoch, "total_steps": self.total_steps,
                "eval_every_steps": self.eval_every, "global_batch": self.global_batch * self.tc.grad_accum_steps}

    # ------------------------------------------------------------------ state
    def payload(self) -> dict:
        return {
            "kind": self.kind,
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "scaler": self.precision.state_dict(),
            "rng": self.dist.gather(ckpt.capture_rng(self.model)),
            "position": attrs.asdict(self.pos) | {"world_size": self.dist.world},
            "trainer": {"best_val_loss": self.best_val, "window": attrs.asdict(self.window),
                        "fp16_skips": self.fp16_skips},
            "versions": versions(),
            **self.extra,
        }

    def restore(self, payload: dict) -> None:
        """Load everything a checkpoint holds back into the live objects."""
        self.model.load_state_dict(payload["model"])
        self.opt.load_state_dict(payload["optimizer"])
        self.sched.load_state_dict(payload["scheduler"])
        self.precision.load_state_dict(payload["scaler"])
        pos = payload["position"]
        self.pos = Position(pos["epoch"], pos["batch"], pos["step"])
        t = payload["trainer"]
        self.best_val, self.window, self.fp16_skips = t["best_val_loss"], Window(**t["window"]), t["fp16_skips"]
        rngs = payload["rng"]
        if pos.get("world_size") == self.dist.world and len(rngs) == self.dist.world:
            ckpt.restore_rng(rngs[self.dist.rank], self.model)
        else:
            self.files.warning(f"checkpoint was written by {pos.get('world_size')} process(es), this run has "
                               f"{self.dist.world}: RNG streams restart from the seed (results will differ)")
            torch.manual_seed(self.cfg.seed + 7919 * self.dist.rank + self.pos.step)

    # ------------------------------------------------------------------ data
    def train_loader(self, epoch: int) -> DataLoader:
        ds = self.train_ds
        batches = epoch_batches(len(ds), ds.lengths, self.global_batch, self.cfg.seed, epoch,
                                self.cfg.data.length_bucketing, self.dist.rank, self.dist.world,
                                self.tc.grad_accum_steps)
        batches = batches[: self.steps_per_epoch * self.tc.grad_accum_steps]
        start = self.pos.batch if epoch == self.pos.epoch else 0
        self.task.set_epoch(epoch)
        return self._loader(ds, batches[start:], self.task.train_collator, epoch)

    def _loader(self, ds, batches, collator, epoch: int) -> DataLoader:
        workers = self.cfg.data.num_workers
        return DataLoader(ds, batch_sampler=batches, collate_fn=collator, num_workers=workers,
                          worker_init_fn=_seed_worker if workers else None,
                          generator=_generator(self.cfg.seed, epoch), pin_memory=self.device.type == "cuda")

    def val_loader(self) -> DataLoader:
        ds = self.val_ds
        batches = eval_batches(ds.lengths, self.tc.eval_batch_size)  # length-sorted, token-bounded: same metrics
        return self._loader(ds, batches, self.task.eval_collator, 0)

    def _to_device(self, batch: dict) -> dict:
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    # ------------------------------------------------------------------ one step
    def _forward_loss(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        with self.precision.autocast():
            logits = self.ddp(batch["input_ids"], batch["attention_mask"], **self.task.forward_kwargs(batch))
        return self.task.loss(logits, batch)

    def train_step(self, micro: list[dict]) -> tuple[float, float, float]:
        """One optimizer step over ``grad_accum_steps`` micro-batches -> (loss, grad norm, tokens)."""
        self.ddp.train()
        total_count, = self.dist.sum([float(sum(self.task.count(b) for b in micro))])
        scale = self.dist.world / max(total_count, 1.0)  # DDP averages grads over ranks
        loss_sum, tokens = 0.0, 0.0
        for i, batch in enumerate(micro):
            batch = self._to_device(batch)
            sync = i == len(micro) - 1 or not self.dist.enabled
            with self.ddp.no_sync() if not sync else contextlib.nullcontext():
                s, _ = self._forward_loss(batch)
                self.precision.scaler.scale(s * scale).backward()
            loss_sum += float(s.detach())
            tokens += float(batch["attention_mask"].sum())
        loss_sum, tokens = self.dist.sum([loss_sum, tokens])
        loss = loss_sum / max(total_count, 1.0)
        if not math.isfinite(loss):
            step = self.pos.step + 1
            raise TrainingFailed(f"loss is {loss} at step {step}; {self._divergence_advice()}", step)
        norm = self._clip_and_step()
        return loss, norm, tokens

    def _clip_and_step(self) -> float:
        scaler = self.precision.scaler
        scaler.unscale_(self.opt)
        max_norm = self.tc.clip_grad_norm if self.tc.clip_grad_norm else float("inf")
        norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm))
        if not math.isfinite(norm) and not scaler.is_enabled():
            step = self.pos.step + 1
            raise TrainingFailed(f"gradient norm is {norm} at step {step}; {self._divergence_advice()}", step)
        before = scaler.get_scale() if scaler.is_enabled() else None
        scaler.step(self.opt)
        scaler.update()
        self.opt.zero_grad(set_to_none=True)
        self.sched.step()
        if before is not None:
            self._check_fp16_skips(before, scaler.get_scale())
        return norm

    def _divergence_advice(self) -> str:
        """What to change after a NaN/Inf, leaving out the settings that are already in place."""
        tips = ["lower train.optimizer.lr"]
        if not self.tc.clip_grad_norm:
            tips.append("set train.clip_grad_norm (e.g. 1.0)")
        sched = self.tc.scheduler
        if not (sched.warmup_steps or sched.warmup_ratio):
            tips.append("add warmup (train.scheduler.warmup_ratio)")
        return ", ".join(tips[:-1]) + (" or " if len(tips) > 1 else "") + tips[-1]

    def _check_fp16_skips(self, before: float, after: float) -> None:
        self.fp16_skips = self.fp16_skips + 1 if after < before else 0
        if self.fp16_skips >= 25:
            raise TrainingFailed(f"fp16 gradients overflowed in {self.fp16_skips} consecutive steps (loss scale "
                                 f"{after:g}); use train.dtype bf16 or lower the learning rate", self.pos.step + 1)

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self) -> dict:
        """Validation loss and metrics on rank 0, broadcast to every rank."""
        result = None
        if self.dist.main:
            self.model.eval()
            parts, loss_sum, count = [], 0.0, 0
            for batch in self.val_loader():
                batch = self._to_device(batch)
                with self.precision.autocast():
                    logits = self.model(batch["input_ids"], batch["attention_mask"], **self.task.forward_kwargs(batch))
                s, c = self.task.loss(logits, batch)
                loss_sum, count = loss_sum + float(s), count + int(c)
                parts.append(self.task.eval_batch(logits, batch))
                if self.heap is not None:
                    self.heap()  # varying batch shapes: keep the resident set bounded
            result = self.task.finish_eval(parts, loss_sum, count, self.registry)
            self.model.train()
        return self.dist.broadcast(result)

    # ------------------------------------------------------------------ the loop
    def fit(self) -> dict:
        """Train to the end (or until stopped); returns the last validation result."""
        self._open_progress()
        last_val: dict = {}
        try:
            while self.pos.step < self.total_steps:
                last_val = self._run_epoch(self.pos.epoch) or last_val
        finally:
            if self.progress is not None:
                self.progress.close()
        return last_val

    def _run_epoch(self, epoch: int) -> dict | None:
        accum = self.tc.grad_accum_steps
        it = iter(self.train_loader(epoch))
        first = self.pos.batch // accum
        val = None
        for s in range(first, self.steps_per_epoch):
            t0 = time.perf_counter()
            loss, norm, tokens = self.train_step([next(it) for _ in range(accum)])
            if self.heap is not None:
                self.heap()  # inside the timed step: its cost is part of the step's cost
            self.pos = Position(epoch, (s + 1) * accum, self.pos.step + 1)
            self._account(loss, tokens, time.perf_counter() - t0)
            self._estimate(time.perf_counter() - t0)
            end_epoch = s + 1 == self.steps_per_epoch
            done = self.pos.step >= self.total_steps
            self._log_train(norm, force=done)
            val = self._after_step(end_epoch, done) or val
            if done:
                break
        return val

    def _account(self, loss: float, tokens: float, seconds: float) -> None:
        w = self.window
        w.loss, w.steps, w.tokens, w.seconds = w.loss + loss, w.steps + 1, w.tokens + tokens, w.seconds + seconds
        w.epoch_seconds += seconds
        if self.progress is not None:
            self.progress.update(1)
            self.progress.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tokens / max(seconds, 1e-9):.0f}")

    def _estimate(self, seconds: float) -> None:
        """After the first few steps of this session, say how long the rest of the run will take."""
        self._step_times.append(seconds)
        if len(self._step_times) != ESTIMATE_AFTER or not self.dist.main:
            return
        per_step = sum(self._step_times[1:]) / (ESTIMATE_AFTER - 1)
        left = self.total_steps - self.pos.step
        vals = sum(1 for k in range(self.pos.step + 1, self.total_steps + 1)
                   if k % self.eval_every == 0 or k % self.steps_per_epoch == 0 or k == self.total_steps)
        self.files.notice(f"time estimate: {per_step:.2f} s per optimizer step, so the remaining {left:,} steps "
                          f"take about {_duration(per_step * left)} (plus {vals} validations); if that is too long, "
                          f"stop with Ctrl-C and lower train.max_steps or the model size")

    def _after_step(self, end_epoch: bool, done: bool) -> dict | None:
        val = None
        improved = False
        if end_epoch or done or self.pos.step % self.eval_every == 0:
            val = self.evaluate()
            improved = self.best_val is None or val["loss"] < self.best_val
            self.best_val = val["loss"] if improved else self.best_val
            self._log_val(val, end_epoch)
        if end_epoch:
            self.pos = Position(self.pos.epoch + 1, 0, self.pos.step)
            self.window.epoch_seconds = 0.0
        stop = self.dist.any(self.stop_requested())
        if self._checkpoint_due(end_epoch, done) or improved or stop:
            self.save_checkpoint(best=improved)
        if stop:
            raise Interrupted(f"interrupted at step {self.pos.step}; checkpoint saved")
        return val

    def _checkpoint_due(self, end_epoch: bool, done: bool) -> bool:
        c = self.cfg.checkpoint
        by_steps = bool(c.every_steps) and self.pos.step % c.every_steps == 0
        by_epochs = end_epoch and bool(c.every_epochs) and self.pos.epoch % c.every_epochs == 0
        return done or by_steps or by_epochs

    # ------------------------------------------------------------------ output
    def save_checkpoint(self, best: bool = False) -> None:
        payload = self.payload()  # collective (RNG gather): every rank calls it
        if self.dist.main:
            path = ckpt.step_path(self.files.dir, self.pos.step)
            ckpt.save(path, payload)
            ckpt.link_as(path, self.files.dir / "ckpt_last.pt")
            if best:
                ckpt.link_as(path, self.files.dir / "ckpt_best.pt")
            for old in ckpt.prune(self.files.dir, self.cfg.checkpoint.keep_last):
                self.files.info(f"removed old checkpoint {old.name}")
            self.files.event("checkpoint", self.pos.step, path=path.name, best=best, epoch=self.pos.epoch,
                             batch=self.pos.batch)
        self.dist.barrier()

    def _log_train(self, grad_norm: float, force: bool) -> None:
        w = self.window
        if w.steps == 0 or not (force or self.pos.step % max(1, self.tc.log_every_steps) == 0):
            return
        mem, kind = peak_memory(self.device)
        row = {"step": self.pos.step, "epoch": self.pos.epoch + 1, "split": "train", "loss": w.loss / w.steps,
               "lr": self.sched.get_last_lr()[0], "tokens_per_s": w.tokens / max(w.seconds, 1e-9),
               "time_per_step_s": w.seconds / w.steps, "peak_mem_MiB": mem, "mem_kind": kind, "grad_norm": grad_norm}
        self.files.metric(row)
        self.wandb.log({f"train/{k}": row[k] for k in ("loss", "lr", "tokens_per_s", "time_per_step_s", "peak_mem_MiB",
                                                       "grad_norm")},
                       self.pos.step)
        self.window = Window(epoch_seconds=w.epoch_seconds)

    def _log_val(self, val: dict, end_epoch: bool) -> None:
        """``time_per_epoch_s`` only on the row that closes a full epoch (a partial one is no epoch)."""
        mem, kind = peak_memory(self.device)
        row = {"step": self.pos.step, "epoch": self.pos.epoch + 1, "split": "validation", **val,
               "peak_mem_MiB": mem, "mem_kind": kind,
               "time_per_epoch_s": self.window.epoch_seconds if end_epoch else None}
        self.files.metric(row)
        self.files.info(f"step {self.pos.step} validation " + " ".join(
            f"{k}={v:.4g}" for k, v in val.items() if isinstance(v, float)))
        self.wandb.log({f"val/{k}": v for k, v in row.items() if k not in ("step", "split", "mem_kind")},
                       self.pos.step)

    def _open_progress(self) -> None:
        if not (self.cfg.logging.progress_bar and self.dist.main):
            return
        from tqdm.auto import tqdm

        self.progress = tqdm(total=self.total_steps, initial=self.pos.step, desc=f"{self.kind}", unit="step",
                             dynamic_ncols=True, leave=True)

