"""``effx sweep SPEC.yaml``: expand a grid / list of settings into experiments and run them.

A spec (strict YAML, paths relative to the spec file)::

    name: attn                                # prefix of every experiment name
    pretrain_template: base_pretrain.yaml     # optional; default: the built-in template
    finetune_template: base_finetune.yaml     # optional; default: the built-in template
    fixed: {train.epochs: 1}                  # settings for every experiment (dotted keys)
    grid:                                     # cartesian product
      seed: [0, 1, 2]
      model.d_model: [128, 256]
    variants:                                 # one more axis: explicit combinations
      - {model.attention.type: ATTENTION_A}   # names from `effx plugins --kind attention`
      - {model.attention.type: ATTENTION_B, model.attention.SOME_FIELD: 64}
    eval_splits: [validation, test]
    baseline: true                            # TF-IDF+LR once per (data, seed)

Keys go to the pretraining config, the finetune config or both: ``model.*``, ``tokenizer.*``,
``mlm.*`` -> pretraining; ``head.*`` -> finetune; ``seed``, ``data.*``, ``train.*``,
``checkpoint.*``, ``logging.*`` -> both; a ``pretrain.`` or ``finetune.`` prefix sends a key to one only.

A combination with a pretraining budget of zero (``pretrain.train.epochs: 0`` or
``pretrain.train.max_steps: 0``) has no pretraining: its finetunes train the architecture
(``model.*``, ``tokenizer.*``) from a fresh initialisation (``effx init --finetune --no-pretrain``),
so one sweep answers "how much does pretraining pay off", e.g. ``grid: {pretrain.train.epochs: [0, 2, 5]}``.

A *job* is one pretraining plus the finetunes (and their evaluations and baselines) that use it; jobs
run K at a time, each in its own process (``effx sweep SPEC --job NAME``) and folders. Inside a job,
every training, evaluation and baseline runs in a fresh interpreter of its own, so each records its
own peak memory (a process's resident set never shrinks back after a bigger run) and one run killed
by the system does not take the rest of the job with it. Re-running skips finished experiments,
resumes interrupted ones and leaves failed ones (``--retry-failed``).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import subprocess
import sys
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Optional

import attrs

from ..config import load_yaml, structure
from ..errors import ConfigError, EffxError
from ._io import read_json, write_json

PRETRAIN_ONLY = ("model.", "tokenizer.", "mlm.")
FINETUNE_ONLY = ("head.",)
BOTH = ("seed", "data.", "train.", "checkpoint.", "logging.")


@attrs.frozen
class SweepSpec:
    name: str
    pretrain_template: Optional[str] = None
    finetune_template: Optional[str] = None
    fixed: dict[str, Any] = attrs.Factory(dict)
    grid: dict[str, Any] = attrs.Factory(dict)  # key -> list of values (checked in combinations)
    variants: list[dict[str, Any]] = attrs.Factory(list)
    eval_splits: list[str] = attrs.Factory(lambda: ["validation", "test"])
    baseline: bool = True


@attrs.frozen
class Finetune:
    name: str
    sets: tuple[str, ...]  # key=value for `effx init --finetune`
    seed: int
    pretrained: bool = True  # False: trained from a fresh initialisation (no pretraining)


@attrs.frozen
class Job:
    """One pretraining experiment and everything that depends on it."""

    name: str  # = the pretraining experiment's name
    sets: tuple[str, ...]
    finetunes: tuple[Finetune, ...]
    baselines: tuple[tuple[str, str], ...] = ()  # (baseline name, finetune it is -like)
    pretrained: bool = True  # False: no pretraining; the finetunes start from scratch


def route(key: str) -> tuple[str, ...]:
    """Which configs a dotted key belongs to; the stripped key."""
    for prefix, target in (("pretrain.", "pretrain"), ("finetune.", "finetune")):
        if key.startswith(prefix):
            return (target,)
    if key.startswith(PRETRAIN_ONLY):
        return ("pretrain",)
    if key.startswith(FINETUNE_ONLY):
        return ("finetune",)
    if key == "seed" or key.startswith(BOTH[1:]):
        return ("pretrain", "finetune")
    raise ConfigError(f"sweep key '{key}' is not a config setting; use model.*, tokenizer.*, mlm.*, head.*, "
                      f"seed, data.*, train.*, checkpoint.*, logging.*, or prefix it with pretrain. / finetune.")


def _strip(key: str) -> str:
    return key.split(".", 1)[1] if key.startswith(("pretrain.", "finetune.")) else key


def _setting(key: str, value: Any) -> str:
    return f"{_strip(key)}={json.dumps(value)}"  # JSON is valid YAML: `effx init --set` parses it back


def _slug(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return hashlib.sha1(json.dumps(value, sort_keys=True).encode()).hexdigest()[:6]
    text = re.sub(r"[^A-Za-z0-9.]+", "_", str(value)).strip("_")
    return text[:24] or "x"


def combinations(spec: SweepSpec) -> list[dict[str, Any]]:
    """grid (cartesian product) x variants; ``fixed`` first so a combination can override it."""
    for key, values in spec.grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sweep grid.{key}: expected a non-empty list of values")
    keys = list(spec.grid)
    grid = [dict(zip(keys, vals)) for vals in itertools.product(*(spec.grid[k] for k in keys))]
    return [{**spec.fixed, **g, **v} for g in grid for v in (spec.variants or [{}])]


def _varying(combos: list[dict[str, Any]]) -> list[str]:
    keys = list(dict.fromkeys(k for c in combos for k in c))
    return [k for k in keys if len({json.dumps(c.get(k), sort_keys=True) for c in combos}) > 1]


def _name(prefix: str, combo: dict, keys: list[str]) -> str:
    """``prefix-<value>-<value>...`` over the varying keys this combination sets (seeds as ``s<N>``)."""
    parts = [f"s{combo[k]}" if _strip(k) == "seed" else _slug(combo[k]) for k in keys if k in combo]
    return "-".join([prefix, *parts])


def _baseline_key(combo: dict[str, Any]) -> str:
    """Finetunes with the same data settings and seed share one baseline (same split)."""
    keep = {k: v for k, v in combo.items()
            if "finetune" in route(k) and (_strip(k).startswith("data.") or _strip(k) == "seed")}
    return json.dumps(keep, sort_keys=True, default=str)


def _scratch(combo: dict[str, Any]) -> bool:
    """A pretraining budget of 0 epochs or 0 steps means no pretraining."""
    return combo.get("pretrain.train.max_steps") == 0 or combo.get("pretrain.train.epochs") == 0


def _finetune_sets(combo: dict[str, Any]) -> tuple[str, ...]:
    """The finetune's settings; without pretraining the architecture and tokenizer are its own."""
    scratch = _scratch(combo)
    keep = [k for k in combo if "finetune" in route(k)
            or (scratch and not k.startswith("pretrain.") and _strip(k).startswith(("model.", "tokenizer.")))]
    return tuple(_setting(k, combo[k]) for k in keep)


