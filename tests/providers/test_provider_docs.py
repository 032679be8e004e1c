"""Every endpoint config in docs/providers.md is valid for the provider it names."""

from __future__ import annotations

import json
import re
from pathlib import Path

from modelgate.providers.registry import BUILTIN_PROVIDERS, ProviderRegistry

DOC = Path(__file__).resolve().parents[2] / "docs" / "providers.md"
FENCE = re.compile(r"^```json\n(.*?)^```", re.S | re.M)


def test_each_documented_config_validates() -> None:
    configs = [
        json.loads(block)["external_model"] for block in FENCE.findall(DOC.read_text()) if '"external_model"' in block
    ]
    registry = ProviderRegistry()
    providers = [c["provider"] for c in configs]
    assert sorted(providers) == sorted(BUILTIN_PROVIDERS)  # one config per built-in provider
    for config in configs:
        cls = registry.get(config["provider"])
        cls.parse_config(config[cls.config_key])


def test_each_documented_config_fragment_validates() -> None:
    """Blocks that show only a `<provider>_config` (Azure AD, Bedrock credentials, retries) are valid too."""
    registry = ProviderRegistry()
    by_key = {registry.get(name).config_key: registry.get(name) for name in BUILTIN_PROVIDERS}
    fragments = [json.loads(block) for block in FENCE.findall(DOC.read_text()) if '"external_model"' not in block]
    checked = 0
    for fragment in fragments:
        if not isinstance(fragment, dict) or len(fragment) != 1:
            continue
        [(key, config)] = fragment.items()
        if key in by_key:
            by_key[key].parse_config(config)
            checked += 1
    assert checked >= 3
