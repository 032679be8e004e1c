"""Fixtures for local engines: a tiny random-weight Llama chat model built offline, and a broken model folder."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

CORPUS = [
    f"The {animal} {verb} over the {thing} number {i}."
    for i in range(40)
    for animal, verb, thing in [("cat", "jumps", "fence"), ("dog", "runs", "hill"), ("bird", "flies", "river")]
]
TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


# A ChatML template that shows `tools` to the model and renders tool history, Hermes / Qwen style.
TOOLS_TEMPLATE = (
    "{% set first = 1 if messages[0]['role'] == 'system' else 0 %}"
    "{% if tools %}<|im_start|>system\n{% if first %}{{ messages[0]['content'] }}\n\n{% endif %}"
    "Functions you may call:\n<tools>\n{% for t in tools %}{{ t | tojson }}\n{% endfor %}</tools>\n"
    'Call one as <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call><|im_end|>\n'
    "{% elif first %}<|im_start|>system\n{{ messages[0]['content'] }}<|im_end|>\n{% endif %}"
    "{% for m in messages[first:] %}"
    "{% if m['role'] == 'tool' %}<|im_start|>user\n<tool_response>\n{{ m['content'] }}\n</tool_response><|im_end|>\n"
    "{% elif m['role'] == 'assistant' %}<|im_start|>assistant\n"
    "{% set text = (m['content'] or '').split('</think>')[-1] | trim %}{{ text }}"
    "{% for c in m.get('tool_calls') or [] %}{% if text or not loop.first %}\n{% endif %}<tool_call>\n"
    "{{ {'name': c['function']['name'], 'arguments': c['function']['arguments']} | tojson }}\n</tool_call>"
    "{% endfor %}<|im_end|>\n"
    "{% else %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# The same, for a reasoning model: a `<think>` block opens each answer (empty when thinking is off).
THINKING_TEMPLATE = TOOLS_TEMPLATE + (
    "{% if add_generation_prompt and enable_thinking is defined and not enable_thinking %}"
    "<think>\n\n</think>\n\n{% endif %}"
)
LONG_CONTEXT = 2048  # room for tool lists, which a 347-token vocabulary spells out in many tokens
TAG_TOKENS = ["<think>", "</think>", "<tool_call>", "</tool_call>"]


def build_tiny_llama(folder: Path, *, context: int = 256, template: str = TEMPLATE, tag_tokens: bool = False) -> Path:
    """A 2-layer random Llama with a locally trained byte-level BPE and a ChatML template (engines.md §2).

    The EOS embedding is zeroed (tied weights), so greedy decoding never ends early: lengths are predictable.
    `tag_tokens` adds `<think>`, `</think>`, `<tool_call>` and `</tool_call>` as single (non-special) tokens,
    as Qwen's tokenizers have them.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        show_progress=False,
        special_tokens=["<|pad|>", "<|bos|>", "<|eos|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|bos|>", eos_token="<|im_end|>", pad_token="<|pad|>"
    )
    if tag_tokens:
        hf_tok.add_tokens(TAG_TOKENS)
    hf_tok.chat_template = template
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(hf_tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=context,
        tie_word_embeddings=True,
        bos_token_id=hf_tok.bos_token_id,
        eos_token_id=hf_tok.eos_token_id,
        pad_token_id=hf_tok.pad_token_id,
    )
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        model.get_input_embeddings().weight[hf_tok.eos_token_id].zero_()
    model.save_pretrained(folder)
    hf_tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_tools(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with a chat template that renders tools (Hermes / Qwen style)."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-tools"), template=TOOLS_TEMPLATE, tag_tokens=True,
                            context=LONG_CONTEXT)  # fmt: skip


@pytest.fixture(scope="session")
def tiny_thinker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model as a reasoning model: its template handles a `<think>` block, and renders tools."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-thinker"), template=THINKING_TEMPLATE, tag_tokens=True,
                            context=LONG_CONTEXT)  # fmt: skip


@pytest.fixture(scope="session")
def broken_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("broken-model")
    (folder / "config.json").write_text("{not json")
    return folder


def serve_engine(engine: Any, name: str = "tiny", task: str = "llm/v1/chat") -> Any:
    """A LocalBackend over an already loaded engine (what the catalog hands the serving core once it is ready)."""
    from modelgate.engines.backend import LocalBackend

    entry = SimpleNamespace(full_name=f"system.ai.{name}", task=task)
    return LocalBackend(SimpleNamespace(entry=entry, engine=engine, state="DEPLOYMENT_READY", message=None))  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def tiny_llama_long(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with room for tool lists in its context (its template ignores tools)."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama-long"), context=LONG_CONTEXT)


