"""GGUF files for the transformers engine: dequantized once into a bfloat16 Hugging Face folder, then cached.

transformers can run a GGUF checkpoint as it is, but it keeps the weights quantized and measured about 5 tok/s
on SmolLM2-135M (one CPU thread), against about 21 tok/s for a float copy. So a `.gguf` path is converted once:
transformers' own GGUF reader gives the config, the tokenizer (chat template included) and float tensors, which
go into a fresh model in bfloat16 (half the size of float32, and the dtype fast CPUs compute in) and are saved
as a normal folder. A file without an output tensor shares the embedding as its LM head (tied weights).

The folder lives in the model cache (`<data dir>/models` unless MODELGATE_MODEL_CACHE_DIR says otherwise),
named after the file and a key of its absolute path, size and modification time, so a restart reuses it and a
changed file gets a new copy. A conversion writes a temporary folder and renames it into place: a crash leaves
no half folder behind, and of two processes converting at once the second drops its copy and uses the first.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"
# Part of the cache key: bump it when the conversion changes, so old copies are not reused.
CONVERSION_VERSION = 1


def is_gguf_file(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


def cached_folder_name(gguf_path: Path) -> str:
    """`<file stem>-<key>`: the key changes with the file's absolute path, size or modification time."""
    resolved = gguf_path.resolve()
    st = resolved.stat()
    raw = f"{resolved}\0{st.st_size}\0{st.st_mtime_ns}\0{CONVERSION_VERSION}".encode()
    return f"{resolved.stem}-{hashlib.sha256(raw).hexdigest()[:16]}"


def hf_folder_for(gguf_path: Path, cache_dir: Path) -> Path:
    """The cached bfloat16 folder of `gguf_path`, converting the file first when there is none."""
    target = cache_dir / "gguf" / cached_folder_name(gguf_path)
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.parent / f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    started = time.monotonic()
    try:
        convert(gguf_path, scratch)
        try:
            scratch.rename(target)
        except OSError:  # another process finished first (the target is a non-empty folder now)
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log.info("%s converted to bfloat16 in %.1f s: %s", gguf_path, time.monotonic() - started, target)
    return target


def convert(gguf_path: Path, out: Path) -> None:
    """Write the GGUF file's model, dequantized to bfloat16, and its tokenizer as a Hugging Face folder."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, modeling_gguf_pytorch_utils

    auto_model: Any = AutoModelForCausalLM  # from_config and the GGUF reader are untyped
    read_gguf: Any = modeling_gguf_pytorch_utils.load_gguf_checkpoint

    folder, name = str(gguf_path.parent), gguf_path.name
    config = AutoConfig.from_pretrained(folder, gguf_file=name, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
    model = auto_model.from_config(config, dtype=torch.bfloat16)
    tensors = read_gguf(str(gguf_path), return_tensors=True, model_to_load=model, torch_dtype=torch.bfloat16)
    state = {key: value.to(torch.bfloat16) for key, value in tensors["tensors"].items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise ValueError(
            f"the GGUF file's tensors do not fit a {type(model).__name__}: missing {sorted(set(missing) - tied)}, "
            f"unexpected {sorted(unexpected)}"
        )
    model.tie_weights()  # the LM head of a file without an output tensor is the embedding
    out.mkdir(parents=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
