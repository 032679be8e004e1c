"""Which provider class serves `external_model.provider`.

Built-ins are listed below, one line each; third-party providers register the same way through the
`modelgate.providers` entry-point group (value `package.module:ProviderClass`).
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from modelgate.errors import InvalidParameterValue
from modelgate.providers.base import Provider

BUILTIN_PROVIDERS: dict[str, str] = {
    "openai": "modelgate.providers.openai:OpenAIProvider",
    "custom": "modelgate.providers.custom:CustomProvider",
    "anthropic": "modelgate.providers.anthropic:AnthropicProvider",
    "palm": "modelgate.providers.palm:PalmProvider",
    "ai21labs": "modelgate.providers.ai21labs:AI21LabsProvider",
    "cohere": "modelgate.providers.cohere:CohereProvider",
    "amazon-bedrock": "modelgate.providers.bedrock:BedrockProvider",
    "databricks-model-serving": "modelgate.providers.databricks_serving:DatabricksServingProvider",
    "google-cloud-vertex-ai": "modelgate.providers.vertex:VertexProvider",
}


class ProviderRegistry:
    def __init__(self) -> None:
        self._paths = dict(BUILTIN_PROVIDERS)
        for ep in entry_points(group="modelgate.providers"):
            self._paths.setdefault(ep.name, ep.value)
        self._loaded: dict[str, type[Provider]] = {}

    def names(self) -> list[str]:
        return sorted(self._paths)

    def get(self, name: str) -> type[Provider]:
        loaded = self._loaded.get(name)
        if loaded is not None:
            return loaded
        path = self._paths.get(name)
        if path is None:
            raise InvalidParameterValue(
                f"Unknown external model provider {name!r}. Supported providers: {', '.join(self.names())}."
            )
        module_name, _, attr = path.partition(":")
        cls: type[Provider] = getattr(importlib.import_module(module_name), attr)
        self._loaded[name] = cls
        return cls
