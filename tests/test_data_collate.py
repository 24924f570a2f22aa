"""Dynamic vs static padding, the encoded dataset, and the length-bucketed sampler."""
from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from effx.data import EncodedDataset, LengthBucketSampler, PadCollator
from effx.errors import EffxError, SequenceTooLongError


def seqs(lengths: list[int]) -> list[list[int]]:
    return [[2, *range(10, 10 + n - 2), 3] for n in lengths]


def test_dynamic_padding_pads_to_longest_in_batch():
    ds = EncodedDataset(seqs([5, 9, 3]), [0, 1, 2])
    b = PadCollator()([ds[0], ds[1], ds[2]])
    assert b["input_ids"].shape == (3, 9) and b["input_ids"].dtype == torch.long
    assert b["attention_mask"].dtype == torch.bool
    assert b["attention_mask"].sum(1).tolist() == [5, 9, 3]
    assert b["input_ids"][2].tolist() == [2, 10, 3, 0, 0, 0, 0, 0, 0]
    assert b["labels"].tolist() == [0, 1, 2] and b["idx"].tolist() == [0, 1, 2]
    assert PadCollator()([ds[0], ds[2]])["input_ids"].shape == (2, 5)  # next batch: its own longest


def test_static_padding_pads_every_batch_to_pad_to():
    ds = EncodedDataset(seqs([5, 9, 3]), [0, 1, 2])
    coll = PadCollator(pad_to=16)
    assert coll([ds[0]])["input_ids"].shape == (1, 16)
    b = coll([ds[1], ds[2]])
    assert b["input_ids"].shape == (2, 16) and b["attention_mask"].sum().item() == 12
    assert (b["input_ids"][~b["attention_mask"]] == 0).all()


def test_static_padding_shorter_than_a_sequence_is_an_error():
    ds = EncodedDataset(seqs([20]))
    with pytest.raises(SequenceTooLongError, match="20 tokens does not fit the static padding length 8"):
        PadCollator(pad_to=8)([ds[0]])


def test_custom_pad_id():
    ds = EncodedDataset(seqs([2, 4]))
    assert PadCollator(pad_id=7)([ds[0], ds[1]])["input_ids"][0].tolist() == [2, 3, 7, 7]


def test_encoded_dataset_items_and_label_count_check():
    ds = EncodedDataset(seqs([4, 6]), [1, 0])
    assert ds[1] == {"input_ids": seqs([6])[0], "label": 0, "idx": 1}
    assert ds.lengths == [4, 6] and len(ds) == 2
    assert EncodedDataset(seqs([4]))[0]["label"] == -1
    with pytest.raises(EffxError, match="2 token sequences but 1 labels"):
        EncodedDataset(seqs([4, 6]), [1])


def test_dataloader_with_dynamic_padding():
    ds = EncodedDataset(seqs([3, 8, 4, 5, 7]), [0, 1, 0, 1, 0])
    shapes = [b["input_ids"].shape for b in DataLoader(ds, batch_size=2, collate_fn=PadCollator())]
    assert shapes == [(2, 8), (2, 5), (1, 7)]


# ----------------------------------------------------------------------------- sampler
LENGTHS = [(i * 37) % 120 + 3 for i in range(1003)]


@pytest.mark.parametrize("drop_last", [False, True])
def test_bucket_sampler_covers_every_index_once_per_epoch(drop_last):
    s = LengthBucketSampler(LENGTHS, batch_size=16, seed=0, pool_batches=10, drop_last=drop_last)
    for epoch in range(3):
        s.set_epoch(epoch)
        batches = list(s)
        flat = [i for b in batches for i in b]
        assert len(batches) == len(s)
        assert len(flat) == len(set(flat))
        if drop_last:
            assert all(len(b) == 16 for b in batches) and len(flat) == len(LENGTHS) // 16 * 16
        else:
            assert sorted(flat) == list(range(len(LENGTHS)))


def test_bucket_sampler_is_seeded_deterministic_and_changes_with_epoch():
    a = LengthBucketSampler(LENGTHS, 16, seed=1)
    b = LengthBucketSampler(LENGTHS, 16, seed=1)
    c = LengthBucketSampler(LENGTHS, 16, seed=2)
    assert list(a) == list(b) != list(c)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    a.set_epoch(0)
    assert list(a) == first


def test_bucket_sampler_reduces_padding():
    def padded(batches):
        return sum(len(b) * max(LENGTHS[i] for i in b) for b in batches)

    s = LengthBucketSampler(LENGTHS, 16, seed=0)
    perm = torch.randperm(len(LENGTHS), generator=torch.Generator().manual_seed(0)).tolist()
    random_batches = [perm[i:i + 16] for i in range(0, len(perm), 16)]
    assert padded(list(s)) < 0.75 * padded(random_batches)
    assert padded(list(s)) >= sum(LENGTHS)


def test_bucket_sampler_splits_batches_across_replicas():
    ranks = [LengthBucketSampler(LENGTHS, 16, seed=3, num_replicas=2, rank=r) for r in (0, 1)]
    parts = [list(r) for r in ranks]
    assert len(parts[0]) == len(parts[1]) == len(ranks[0])
    seen = {i for p in parts for b in p for i in b}
    assert seen == set(range(len(LENGTHS)))
    with pytest.raises(EffxError, match="rank 2 is not in"):
        LengthBucketSampler(LENGTHS, 16, seed=0, num_replicas=2, rank=2)


def test_bucket_sampler_as_batch_sampler():
    ds = EncodedDataset(seqs(LENGTHS[:100]))
    loader = DataLoader(ds, batch_sampler=LengthBucketSampler(ds.lengths, 8, seed=0), collate_fn=PadCollator())
    idx = torch.cat([b["idx"] for b in loader])
    assert sorted(idx.tolist()) == list(range(100))
