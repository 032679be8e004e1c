"""Where a local model runs and in which dtype.

CUDA when torch sees a GPU, else the CPU. dtype "auto" means bfloat16 where it is fast: on CUDA when the GPU
supports it, on a CPU when it has native bfloat16 instructions (AVX512-BF16 or AMX-BF16; on such a CPU
bfloat16 ran about twice as fast as float32), and float32 otherwise, where bfloat16 is emulated and slower.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def pick_device_dtype(dtype: str) -> tuple[str, Any]:
    """(device, torch dtype) for the `dtype` setting: auto, float32 or bfloat16."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype == "float32":
        return device, torch.float32
    if dtype == "bfloat16":
        return device, torch.bfloat16
    if device == "cuda":
        return device, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return device, torch.bfloat16 if cpu_has_fast_bfloat16() else torch.float32


def cpu_has_fast_bfloat16() -> bool:
    """True when torch's CPU kernels use AVX512 and the CPU has native bfloat16 instructions."""
    import torch

    if not torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        return False
    return bool(_cpu_flags() & _BF16_CPU_FLAGS)


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no way to tell cheaply, so stay with float32
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()