def plan(spec: SweepSpec) -> list[Job]:
    """Expand the spec into jobs (one per distinct pretraining), names derived from the varying values."""
    combos = combinations(spec)
    for combo in combos:
        for key in combo:
            route(key)
    varying = _varying(combos)
    pre_keys = [k for k in varying if "pretrain" in route(k)]
    jobs: dict[str, dict] = {}
    baselines: dict[str, tuple[str, str]] = {}
    for combo in combos:
        pre = _name(f"{spec.name}-{'scratch' if _scratch(combo) else 'pre'}", combo, pre_keys)
        ft = _name(spec.name, combo, varying)
        job = jobs.setdefault(pre, {"sets": tuple(_setting(k, v) for k, v in combo.items() if "pretrain" in route(k)),
                                    "finetunes": [], "baselines": [], "pretrained": not _scratch(combo)})
        if any(f.name == ft for f in job["finetunes"]):
            raise ConfigError(f"sweep '{spec.name}': two combinations are both named {ft}; make the values distinct")
        seed = int(combo.get("seed", combo.get("finetune.seed", 0)))
        job["finetunes"].append(Finetune(ft, _finetune_sets(combo), seed, not _scratch(combo)))
        data_key = _baseline_key(combo)
        if spec.baseline and data_key not in baselines:
            suffix = hashlib.sha1(data_key.encode()).hexdigest()[:6]
            baselines[data_key] = (f"{spec.name}-tfidf-{suffix}", ft)
            job["baselines"].append(baselines[data_key])
    return [Job(n, j["sets"], tuple(j["finetunes"]), tuple(j["baselines"]), j["pretrained"]) for n, j in jobs.items()]


