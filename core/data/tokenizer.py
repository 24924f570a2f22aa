"""WordPiece tokenizer (Schuster & Nakajima 2012; as used by BERT, Devlin et al. 2019), trained with the
HF ``tokenizers`` library on the training text, or a byte-level one (``tokenizer.kind: byte``: each
UTF-8 byte is a token, as in the Long Range Arena text task, Tay et al. 2021).

The five special tokens have FIXED ids, whatever the corpus: ``[PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4``
(the collators and the MLM masking rely on them). Every encoded sequence is ``[CLS] ... [SEP]``, truncated
to ``max_length`` tokens including those two. Files are ``tokenizer.json`` written atomically.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from ..atomic import write_text
from ..config import TokenizerConfig
from ..errors import ConfigError, EffxError

SPECIAL = {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # index == id
NUM_SPECIAL = len(SPECIAL_TOKENS)


def train_tokenizer(texts: Iterable[str], cfg: TokenizerConfig) -> Tokenizer:
    """Train a WordPiece vocabulary of at most ``cfg.vocab_size`` entries (special tokens included), or
    build the fixed byte-level tokenizer (``cfg.kind == "byte"``; ``texts`` are not needed)."""
    if cfg.kind == "byte":
        return byte_tokenizer(cfg)
    if cfg.vocab_size <= NUM_SPECIAL:
        raise ConfigError(f"tokenizer.vocab_size must be larger than the {NUM_SPECIAL} special tokens, "
                          f"got {cfg.vocab_size}")
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=None, lowercase=cfg.lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(vocab_size=cfg.vocab_size, min_frequency=cfg.min_frequency,
                                        special_tokens=SPECIAL_TOKENS, show_progress=False)
    tok.train_from_iterator(texts, trainer)
    tok.model = models.WordPiece(canonical_vocab(tok.get_vocab()), unk_token="[UNK]", max_input_chars_per_word=100)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", SPECIAL["cls"]), ("[SEP]", SPECIAL["sep"])],
    )
    check_special_ids(tok, "the trained tokenizer")
    return tok


BYTE_VOCAB_SIZE = NUM_SPECIAL + 256


def byte_tokenizer(cfg: TokenizerConfig) -> Tokenizer:
    """Special tokens at their fixed ids, then the 256 bytes (in the GPT-2 byte-to-character alphabet
    of the ``ByteLevel`` pre-tokenizer, one character per byte), one token per byte; lossless."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())  # 256 characters, one per byte value
    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(SPECIAL_TOKENS + alphabet)}, unk_token="[UNK]"))
    if cfg.lowercase:
        tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),  # bytes -> alphabet characters
        pre_tokenizers.Split(Regex("."), behavior="isolated")])  # one token per character = per byte
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIAL_TOKENS)  # already in the vocabulary: keeps their ids, marks them special
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", SPECIAL["cls"]), ("[SEP]", SPECIAL["sep"])],
    )
    check_special_ids(tok, "the byte-level tokenizer")
    return tok


def canonical_vocab(vocab: dict[str, int]) -> dict[str, int]:
    """Special tokens at their fixed ids, then whole words, then ``##`` pieces, each sorted.

    The trainer numbers tokens in hash-map order, which changes from run to run (huggingface/tokenizers
    issue #1794); WordPiece encoding only depends on the SET of tokens, so sorting makes the ids a
    function of the vocabulary. (On count ties the trainer may still pick a different token or two; the
    trained tokenizer is therefore saved with the experiment and in every checkpoint, never retrained.)
    """
    rest = sorted((t for t in vocab if t not in SPECIAL_TOKENS), key=lambda t: (t.startswith("##"), t))
    return {t: i for i, t in enumerate(SPECIAL_TOKENS + rest)}


def check_special_ids(tok: Tokenizer, where: str) -> None:
    for i, token in enumerate(SPECIAL_TOKENS):
        if tok.token_to_id(token) != i:
            raise EffxError(f"{where} maps {token} to id {tok.token_to_id(token)}, effx needs {i}; "
                            f"retrain the tokenizer with effx")


# ----------------------------------------------------------------------------- files
def tokenizer_to_str(tok: Tokenizer) -> str:
    return tok.to_str()


def tokenizer_from_str(text: str, where: str = "tokenizer") -> Tokenizer:
    """Rebuild a tokenizer from its JSON text (as stored in a checkpoint); corrupt text is an EffxError."""
    try:
        tok = Tokenizer.from_str(text)
    except Exception as exc:  # noqa: BLE001 - the tokenizers library raises plain Exception on bad JSON
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EffxError(f"{where} is corrupt or not a tokenizers JSON file ({msg}); delete it and retrain") from None
    check_special_ids(tok, where)
    return tok


def save_tokenizer(tok: Tokenizer, path: str | Path) -> Path:
    """Write ``tok`` as JSON to ``path`` atomically (temporary file in the same folder, then rename)."""
    return write_text(path, tokenizer_to_str(tok))


def load_tokenizer(path: str | Path) -> Tokenizer:
    path = Path(path)
    if not path.is_file():
        raise EffxError(f"tokenizer file {path} not found; set tokenizer.path to an existing tokenizer.json "
                        f"or leave it empty to train one")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise EffxError(f"tokenizer file {path} is corrupt (not UTF-8 JSON); delete it and retrain") from None
    return tokenizer_from_str(text, f"tokenizer file {path}")


# ----------------------------------------------------------------------------- encoding
def encode_with_stats(tok: Tokenizer, texts: list[str], max_length: int) -> tuple[list[list[int]], int]:
    """Ids of ``[CLS] text [SEP]`` cut to ``max_length`` (both specials kept), and how many were cut."""
    if max_length < 2:
        raise ConfigError(f"data.max_length must leave room for [CLS] and [SEP] (>= 2), got {max_length}")
    previous = tok.truncation
    tok.enable_truncation(max_length=max_length)
    try:
        encodings = tok.encode_batch(list(texts), add_special_tokens=True)
    finally:
        if previous is None:
            tok.no_truncation()
        else:
            tok.enable_truncation(**previous)
    cut = sum(1 for e in encodings if e.overflowing)
    return [e.ids for e in encodings], cut


def encode(tok: Tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    return encode_with_stats(tok, texts, max_length)[0]


def count_truncated(tok: Tokenizer, texts: list[str], max_length: int) -> int:
    """How many texts are longer than ``max_length`` tokens with [CLS] and [SEP]."""
    return encode_with_stats(tok, texts, max_length)[1]


def unk_rate(tok: Tokenizer, texts: Iterable[str]) -> float:
    """Fraction of the (non-special) tokens of ``texts`` that are [UNK]; 0.0 for no tokens."""
    encodings = tok.encode_batch(list(texts), add_special_tokens=False)
    total = sum(len(e.ids) for e in encodings)
    unk = sum(e.ids.count(SPECIAL["unk"]) for e in encodings)
    return unk / total if total else 0.0
