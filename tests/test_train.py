"""Pretraining and finetuning end to end on tiny configs: files, metrics, failures, inheritance."""
from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from test_train_helpers import ft_sets, losses, make_data, rows, set_env, tiny_sets  # noqa: E402

from effx.errors import ConfigError  # noqa: E402
from effx.train import (  # noqa: E402
    TrainingFailed, experiment_dir, init_experiment, load_for_inference, run_finetune, run_pretrain,
)
from effx.train.optim import lr_factor  # noqa: E402


@pytest.fixture()
def env(tmp_path, monkeypatch):
    set_env(monkeypatch)
    return tmp_path, make_data(tmp_path / "data")


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """One tiny pretraining run shared by the finetune tests (root, data, result)."""
    mp = pytest.MonkeyPatch()
    set_env(mp)
    root = tmp_path_factory.mktemp("shared")
    data = make_data(root / "data")
    init_experiment("pre", root=root, sets=tiny_sets(data, **{"train.max_steps": 6, "train.eval_every_steps": 4}))
    result = run_pretrain("pre", root=root)
    yield root, data, result
    mp.undo()


def test_pretrain_writes_every_artefact(pretrained):
    root, _, result = pretrained
    exp = experiment_dir("pretrain", "pre", root)
    assert result.status == "finished" and result.step == 6
    for name in ("config.yaml", "resolved_config.yaml", "tokenizer.json", "metrics.csv", "events.jsonl",
                 "status.json", "run_info.json", "logs/train.log", "ckpt_best.pt", "ckpt_last.pt", "ckpt_step6.pt"):
        assert (exp / name).is_file(), name
    status = json.loads((exp / "status.json").read_text())
    assert status["status"] == "finished" and status["step"] == 6 and status["cause"] is None
    info = json.loads((exp / "run_info.json").read_text())
    assert info["seed"] == 0 and info["dtype"] == "fp32" and info["device"]["type"] == "cpu"
    assert info["versions"]["torch"] == torch.__version__ and info["num_parameters"] > 0
    assert {p["name"] for p in info["plugins"]} >= {"sdpa", "sin", "mlm", "classification"}
    train = rows(exp)
    assert [int(r["step"]) for r in train] == [1, 2, 3, 4, 5, 6]
    first = float(train[0]["loss"])
    assert abs(first - math.log(400)) < 1.0  # untrained MLM loss ~ ln(vocab)
    assert all(r["mem_kind"] == "cpu_rss" and float(r["peak_mem_MiB"]) > 0 for r in train)
    assert all(float(r["tokens_per_s"]) > 0 for r in train)
    val = rows(exp, "validation")
    assert [int(r["step"]) for r in val] == [4, 6]  # eval_every_steps, then the end of training
    assert val[0]["time_per_epoch_s"] == "" and val[1]["time_per_epoch_s"] == ""  # 6 of 24 steps: no full epoch
    assert all(r["AUROC"] == "" and float(r["loss"]) > 0 for r in val)
    events = [json.loads(line) for line in (exp / "events.jsonl").read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "finished" and "checkpoint" in kinds
    data_event = next(e for e in events if e["event"] == "data")
    assert 0.0 <= data_event["unk_rate_validation"] < 0.05


def test_loss_goes_down_with_training(env):
    root, data = env
    init_experiment("p", root=root, sets=tiny_sets(data, **{"train.epochs": 3, "train.optimizer.lr": 0.003}))
    run_pretrain("p", root=root)
    val = [float(r["loss"]) for r in rows(root / "pretrain" / "p", "validation") if int(r["step"]) % 24 == 0]
    first_train = float(rows(root / "pretrain" / "p")[0]["loss"])
    assert len(val) == 3 and val[0] > val[1] > val[2] and val[-1] < first_train - 0.3


def test_grad_accumulation_checkpointing_workers_equal_big_batch(env):
    """Accumulating 2 x 4 examples, with gradient checkpointing and a DataLoader worker, gives the
    same per-step losses as one batch of 8 (the loss is normalised by the step's total count)."""
    root, data = env
    common = {"model.dropout": 0.0, "train.max_steps": 4}
    init_experiment("big", root=root, sets=tiny_sets(data, True, **common, **{"train.batch_size": 8}))
    init_experiment("acc", root=root, sets=tiny_sets(data, True, **common, **{
        "train.batch_size": 4, "train.grad_accum_steps": 2, "model.gradient_checkpointing": True,
        "data.num_workers": 1}))
    run_pretrain("big", root=root)
    run_pretrain("acc", root=root)
    a, b = losses(root / "pretrain" / "big"), losses(root / "pretrain" / "acc")
    assert list(a) == [1, 2, 3, 4]
    np.testing.assert_allclose([a[s] for s in a], [b[s] for s in a], rtol=1e-5)


def test_huge_lr_nan_marks_failed(env):
    root, data = env
    init_experiment("nan", root=root, sets=tiny_sets(data, **{"train.optimizer.name": "sgd",
                                                              "train.optimizer.lr": 1e30,
                                                              "train.clip_grad_norm": None}))
    with pytest.raises(TrainingFailed, match="NaN|nan|inf"):
        run_pretrain("nan", root=root)
    exp = root / "pretrain" / "nan"
    status = json.loads((exp / "status.json").read_text())
    assert status["status"] == "failed" and ("nan" in status["cause"].lower() or "inf" in status["cause"])
    last = json.loads((exp / "events.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "failed" and last["cause"] == status["cause"]


@pytest.mark.slow
def test_nan_with_clipping_set_is_reported_once_with_advice_that_applies(env):
    """Clipping cannot stop lr=1e30: the parameters blow up after step 1 and the loss of step 2 is not finite."""
    from test_train_helpers import run_effx

    root, data = env
    sets = tiny_sets(data, **{"train.optimizer.name": "sgd", "train.optimizer.lr": 1e30, "train.clip_grad_norm": 1.0})
    init_experiment("nanclip", root=root, sets=sets)
    res = run_effx(root, "pretrain", "-exp", "nanclip")
    assert res.returncode == 1
    status = json.loads((root / "pretrain" / "nanclip" / "status.json").read_text())
    cause = status["cause"]
    assert status["status"] == "failed" and "clip_grad_norm" not in cause and "lower train.optimizer.lr" in cause
    assert f"at step {status['step']};" in cause  # status.json and the cause name the same step
    assert (res.stdout + res.stderr).count(cause) == 1, res.stdout + res.stderr
    assert cause in (root / "pretrain" / "nanclip" / "logs" / "train.log").read_text()


def test_out_of_memory_marks_failed(env, monkeypatch):
    from effx.train.loop import Trainer

    def boom(self, micro):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Trainer, "train_step", boom)
    root, data = env
    init_experiment("oom", root=root, sets=tiny_sets(data))
    with pytest.raises(TrainingFailed, match="out of memory"):
        run_pretrain("oom", root=root)
    status = json.loads((root / "pretrain" / "oom" / "status.json").read_text())
    assert status["status"] == "failed" and "out of memory" in status["cause"]
    assert "batch_size" in status["cause"]


@pytest.mark.parametrize("bucketing", [False, True])
def test_epoch_batches_are_seeded_split_over_ranks_and_complete(bucketing):
    from effx.train.loop import epoch_batches

    lengths = list(np.random.default_rng(0).integers(3, 60, size=103))
    one = epoch_batches(103, lengths, 8, seed=5, epoch=2, bucketing=bucketing, rank=0, world=1)
    assert one == epoch_batches(103, lengths, 8, seed=5, epoch=2, bucketing=bucketing, rank=0, world=1)
    assert one != epoch_batches(103, lengths, 8, seed=5, epoch=3, bucketing=bucketing, rank=0, world=1)
    assert len(one) == 12 and all(len(b) == 8 for b in one)  # 103 // 8 full batches, the rest dropped
    flat = [i for b in one for i in b]
    assert len(set(flat)) == len(flat) == 96
    r0, r1 = (epoch_batches(103, lengths, 8, 5, 2, bucketing, rank, 2) for rank in (0, 1))
    assert [sorted(a + b) for a, b in zip(r0, r1)] == [sorted(b) for b in one]  # ranks split each global batch
    if bucketing:  # similar lengths share a batch
        spread = np.mean([np.ptp([lengths[i] for i in b]) for b in one])
        assert spread < 0.5 * np.ptp(lengths)


@pytest.mark.parametrize("name", ["linear", "cosine", "constant"])
def test_schedules_with_warmup(name):
    f = [lr_factor(s, name, warmup=4, total=20) for s in range(20)]
    assert f[:4] == [0.25, 0.5, 0.75, 1.0]
    if name == "constant":
        assert f[4:] == [1.0] * 16
    else:
        assert all(x > y for x, y in zip(f[4:], f[5:]))  # strictly decreasing after warmup
        assert f[-1] < 0.1
    if name == "cosine":
        assert f[12] == pytest.approx(0.5)  # half way through the decay


@pytest.mark.parametrize("opt", ["adam", "sgd"])
def test_other_optimizers_and_bf16_train(env, opt):
    root, data = env
    init_experiment("o", root=root, sets=tiny_sets(data, **{"train.optimizer.name": opt, "train.max_steps": 2,
                                                            "train.dtype": "bf16"}))
    run_pretrain("o", root=root)
    payload = torch.load(root / "pretrain" / "o" / "ckpt_last.pt", weights_only=True)
    state = payload["optimizer"]["state"]
    assert any("exp_avg" in v for v in state.values()) == (opt == "adam")  # SGD without momentum: no state
    assert payload["config"]["train"]["dtype"] == "bf16"


def test_fp16_on_cpu_is_refused_before_anything_is_written(env):
    """One fp16-on-CPU rule (effx.train.precision.check_fp16): refused in training as in the bench."""
    root, data = env
    init_experiment("h", root=root, sets=tiny_sets(data, **{"train.max_steps": 2, "train.dtype": "fp16",
                                                           "train.device": "cpu"}))
    exp = root / "pretrain" / "h"
    before = sorted(p.name for p in exp.iterdir())
    with pytest.raises(ConfigError, match="train.dtype fp16 on CPU is refused.*use bf16"):
        run_pretrain("h", root=root)
    assert sorted(p.name for p in exp.iterdir()) == before


def test_finetune_inherits_architecture_and_writes_resolved_config(pretrained):
    root, data, _ = pretrained
    init_experiment("ft", root=root, finetune=True, sets=ft_sets(data, **{"train.max_steps": 4}))
    result = run_finetune("ft", "pre", "best", root=root)
    exp = root / "finetune" / "ft"
    resolved = yaml.safe_load((exp / "resolved_config.yaml").read_text())
    pre_cfg = yaml.safe_load((root / "pretrain" / "pre" / "config.yaml").read_text())
    assert resolved["model"] == pre_cfg["model"] and resolved["tokenizer"] == pre_cfg["tokenizer"]
    assert resolved["head"]["type"] == "classification" and resolved["head"]["num_classes"] == 4
    from effx.train.checkpoint import sha256

    ref = resolved["pretrain"]
    assert ref["name"] == "pre" and Path(ref["checkpoint"]).name == "ckpt_best.pt"
    assert ref["sha256"] == sha256(root / "pretrain" / "pre" / "ckpt_best.pt")
    assert json.loads((exp / "labels.json").read_text()) == ["0", "1", "2", "3"]
    assert (exp / "tokenizer.json").read_text() == (root / "pretrain" / "pre" / "tokenizer.json").read_text()
    head = torch.load(exp / "head.pt", weights_only=True)
    assert head["proj.weight"].shape == (4, 32)
    val = rows(exp, "validation")[-1]
    for col in ("accuracy", "macro_F1", "weighted_F1", "AUROC"):
        assert 0.0 <= float(val[col]) <= 1.0
    # encoder weights really came from the pretraining checkpoint (before finetuning moved them)
    pre = torch.load(root / "pretrain" / "pre" / "ckpt_best.pt", weights_only=True)["model"]
    ft0 = torch.load(exp / "ckpt_last.pt", weights_only=True)["model"]
    delta = (ft0["encoder.tok.weight"] - pre["encoder.tok.weight"]).abs().max()
    assert 0 < float(delta) < 0.05  # a few small steps away from the pretrained embedding, not a fresh init
    assert result.validation["loss"] == pytest.approx(float(val["loss"]), rel=1e-4)


def test_load_for_inference_reproduces_validation_accuracy(pretrained):
    root, data, _ = pretrained
    exp = root / "finetune" / "ft"
    if not exp.exists():
        init_experiment("ft", root=root, finetune=True, sets=ft_sets(data, **{"train.max_steps": 4}))
        run_finetune("ft", "pre", "best", root=root)
    inf = load_for_inference(exp, "last")
    assert not inf.model.training and inf.label_names == ["0", "1", "2", "3"]
    assert inf.checkpoint_path.name == "ckpt_last.pt" and inf.config.head.config.num_classes == 4
    from effx.data import PadCollator, encode
    import csv

    with open(data["validation"], newline="") as fh:
        recs = list(csv.DictReader(fh))
    batch = PadCollator(0)([{"input_ids": ids, "label": int(r["label"]), "idx": i}
                            for i, (ids, r) in enumerate(zip(encode(inf.tokenizer, [r["text"] for r in recs], 32), recs))])
    with torch.no_grad():
        pred = inf.model(batch["input_ids"], batch["attention_mask"]).argmax(-1)
    acc = float((pred == batch["labels"]).float().mean())
    assert acc == pytest.approx(float(rows(exp, "validation")[-1]["accuracy"]), abs=1e-6)


def test_finetune_rejects_changed_architecture_key(pretrained):
    root, data, _ = pretrained
    init_experiment("bad", root=root, finetune=True, sets=ft_sets(data))
    cfg_path = root / "finetune" / "bad" / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["model"] = {"d_model": 64}
    cfg_path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=r"model\.d_model cannot differ from pretrain/pre \(32 there, 64 here\)"):
        run_finetune("bad", "pre", root=root)
    cfg["model"] = {"d_model": 32}  # equal to the inherited value: accepted
    cfg["tokenizer"] = {"lowercase": False}
    cfg_path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=r"tokenizer\.lowercase cannot differ"):
        run_finetune("bad", "pre", root=root)
    cfg.pop("model"), cfg.pop("tokenizer")
    cfg["optimizer"] = {"lr": 1.0}
    cfg_path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="'optimizer' is not a finetune setting"):
        run_finetune("bad", "pre", root=root)
    assert not (root / "finetune" / "bad" / "status.json").exists()  # nothing started


