"""Random-weight Llama chat models for the local-engine benchmark, built offline (no downloads).

Like the tiny test model (tests/engines/conftest.py, engines.md §2) but big enough that the model's own
compute dominates a decoding step: a byte-level BPE trained on this machine's Python standard library
sources, a ChatML template, and a Llama of the chosen size. The EOS embedding is zeroed (tied weights), so
greedy decoding never ends early and every run generates exactly max_tokens.
"""

from __future__ import annotations

import os
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|pad|>", "<|bos|>", "<|eos|>", "<|im_start|>", "<|im_end|>"]


@dataclass(frozen=True)
class ModelSize:
    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int
    corpus_files: int  # standard-library files the tokenizer is trained on


# engines.md §1.3 measured a Qwen2.5-0.5B-like shape (hidden 896, 24 layers, vocab 32 000); these are scaled
# down so a full run takes minutes on 2 cores. `tiny` is for the smoke test: overhead only, not a benchmark.
SIZES = {
    "tiny": ModelSize(vocab=400, hidden=64, layers=2, heads=4, kv_heads=2, ffn=128, corpus_files=3),
    "small": ModelSize(vocab=8192, hidden=512, layers=8, heads=8, kv_heads=2, ffn=1536, corpus_files=400),
    "medium": ModelSize(vocab=8192, hidden=768, layers=12, heads=12, kv_heads=4, ffn=2048, corpus_files=400),
}


def _corpus(files: int) -> Iterator[str]:
    """Text of the first `files` Python sources of the standard library (always on the machine)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.glob("*.py"))[:files]:
        try:
            yield path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue


def build_model(folder: Path, size: str, *, context: int = 2048) -> Path:
    """Write a random Llama of `size` (a SIZES key) with its tokenizer to `folder`; returns `folder`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    shape = SIZES[size]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=shape.vocab,
        show_progress=False,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_corpus(shape.corpus_files), trainer)
    hf_tok: Any = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok, bos_token="<|bos|>", eos_token="<|im_end|>", pad_token="<|pad|>"
    )
    hf_tok.chat_template = TEMPLATE
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(hf_tok),
        hidden_size=shape.hidden,
        intermediate_size=shape.ffn,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        max_position_embeddings=context,
        tie_word_embeddings=True,
        bos_token_id=hf_tok.bos_token_id,
        eos_token_id=hf_tok.eos_token_id,
        pad_token_id=hf_tok.pad_token_id,
    )
    model: Any = LlamaForCausalLM(cfg)
    with torch.no_grad():
        model.get_input_embeddings().weight[hf_tok.eos_token_id].zero_()
    model.save_pretrained(folder)
    hf_tok.save_pretrained(folder)
    return folder


def describe(folder: Path) -> str:
    """One line for the table header: parameters and shape of the model in `folder`."""
    import json

    cfg = json.loads((folder / "config.json").read_text())
    h, n, f, v = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"], cfg["vocab_size"]
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim = h // heads
    per_layer = h * h * 2 + 2 * h * kv * head_dim + 3 * h * f
    params = n * per_layer + v * h  # tied embeddings; norms left out
    return (
        f"random Llama, {params / 1e6:.1f} M params: hidden {h}, {n} layers, {heads} heads / {kv} KV heads, "
        f"ffn {f}, vocab {v} (BPE trained on local stdlib sources), EOS embedding zeroed"
    )
