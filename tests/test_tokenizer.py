"""WordPiece tokenizer: fixed special ids, [CLS]/[SEP], truncation, [UNK] rate, files."""
from __future__ import annotations


import pandas as pd
import pytest

from effx.config import TokenizerConfig
from effx.data import (
    SPECIAL,
    count_truncated,
    encode,
    encode_with_stats,
    load_tokenizer,
    save_tokenizer,
    tokenizer_from_str,
    tokenizer_to_str,
    train_tokenizer,
    unk_rate,
)
from effx.errors import EffxError
from effx.resources import SAMPLE_DIR

SAMPLE = SAMPLE_DIR


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return pd.read_csv(SAMPLE / "agnews_train.csv")["text"].tolist()[:600]


@pytest.fixture(scope="module")
def tok(texts):
    return train_tokenizer(texts, TokenizerConfig(vocab_size=1500, min_frequency=2))


def test_special_tokens_have_fixed_ids(tok):
    assert [tok.token_to_id(t) for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]] == [0, 1, 2, 3, 4]
    assert SPECIAL == {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}


def test_vocab_size_from_config_and_wordpiece_pieces(tok):
    assert tok.get_vocab_size() == 1500
    assert any(t.startswith("##") for t in tok.get_vocab())


def test_encoding_is_wrapped_in_cls_sep_and_lowercased(tok):
    enc = tok.encode("Reuters SAID the OIL Price")
    assert enc.ids[0] == SPECIAL["cls"] and enc.ids[-1] == SPECIAL["sep"]
    assert enc.tokens[0] == "[CLS]" and enc.tokens[-1] == "[SEP]"
    assert enc.tokens[1:5] == ["reuters", "said", "the", "oil"]  # frequent words, lower-cased
    assert "".join(t.removeprefix("##") for t in enc.tokens[5:-1]) == "price"  # word pieces


def test_ids_are_canonical_sorted_order(tok):
    inv = {i: t for t, i in tok.get_vocab().items()}
    rest = [inv[i] for i in range(5, tok.get_vocab_size())]
    words = [t for t in rest if not t.startswith("##")]
    assert rest == sorted(words) + sorted(t for t in rest if t.startswith("##"))  # trainer order would not be


def test_lowercase_off_keeps_case(texts):
    cased = train_tokenizer(texts, TokenizerConfig(vocab_size=800, lowercase=False))
    assert "Reuters" in cased.get_vocab() and "reuters" not in cased.get_vocab()


def test_truncation_counts_specials_and_reports_cut_texts(tok):
    long_text = "the oil price rose " * 50
    ids, cut = encode_with_stats(tok, [long_text, "oil"], max_length=16)
    assert len(ids[0]) == 16 and ids[0][0] == SPECIAL["cls"] and ids[0][-1] == SPECIAL["sep"]
    assert ids[1] == [SPECIAL["cls"], tok.token_to_id("oil"), SPECIAL["sep"]]
    assert cut == 1
    assert count_truncated(tok, [long_text, long_text, "oil"], 16) == 2
    assert encode(tok, [long_text], 300)[0] == tok.encode(long_text).ids  # no cut when it fits
    assert tok.truncation is None  # the tokenizer is left as it was


def test_max_length_below_two_is_an_error(tok):
    with pytest.raises(EffxError, match=r"data\.max_length must leave room"):
        encode(tok, ["x"], 1)


def test_unk_rate(tok):
    assert unk_rate(tok, ["the oil said"]) == 0.0
    # '\u2603' (snowman) never occurs in the training text: 1 of the 5 tokens is [UNK], specials not counted
    assert unk_rate(tok, ["the said \u2603 the", "the"]) == pytest.approx(0.2)
    assert unk_rate(tok, []) == 0.0


def test_save_load_roundtrip_is_atomic(tok, tmp_path):
    path = save_tokenizer(tok, tmp_path / "exp" / "tokenizer.json")
    assert [p.name for p in path.parent.iterdir()] == ["tokenizer.json"]  # no temporary left behind
    again = load_tokenizer(path)
    text = "Oil prices rose on Tuesday in Asia"
    assert again.encode(text).ids == tok.encode(text).ids
    assert tokenizer_from_str(tokenizer_to_str(tok)).encode(text).ids == tok.encode(text).ids


def test_corrupt_or_missing_tokenizer_file_is_one_line_error(tok, tmp_path):
    p = tmp_path / "tokenizer.json"
    p.write_text(tokenizer_to_str(tok)[:500], encoding="utf-8")  # truncated file
    with pytest.raises(EffxError, match=r"tokenizer file .* is corrupt .*retrain") as err:
        load_tokenizer(p)
    assert "\n" not in str(err.value)
    p.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(EffxError, match="corrupt"):
        load_tokenizer(p)
    with pytest.raises(EffxError, match="not found"):
        load_tokenizer(tmp_path / "missing.json")


def test_foreign_tokenizer_with_other_special_ids_is_refused(tmp_path):
    from tokenizers import Tokenizer, models

    foreign = Tokenizer(models.WordPiece({"[UNK]": 0, "[PAD]": 1, "a": 2}, unk_token="[UNK]"))
    with pytest.raises(EffxError, match=r"maps \[PAD\] to id 1, effx needs 0"):
        tokenizer_from_str(foreign.to_str())


def test_vocab_size_too_small_is_config_error(texts):
    with pytest.raises(EffxError, match="tokenizer.vocab_size must be larger"):
        train_tokenizer(texts, TokenizerConfig(vocab_size=5))


# ----------------------------------------------------------------------------- byte level
def test_byte_tokenizer_is_one_token_per_utf8_byte_and_lossless(tmp_path):
    tok = train_tokenizer([], TokenizerConfig(kind="byte", lowercase=False))
    text = "Héllo  wörld — 42 €\n\ttabs"
    ids = encode(tok, [text], max_length=4096)[0]
    assert ids[0] == SPECIAL["cls"] and ids[-1] == SPECIAL["sep"]
    assert len(ids) == len(text.encode("utf-8")) + 2  # one id per byte, multi-byte characters included
    assert tok.get_vocab_size() == 5 + 256 and SPECIAL["unk"] not in ids
    assert tok.decode(ids) == text  # nothing lost: spacing, case, non-ASCII
    # the same bytes always get the same ids, and distinct bytes distinct ids
    assert encode(tok, ["aa"], 16)[0][1] == encode(tok, ["a"], 16)[0][1] != encode(tok, ["b"], 16)[0][1]
    again = tokenizer_from_str(tokenizer_to_str(tok))
    assert encode(again, [text], 4096) == [ids]
    assert encode(tok, [text], max_length=10)[0][-1] == SPECIAL["sep"] and len(encode(tok, [text], 10)[0]) == 10


def test_byte_tokenizer_lowercases_when_asked():
    low = train_tokenizer([], TokenizerConfig(kind="byte", lowercase=True))
    assert encode(low, ["ABC"], 16) == encode(low, ["abc"], 16)


def test_byte_kind_needs_room_in_the_model_vocabulary(tmp_path):
    from effx.errors import ConfigError
    from effx.train import init_experiment

    with pytest.raises(ConfigError, match="model.vocab_size=261"):
        init_experiment("b", root=tmp_path, sets=["tokenizer.kind=byte", "model.vocab_size=200"])
    init_experiment("b", root=tmp_path, sets=["tokenizer.kind=byte", "model.vocab_size=261"], force=True)
