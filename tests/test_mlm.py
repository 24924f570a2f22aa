"""MLM masking: the 80/10/10 split (statistical), special/padding tokens never selected, BERT vs RoBERTa
epochs, and masks as a pure function of (seed, epoch, idx)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from effx.config import MLMConfig
from effx.data import IGNORE_INDEX, SPECIAL, EncodedDataset, MLMCollator, mask_tokens
from effx.errors import ConfigError

VOCAB = 1000


def corpus(n_seq: int = 1000, body: int = 100, seed: int = 0) -> EncodedDataset:
    """Sequences [CLS] body [SEP] of varied length, with [UNK] and [MASK] ids sprinkled in the body."""
    rng = np.random.default_rng(seed)
    seqs = []
    for _ in range(n_seq):
        n = int(rng.integers(body // 2, body + 1))
        ids = rng.integers(5, VOCAB, size=n)
        ids[rng.random(n) < 0.03] = SPECIAL["unk"]
        ids[rng.random(n) < 0.02] = SPECIAL["mask"]
        seqs.append([SPECIAL["cls"], *ids.tolist(), SPECIAL["sep"]])
    return EncodedDataset(seqs)


def within(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    """``count`` is inside ``n*p +- sigmas*sd`` of a Binomial(n, p)."""
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def collate_all(coll: MLMCollator, ds: EncodedDataset, batch: int = 64) -> list[dict[str, torch.Tensor]]:
    return [coll([ds[i] for i in range(s, min(s + batch, len(ds)))]) for s in range(0, len(ds), batch)]


def test_80_10_10_split_and_15_percent_selection_statistically():
    ds = corpus(2000, 100)  # about 145k candidate tokens
    cfg = MLMConfig(mask_prob=0.15, mask_token_frac=0.8, random_token_frac=0.1)
    batches = collate_all(MLMCollator(VOCAB, cfg, seed=123), ds)
    n_cand = n_sel = n_mask = n_rand = n_same = 0
    for b in batches:
        orig = torch.full_like(b["input_ids"], SPECIAL["pad"])
        for row, i in enumerate(b["idx"].tolist()):
            orig[row, : len(ds.ids[i])] = torch.tensor(ds.ids[i])
        cand = orig >= 5
        sel = b["labels"] != IGNORE_INDEX
        assert torch.equal(b["labels"][sel], orig[sel])  # labels are the original ids
        n_cand += int(cand.sum())
        n_sel += int(sel.sum())
        n_mask += int((sel & (b["input_ids"] == SPECIAL["mask"])).sum())
        n_rand += int((sel & (b["input_ids"] != SPECIAL["mask"]) & (b["input_ids"] != orig)).sum())
        n_same += int((sel & (b["input_ids"] == orig)).sum())
        assert not (sel & ~cand).any()  # [PAD] [UNK] [CLS] [SEP] [MASK] never selected
        assert torch.equal(b["input_ids"][~sel], orig[~sel])  # unselected tokens untouched
    assert n_cand > 100_000
    assert within(n_sel, n_cand, 0.15), (n_sel, n_cand)
    # a random replacement equal to the original (1 in 995) counts as unchanged
    p_coincide = 1 / (VOCAB - 5)
    assert within(n_mask, n_sel, 0.8), n_mask / n_sel
    assert within(n_rand, n_sel, 0.1 * (1 - p_coincide)), n_rand / n_sel
    assert within(n_same, n_sel, 0.1 + 0.1 * p_coincide), n_same / n_sel
    assert n_mask + n_rand + n_same == n_sel


def test_selection_rate_follows_config():
    ds = corpus(500, 100)
    cfg = MLMConfig(mask_prob=0.3, mask_token_frac=0.5, random_token_frac=0.5)
    b = collate_all(MLMCollator(VOCAB, cfg, seed=1), ds, batch=500)[0]
    cand = b["labels"] != IGNORE_INDEX
    n_cand = sum(sum(1 for t in s if t >= 5) for s in ds.ids)
    assert within(int(cand.sum()), n_cand, 0.3)
    kept = int((cand & (b["input_ids"] == b["labels"])).sum())
    assert kept <= 0.01 * int(cand.sum())  # unchanged only by coincidence of the random draw


def test_random_tokens_are_never_special_and_cover_the_vocab():
    ds = corpus(300, 100)
    cfg = MLMConfig(mask_prob=0.5, mask_token_frac=0.0, random_token_frac=1.0)
    b = collate_all(MLMCollator(VOCAB, cfg, seed=7), ds, batch=300)[0]
    sel = b["labels"] != IGNORE_INDEX
    replaced = b["input_ids"][sel]
    assert int(replaced.min()) >= 5 and int(replaced.max()) < VOCAB
    assert len(set(replaced.tolist())) > 0.9 * (VOCAB - 5)  # ~12k uniform draws hit nearly every id


def test_padding_positions_never_selected_with_static_padding():
    ds = corpus(200, 40)
    b = collate_all(MLMCollator(VOCAB, MLMConfig(mask_prob=1.0), seed=0, pad_to=128), ds, batch=200)[0]
    assert b["input_ids"].shape == (200, 128)
    pad = ~b["attention_mask"]
    assert pad.any()
    assert (b["labels"][pad] == IGNORE_INDEX).all() and (b["input_ids"][pad] == SPECIAL["pad"]).all()
    specials = torch.zeros_like(pad)
    for row, i in enumerate(b["idx"].tolist()):
        specials[row, : len(ds.ids[i])] = torch.tensor(ds.ids[i]) < 5
    assert (b["labels"][specials] == IGNORE_INDEX).all()
    assert (b["labels"][~pad & ~specials] != IGNORE_INDEX).all()  # mask_prob 1: every real token selected


def test_bert_mode_masks_once_roberta_re_masks_each_epoch():
    ds = corpus(64, 60)
    examples = [ds[i] for i in range(len(ds))]
    out = {}
    for mode in ("bert", "roberta"):
        coll = MLMCollator(VOCAB, MLMConfig(mode=mode), seed=5)
        per_epoch = []
        for epoch in range(3):
            coll.set_epoch(epoch)
            per_epoch.append(coll(examples))
        out[mode] = per_epoch
    for e in (1, 2):
        assert torch.equal(out["bert"][e]["input_ids"], out["bert"][0]["input_ids"])
        assert torch.equal(out["bert"][e]["labels"], out["bert"][0]["labels"])
        assert not torch.equal(out["roberta"][e]["labels"], out["roberta"][0]["labels"])
    assert torch.equal(out["roberta"][0]["labels"], out["bert"][0]["labels"])  # epoch 0 is the same draw


def test_masking_is_a_pure_function_of_seed_epoch_idx():
    ds = corpus(40, 60)
    cfg = MLMConfig()
    a = MLMCollator(VOCAB, cfg, seed=9)
    a.set_epoch(3)
    full = a([ds[i] for i in range(40)])
    # a fresh collator (as after a crash), other batch composition and order, static padding
    b = MLMCollator(VOCAB, cfg, seed=9, pad_to=128)
    b.set_epoch(3)
    order = [17, 3, 39, 0]
    part = b([ds[i] for i in order])
    for row, i in enumerate(order):
        n = len(ds.ids[i])
        assert torch.equal(part["input_ids"][row, :n], full["input_ids"][i, :n])
        assert torch.equal(part["labels"][row, :n], full["labels"][i, :n])
    inputs, labels = mask_tokens(ds.ids[17], VOCAB, cfg, seed=9, epoch=3, idx=17)
    assert torch.equal(full["labels"][17, : len(labels)], torch.from_numpy(labels))
    other_seed = MLMCollator(VOCAB, cfg, seed=10)
    other_seed.set_epoch(3)
    assert not torch.equal(other_seed([ds[i] for i in range(40)])["labels"], full["labels"])
    # the same tokens at another index get another mask
    _, lab_other_idx = mask_tokens(ds.ids[17], VOCAB, cfg, seed=9, epoch=3, idx=18)
    assert not np.array_equal(lab_other_idx, labels)


def test_short_sequence_gets_exactly_one_prediction():
    for idx in range(50):
        _, labels = mask_tokens([SPECIAL["cls"], 42, SPECIAL["sep"]], VOCAB, MLMConfig(), seed=0, epoch=0, idx=idx)
        assert labels.tolist() == [IGNORE_INDEX, 42, IGNORE_INDEX]
    _, labels = mask_tokens([SPECIAL["cls"], SPECIAL["sep"]], VOCAB, MLMConfig(), seed=0, epoch=0, idx=0)
    assert (labels == IGNORE_INDEX).all()  # nothing to predict, nothing invented


def test_batch_keys_and_shapes():
    ds = corpus(8, 20)
    b = MLMCollator(VOCAB, MLMConfig(), seed=0)([ds[i] for i in range(8)])
    longest = max(len(s) for s in ds.ids)
    assert b["input_ids"].shape == b["labels"].shape == b["attention_mask"].shape == (8, longest)
    assert b["attention_mask"].dtype == torch.bool and b["labels"].dtype == torch.long
    assert b["idx"].tolist() == list(range(8))


@pytest.mark.parametrize("kw, msg", [
    (dict(mask_prob=0.0), r"mask_prob: must be in \(0, 1\], got 0.0"),  # the fields' declared bounds
    (dict(mask_token_frac=0.9, random_token_frac=0.2), r"random_token_frac: must be <= 1 - mask_token_frac"),
    (dict(random_token_frac=-0.1), r"random_token_frac: must be in \[0, 1\], got -0.1"),
])
def test_bad_mlm_config_is_config_error(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        MLMCollator(VOCAB, MLMConfig(**kw), seed=0)


def _tiny_mlm_model():
    import effx
    from effx.config import ModelConfig

    cfg = ModelConfig(vocab_size=VOCAB, d_model=32, n_layers=1, n_heads=2, d_ff=64, dropout=0.0, max_seq_len=128)
    torch.manual_seed(0)
    return effx.build_model(cfg, "mlm")


def test_mlm_loss_at_masked_positions_equals_the_full_vocabulary_loss():
    """Decoding only the masked rows gives the loss, count, accuracy and gradients of decoding every position."""
    import torch.nn.functional as F

    from effx.train.task import MLMTask

    model = _tiny_mlm_model()
    batch = MLMCollator(VOCAB, MLMConfig(), seed=3)([corpus(16, 60)[i] for i in range(16)])
    full = model(batch["input_ids"], batch["attention_mask"])  # (B, N, V): what was decoded before
    ref = F.cross_entropy(full.flatten(0, 1), batch["labels"].flatten(), ignore_index=IGNORE_INDEX, reduction="sum")
    ref.backward()
    ref_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    picked = model(batch["input_ids"], batch["attention_mask"], **MLMTask.forward_kwargs(batch))
    n_masked = int((batch["labels"] != IGNORE_INDEX).sum())
    assert picked.shape == (n_masked, VOCAB) and 0 < n_masked < batch["labels"].numel() // 4
    total, count = MLMTask.loss(picked, batch)
    torch.testing.assert_close(total, ref, rtol=1e-6, atol=1e-4)
    assert int(count) == n_masked
    assert MLMTask.eval_batch(picked, batch) == MLMTask.eval_batch(full, batch)
    total.backward()
    for g, g_ref in zip((p.grad for p in model.parameters()), ref_grads):
        torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-5)  # summation order differs


def test_pretraining_decodes_only_masked_positions(tmp_path, monkeypatch):
    """The trainer hands the MLM head the masked rows alone, in training and in validation."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_train_helpers import make_data, set_env, tiny_sets

    from effx.builtin.heads import MLMHead
    from effx.train import init_experiment, run_pretrain

    set_env(monkeypatch)
    shapes = []
    original = MLMHead.forward

    def spy(self, hidden, attention_mask):
        shapes.append(tuple(hidden.shape))
        return original(self, hidden, attention_mask)

    monkeypatch.setattr(MLMHead, "forward", spy)
    data = make_data(tmp_path / "data", n_train=48, n_val=16)
    init_experiment("pre", root=tmp_path, sets=tiny_sets(data, **{"train.max_steps": 3}))
    run_pretrain("pre", root=tmp_path)
    assert len(shapes) >= 4  # 3 training steps + at least one validation batch
    assert all(len(s) == 2 and s[1] == 32 for s in shapes), shapes  # (M, D), never (B, N, D)
