import os
import pytest

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")


def tiny_sweep_fixed(train_samples: int, eval_samples: int) -> dict:
    """The ``fixed:`` block of a sweep spec for a tiny, fast model on the shipped sample."""
    return {
        "model.d_model": 32, "model.n_layers": 1, "model.n_heads": 2, "model.d_ff": 64,
        "model.vocab_size": 400, "tokenizer.vocab_size": 400, "model.max_seq_len": 64, "data.max_length": 64,
        "data.validation": None,  # carved from train with the seed: a baseline must match it
        "data.max_train_samples": train_samples, "data.max_eval_samples": eval_samples,
        "train.epochs": 1, "train.batch_size": 32, "logging.progress_bar": False,
    }


@pytest.fixture(scope="session")
def tiny_fixed():
    """:func:`tiny_sweep_fixed`, for tests that write sweep specs."""
    return tiny_sweep_fixed