def load_spec(path: str | Path) -> tuple[SweepSpec, Path]:
    path = Path(path)
    spec = structure(load_yaml(path), SweepSpec, root=path.name)
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", spec.name):
        raise ConfigError(f"{path.name}: name {spec.name!r} must use letters, digits, '.', '_' or '-'")
    plan(spec)  # every key routable, every grid value a list, names distinct
    for split in spec.eval_splits:
        if split not in ("validation", "test"):
            raise ConfigError(f"{path.name}: eval_splits: unknown split '{split}'; use validation and/or test")
    return spec, path.parent.resolve()


def _template(value: str | None, base: Path) -> str | None:
    if value is None:
        return None
    p = Path(value).expanduser()
    p = p if p.is_absolute() else base / p
    if not p.is_file():
        raise ConfigError(f"sweep template {value} not found (looked at {p})")
    return str(p)


# ----------------------------------------------------------------------------- running one job
def state(exp_dir: Path) -> str:
    """new | finished | failed | resume (interrupted or killed with a checkpoint to continue from)."""
    status = (read_json(exp_dir / "status.json") or {}).get("status")
    if status in ("finished", "failed"):
        return status
    if status is None:
        return "new"
    return "resume" if any(exp_dir.glob("ckpt_*.pt")) else "restart"


def _fingerprint(template: str | None, sets: tuple[str, ...]) -> str:
    text = Path(template).read_text(encoding="utf-8") if template else "builtin"
    return hashlib.sha1(json.dumps([text, list(sets)]).encode()).hexdigest()


def ensure_config(kind: str, name: str, template: str | None, sets: tuple[str, ...], root: Path,
                  pretrained: bool = True) -> Path:
    """Create the experiment's config.yaml once; refuse if the spec changed since (sweep.json fingerprint)."""
    from ..train import experiment_dir, init_experiment

    exp = experiment_dir(kind, name, root)
    mark = exp / "sweep.json"
    fp = _fingerprint(template, sets)
    if (exp / "config.yaml").exists():
        old = (read_json(mark) or {}).get("fingerprint")
        if old != fp:
            raise EffxError(f"{kind}/{name} exists with other settings than this sweep spec; delete {exp} "
                            f"or rename the sweep")
        return exp
    init_experiment(name, root=root, template=template, sets=sets, finetune=(kind == "finetune"), pretrained=pretrained)
    write_json(mark, {"fingerprint": fp, "sets": list(sets), "omp_num_threads": os.environ.get("OMP_NUM_THREADS")})
    return exp


