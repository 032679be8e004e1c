"""The baseline of the local-engine benchmark: a plain transformers `generate()` loop, in a process of its own.

It loads the model as modelgate's transformers engine does (same device and dtype choice), encodes the chat
prompt the same way, prints ``READY``, then for each line ``<batch>`` on stdin runs one greedy generate() of
``--max-tokens`` new tokens over ``<batch>`` copies of the prompt (a padded batch) and prints one line
``RESULT {"tokens": …, "seconds": …, "ttft_s": …}``. The only extra work in the loop is a streamer that notes
when the first new token is out (for TTFT).

    python bench/generate_loop.py --model DIR --messages '[{"role": "user", "content": "hi"}]' --max-tokens 128
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class FirstTokenClock:
    """A generate() streamer that only records when the first new token arrived (its first put is the prompt)."""

    def __init__(self) -> None:
        self.calls = 0
        self.first: float | None = None

    def put(self, value: Any) -> None:
        self.calls += 1
        if self.calls == 2:
            self.first = time.perf_counter()

    def end(self) -> None:
        pass


def encode(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """The prompt ids exactly as modelgate's engine makes them (template as text, then tokenized)."""
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--model", required=True)
    ap.add_argument("--messages", required=True, help="the chat messages as JSON")
    ap.add_argument("--max-tokens", type=int, required=True)
    ap.add_argument("--dtype", default="auto", help="auto, float32 or bfloat16 (as the engine's dtype setting)")
    args = ap.parse_args(argv)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from modelgate.engines.device import pick_device_dtype

    device, dtype = pick_device_dtype(args.dtype)
    tokenizer = AutoTokenizer.from_pretrained(args.model, local_files_only=True)
    model: Any = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype, local_files_only=True)
    model = model.to(device).eval()
    prompt = encode(tokenizer, json.loads(args.messages))
    config = GenerationConfig(  # type: ignore[no-untyped-call]
        max_new_tokens=args.max_tokens,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    info = {"dtype": str(dtype).removeprefix("torch."), "device": device, "prompt_tokens": len(prompt),
            "threads": torch.get_num_threads()}  # fmt: skip
    print(f"READY {json.dumps(info)}", flush=True)
    for line in sys.stdin:
        batch = int(line)
        input_ids = torch.tensor([prompt] * batch, dtype=torch.long, device=device)
        attention = torch.ones_like(input_ids)
        clock = FirstTokenClock()
        start = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(
                input_ids=input_ids, attention_mask=attention, generation_config=config, streamer=clock
            )
        seconds = time.perf_counter() - start
        tokens = int(out.shape[0] * (out.shape[1] - input_ids.shape[1]))
        ttft = (clock.first - start) if clock.first is not None else seconds
        print("RESULT " + json.dumps({"tokens": tokens, "seconds": seconds, "ttft_s": ttft}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