@pytest.fixture(scope="session")
def plain_engine(tiny_llama_long: Path) -> Any:
    """The tiny model (a template that ignores tools), loaded once for the session."""
    from modelgate.engines.transformers_chat import TransformersEngine

    return TransformersEngine(str(tiny_llama_long), dtype="float32")


@pytest.fixture(scope="session")
def tools_engine(tiny_tools: Path) -> Any:
    from modelgate.engines.transformers_chat import TransformersEngine

    return TransformersEngine(str(tiny_tools), dtype="float32")


@pytest.fixture(scope="session")
def thinker_engine(tiny_thinker: Path) -> Any:
    from modelgate.engines.transformers_chat import TransformersEngine

    return TransformersEngine(str(tiny_thinker), dtype="float32")


def write_tiny_gguf(hf_folder: Path, path: Path) -> Path:
    """The tiny HF model of `hf_folder` as an F32 GGUF file, written with the `gguf` package (engines.md §2).

    Its tokenizer (byte-level BPE: GGUF's "gpt2" model), special tokens and chat template go into the metadata;
    there is no output tensor, so a reader must tie the LM head to the embedding, as SmolLM2's file needs.
    """
    import json

    import gguf
    from safetensors.numpy import load_file

    config = json.loads((hf_folder / "config.json").read_text())
    tok = json.loads((hf_folder / "tokenizer.json").read_text())
    tok_config = json.loads((hf_folder / "tokenizer_config.json").read_text())
    template = (hf_folder / "chat_template.jinja").read_text()
    vocab: dict[str, int] = tok["model"]["vocab"]
    added = {t["content"]: t for t in tok["added_tokens"]}
    tokens = [""] * config["vocab_size"]
    for text, i in {**vocab, **{t: a["id"] for t, a in added.items()}}.items():
        tokens[i] = text
    types = [
        (gguf.TokenType.CONTROL if added[t]["special"] else gguf.TokenType.USER_DEFINED) if t in added
        else gguf.TokenType.NORMAL
        for t in tokens
    ]  # fmt: skip
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    ids = {name: tokens.index(tok_config[name]) for name in ("bos_token", "eos_token", "pad_token")}
    heads, kv_heads, hidden = config["num_attention_heads"], config["num_key_value_heads"], config["hidden_size"]

    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_name("tiny-llama")
    w.add_context_length(config["max_position_embeddings"])
    w.add_embedding_length(hidden)
    w.add_block_count(config["num_hidden_layers"])
    w.add_feed_forward_length(config["intermediate_size"])
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_layer_norm_rms_eps(config["rms_norm_eps"])
    w.add_rope_dimension_count(hidden // heads)
    w.add_rope_freq_base(config.get("rope_theta") or config.get("rope_parameters", {}).get("rope_theta", 10000.0))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(ids["bos_token"])
    w.add_eos_token_id(ids["eos_token"])
    w.add_pad_token_id(ids["pad_token"])
    w.add_add_bos_token(False)
    w.add_chat_template(template)

    def permute(x: Any, n: int) -> Any:  # HF's rotate-half rope layout -> GGML's interleaved one
        return x.reshape(n, 2, x.shape[0] // n // 2, *x.shape[1:]).swapaxes(1, 2).reshape(x.shape)

    weights = load_file(str(hf_folder / "model.safetensors"))
    names = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm",
             "post_attention_layernorm": "ffn_norm"}  # fmt: skip
    w.add_tensor("token_embd.weight", weights["model.embed_tokens.weight"])
    w.add_tensor("output_norm.weight", weights["model.norm.weight"])
    for i in range(config["num_hidden_layers"]):
        for hf_name, gguf_name in names.items():
            x = weights[f"model.layers.{i}.{hf_name}.weight"]
            if gguf_name == "attn_q":
                x = permute(x, heads)
            elif gguf_name == "attn_k":
                x = permute(x, kv_heads)
            w.add_tensor(f"blk.{i}.{gguf_name}.weight", x)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="session")
def tiny_gguf(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tiny_llama, tmp_path_factory.mktemp("tiny-gguf") / "tiny-llama.gguf")