def fresh_process(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` in a new interpreter (spawned, not forked): its result, or its exception.

    A new interpreter is exactly what a standalone ``effx`` command runs in, so the peak memory a run
    records in a sweep equals the one it records on its own (a fork would inherit the parent's
    resident pages, or leave the library pages it never touches uncounted).
    """
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            return pool.submit(fn, *args, **kwargs).result()
        except BrokenProcessPool:
            raise EffxError("its process died without a word (killed by the system, e.g. out of memory)") from None


def _train(kind: str, exp: Path, run, retry_failed: bool, log) -> bool:
    """Run or continue one training; True if it is finished afterwards."""
    st = state(exp)
    if st == "finished":
        log(f"skip {kind}/{exp.name}: finished")
        return True
    if st == "failed" and not retry_failed:
        log(f"skip {kind}/{exp.name}: failed earlier ({(read_json(exp / 'status.json') or {}).get('cause')}); "
            f"use --retry-failed to run it again")
        return False
    log(f"{'resume' if st == 'resume' else 'run'} {kind}/{exp.name}")
    try:
        run(resume=(st == "resume"), overwrite=st in ("failed", "restart"))
    except EffxError as exc:
        log(f"{kind}/{exp.name} failed: {exc}")
        return False
    return True


def _evaluate(ft: Finetune, splits: list[str], root: Path, log) -> bool:
    from .evaluate import evaluate

    exp = root / "finetune" / ft.name
    done = ((read_json(exp / "eval.json") or {}).get("results") or {})
    ok = True
    for split in splits:
        if split in done:
            continue
        try:
            fresh_process(evaluate, ft.name, split=split, root=root)
            log(f"eval finetune/{ft.name} on {split}")
        except EffxError as exc:
            log(f"eval finetune/{ft.name} on {split} failed: {exc}")
            ok = False
    return ok


def baseline_like(name: str, like: str, root: Path) -> None:
    """Make the baseline's config from finetune ``like`` and train it (one call: runs in a fresh process)."""
    from .baseline import make_config, run_baseline

    cfg, labels = make_config(like=like, root=root)
    run_baseline(name, cfg, labels, root=root)


def _baseline(name: str, like: str, root: Path, retry_failed: bool, log) -> bool:
    from .baseline import baseline_dir

    st = state(baseline_dir(name, root))
    if st == "finished" or (st == "failed" and not retry_failed):
        log(f"skip baseline/{name}: {st}")
        return st == "finished"
    try:
        fresh_process(baseline_like, name, like, root)
        log(f"baseline/{name} (like {like})")
        return True
    except EffxError as exc:
        log(f"baseline/{name} failed: {exc}")
        return False


def _pretrain(job: Job, template: str | None, root: Path, retry_failed: bool, log) -> bool:
    from ..train import run_pretrain

    pre = ensure_config("pretrain", job.name, template, job.sets, root)
    return _train("pretrain", pre, lambda **kw: fresh_process(run_pretrain, job.name, root=root, **kw), retry_failed, log)


def run_job(spec: SweepSpec, spec_dir: Path, job: Job, root: Path, retry_failed: bool = False, log=print) -> bool:
    """Pretrain (or continue), then each finetune, its evaluations and its baseline, each in a fresh
    process. True if all succeeded."""
    from ..train import run_finetune

    pre_t, ft_t = _template(spec.pretrain_template, spec_dir), _template(spec.finetune_template, spec_dir)
    if job.pretrained and not _pretrain(job, pre_t, root, retry_failed, log):
        log(f"job {job.name}: pretraining not finished, its {len(job.finetunes)} finetune(s) wait")
        return False
    ok = True
    for ft in job.finetunes:
        exp = ensure_config("finetune", ft.name, ft_t, ft.sets, root, pretrained=ft.pretrained)
        source = job.name if ft.pretrained else None
        run = lambda ft=ft, source=source, **kw: fresh_process(  # noqa: E731
            run_finetune, ft.name, source, "best", root=root, **kw)
        done = _train("finetune", exp, run, retry_failed, log)
        ok = done and _evaluate(ft, spec.eval_splits, root, log) and ok
    for name, like in job.baselines:
        ok = _baseline(name, like, root, retry_failed, log) and ok
    return ok


# ----------------------------------------------------------------------------- running the sweep
def job_command(spec_path: Path, job: Job, root: Path, retry_failed: bool) -> list[str]:
    cmd = [sys.executable, "-m", "effx_cli.main", "sweep", str(spec_path), "--job", job.name, "--root", str(root)]
    return cmd + (["--retry-failed"] if retry_failed else [])


def _spawn(cmd: list[str], log_path: Path, threads: int) -> int:
    env = {**os.environ}
    env.setdefault("OMP_NUM_THREADS", str(threads))  # K jobs share the cores instead of oversubscribing
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as fh:
        return subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env).returncode


def run_sweep(spec_path: str | Path, jobs: int = 1, root: str | Path | None = None, retry_failed: bool = False,
              log=print) -> dict[str, int]:
    """Run every job of the spec, ``jobs`` at a time, each in its own process; ``job -> exit code``.

    ``log`` receives a line when each job starts and ends (with done/total and an ETA).
    """
    from ..train import resolve_root
    from .sweep_progress import SweepProgress

    spec_path = Path(spec_path).resolve()
    spec, _ = load_spec(spec_path)
    planned = plan(spec)
    root = resolve_root(root)
    logs = root / "sweeps" / spec.name
    threads = max(1, (os.cpu_count() or 1) // max(1, jobs))
    log(f"sweep {spec.name}: {len(planned)} job(s), {sum(len(j.finetunes) for j in planned)} finetune(s), "
        f"{jobs} at a time; logs in {logs}")
    progress = SweepProgress(len(planned), jobs, log)

    def one(job: Job) -> int:
        where = logs / f"{job.name}.log"
        progress.start(job.name, where)
        code = _spawn(job_command(spec_path, job, root, retry_failed), where, threads)
        progress.finish(job.name, code, where)
        return code

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        codes = dict(zip([j.name for j in planned], pool.map(one, planned)))
    for name, code in codes.items():
        where = logs / f"{name}.log"
        log(f"  {name}: " + ("ok" if code == 0 else f"exit {code} (see {where})"))
    return codes
