"""Incremental detokenization: at every step the row's text is what decoding all its tokens gives, while each
token costs a decode of a few tokens, not of the whole row; the row streamer's deltas on top of it."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

from modelgate.engines.engine import Delta, GenerationUsage
from modelgate.engines.incremental_text import IncrementalText
from modelgate.engines.row_streamer import Channel, RowStreamer

MULTIBYTE = "héllo wörld, 中文 and 🙂 ok — naïve café"


@pytest.fixture(scope="module")
def tokenizer(tiny_llama: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_llama), local_files_only=True)


@pytest.fixture(scope="module")
def metaspace_tokenizer() -> Any:
    """A SentencePiece-style tokenizer (Metaspace: the first token's leading space is dropped when decoding)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=300, show_progress=False, special_tokens=["<unk>", "<s>", "</s>"])
    tok.train_from_iterator([f"the cat jumps over the fence number {i}" for i in range(50)], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


class CountingTokenizer:
    """Counts the tokens each decode call is given."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.decoded = 0

    def decode(self, ids: list[int], **kwargs: Any) -> str:
        self.decoded += len(ids)
        return str(self.inner.decode(ids, **kwargs))


def stream(tokenizer: Any, ids: list[int]) -> tuple[IncrementalText, list[str]]:
    """Feeds `ids` one at a time; checks each step against a whole decode; returns the text after each step."""
    row: list[int] = []
    text = IncrementalText(tokenizer, row)
    seen = []
    for i, token in enumerate(ids):
        row.append(token)
        text.advance()
        whole = tokenizer.decode(ids[: i + 1], skip_special_tokens=True)
        assert text.full == whole, (i, text.full, whole)
        assert not text.text.endswith("\ufffd")  # only whole characters are ever committed
        seen.append(text.full)
    return text, seen


def test_multibyte_characters_split_across_tokens(tokenizer: Any) -> None:
    ids = tokenizer(MULTIBYTE, add_special_tokens=False)["input_ids"]
    assert len(ids) > len(MULTIBYTE.encode()) // 2  # the tiny vocabulary spells non-ASCII out byte by byte
    text, seen = stream(tokenizer, ids)
    assert text.full == MULTIBYTE
    assert any(s.endswith("\ufffd") for s in seen)  # some steps ended inside a character, and were held


def test_random_tokens_match_a_whole_decode(tokenizer: Any) -> None:
    """Random ids include bytes that never form valid UTF-8 and special tokens (skipped)."""
    rng = random.Random(5)
    for _ in range(5):
        ids = [rng.randrange(len(tokenizer)) for _ in range(80)]
        text, _ = stream(tokenizer, ids)
        assert text.full == tokenizer.decode(ids, skip_special_tokens=True)


def test_metaspace_keeps_the_spaces_between_words(metaspace_tokenizer: Any) -> None:
    sentence = "the cat jumps over the fence number 12 the cat"
    ids = metaspace_tokenizer(sentence, add_special_tokens=False)["input_ids"]
    text, _ = stream(metaspace_tokenizer, ids)
    assert text.full == sentence


def test_each_token_decodes_a_few_tokens_not_the_whole_row(tokenizer: Any) -> None:
    counting = CountingTokenizer(tokenizer)
    ids = (tokenizer(MULTIBYTE * 8, add_special_tokens=False)["input_ids"])[:400]
    row: list[int] = []
    text = IncrementalText(counting, row)
    for token in ids:
        row.append(token)
        text.advance()
    assert text.full == tokenizer.decode(ids, skip_special_tokens=True)
    assert counting.decoded < 8 * len(ids)  # a whole decode per step would be len(ids)**2 / 2 = 80,000


# -- the row streamer ------------------------------------------------------------------------------------------


async def row_deltas(tokenizer: Any, ids: list[int], stop: list[str], limit: int = 1000) -> list[Delta]:
    streamer = RowStreamer(tokenizer, 1, set(), stop, GenerationUsage(), Channel(asyncio.get_running_loop(),
                           asyncio.Queue()), limit)  # fmt: skip
    out: list[Delta] = []
    for token in ids:
        if streamer.done[0]:
            break
        out.extend(streamer.put_tokens([token]))
    return out + streamer.end()


async def test_streamed_deltas_rebuild_the_text_without_broken_characters(tokenizer: Any) -> None:
    ids = tokenizer(MULTIBYTE, add_special_tokens=False)["input_ids"]
    deltas = await row_deltas(tokenizer, ids, [])
    assert "".join(d.text for d in deltas) == MULTIBYTE
    assert all("\ufffd" not in d.text for d in deltas)
    assert [d.finish_reason for d in deltas].count("length") == 1 and deltas[-1].finish_reason == "length"


async def test_a_stop_string_split_across_tokens_and_characters(tokenizer: Any) -> None:
    ids = tokenizer(MULTIBYTE, add_special_tokens=False)["input_ids"]
    deltas = await row_deltas(tokenizer, ids, ["中文"])
    assert "".join(d.text for d in deltas) == "héllo wörld, "
    assert deltas[-1].finish_reason == "stop"
    assert all(d.finish_reason is None for d in deltas[:-1])


async def test_max_tokens_counts_tokens_not_characters(tokenizer: Any) -> None:
    ids = tokenizer(MULTIBYTE, add_special_tokens=False)["input_ids"]
    deltas = await row_deltas(tokenizer, ids, [], limit=5)
    assert "".join(d.text for d in deltas) == tokenizer.decode(ids[:5])
    assert deltas[-1].finish_reason == "length"