def test_finetune_head_shape_mismatch_reinitialised_with_warning(pretrained):
    root, data, _ = pretrained
    if not (root / "finetune" / "ft" / "ckpt_last.pt").exists():
        init_experiment("ft", root=root, finetune=True, sets=ft_sets(data, **{"train.max_steps": 4}))
        run_finetune("ft", "pre", "best", root=root)
    two = make_data(root / "data2", classes=(1, 2))
    init_experiment("ft2", root=root, finetune=True, sets=ft_sets(two, **{"train.max_steps": 2, "head.num_classes": 2}))
    run_finetune("ft2", "pre", str(root / "finetune" / "ft" / "ckpt_last.pt"), root=root)
    log = (root / "finetune" / "ft2" / "logs" / "train.log").read_text()
    assert "WARNING head shape differs" in log and "head.proj.weight is (4, 32) there and (2, 32) here" in log
    events = [json.loads(x) for x in (root / "finetune" / "ft2" / "events.jsonl").read_text().splitlines()]
    assert any(e["event"] == "head_init" and e["outcome"] == "reinitialised" for e in events)
    # same shape: the head is taken over from the checkpoint
    init_experiment("ft3", root=root, finetune=True, sets=ft_sets(data, **{"train.max_steps": 1}))
    run_finetune("ft3", "pre", str(root / "finetune" / "ft" / "ckpt_last.pt"), root=root)
    assert "head weights loaded" in (root / "finetune" / "ft3" / "logs" / "train.log").read_text()


def test_finetune_num_classes_must_match_labels(pretrained):
    root, data, _ = pretrained
    init_experiment("k", root=root, finetune=True, sets=ft_sets(data, **{"head.num_classes": 3}))
    with pytest.raises(ConfigError, match="head.num_classes is 3 but the training data has 4 labels"):
        run_finetune("k", "pre", root=root)


def test_rerun_without_resume_refused_then_overwrite(pretrained):
    root, _, _ = pretrained
    with pytest.raises(ConfigError, match="already has a run .*-resume.*--overwrite"):
        run_pretrain("pre", root=root)


def test_wandb_offline_keeps_run_id_across_resume_and_logs_artifacts(env, monkeypatch):
    root, data = env
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    init_experiment("w", root=root, sets=tiny_sets(data, **{"logging.wandb.mode": "offline", "train.max_steps": 2}))
    run_pretrain("w", root=root)
    exp = root / "pretrain" / "w"
    run_id = (exp / "wandb_run_id.txt").read_text().strip()
    cfg = exp / "config.yaml"
    cfg.write_text(cfg.read_text().replace("max_steps: 2", "max_steps: 3"))
    run_pretrain("w", root=root, resume=True)
    assert (exp / "wandb_run_id.txt").read_text().strip() == run_id
    runs = sorted((exp / "wandb").glob("offline-run-*"))
    # wandb names a run's folder offline-run-<time>-<id>, adding -1, -2 … when two
    # starts fall in the same second.
    ids = [re.fullmatch(r"offline-run-\d{8}_\d{6}-([a-z0-9]+)(?:-\d+)?", r.name) for r in runs]
    assert len(runs) == 2 and all(m is not None and m.group(1) == run_id for m in ids)
    logged = b"".join(p.read_bytes() for r in runs for p in r.glob("*.wandb"))
    assert b"pretrain-w-best" in logged and b"train/loss" in logged


def test_finetune_resume_continues_and_keeps_pretrain_reference(pretrained):
    root, data, _ = pretrained
    init_experiment("fr", root=root, finetune=True, sets=ft_sets(data, **{"train.max_steps": 2}))
    run_finetune("fr", "pre", "last", root=root)
    exp = root / "finetune" / "fr"
    first_ref = yaml.safe_load((exp / "resolved_config.yaml").read_text())["pretrain"]
    cfg = exp / "config.yaml"
    cfg.write_text(cfg.read_text().replace("max_steps: 2", "max_steps: 4"))
    with pytest.raises(ConfigError, match="was started from pretrain/pre, not other"):
        init_experiment("other", root=root, sets=tiny_sets(data))
        run_finetune("fr", "other", root=root, resume=True)
    result = run_finetune("fr", "pre", root=root, resume=True)
    assert result.step == 4 and sorted(losses(exp)) == [1, 2, 3, 4]
    assert yaml.safe_load((exp / "resolved_config.yaml").read_text())["pretrain"] == first_ref
    assert Path(first_ref["checkpoint"]).name == "ckpt_last.pt"
