"""Provider `custom`: any server that speaks the OpenAI API (vLLM, llama.cpp's llama-server, TGI, ...).

Config: custom_provider_url (the API base, e.g. http://host:8000/v1; a URL already ending in the task's
route is used as is) and one of api_key_auth {key, value | value_plaintext} or bearer_token_auth
{token | token_plaintext}.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from modelgate.errors import InvalidParameterValue
from modelgate.providers.base import ProviderConfig, ProviderDeps, check_secret_pair
from modelgate.providers.openai_compat import OpenAICompatibleProvider
from modelgate.secrets import SecretValue

SecretField = str | dict[str, str] | None
_ROUTES = ("chat/completions", "completions", "embeddings")


class ApiKeyAuth(ProviderConfig):
    key: str = Field(min_length=1)
    value: SecretField = None
    value_plaintext: SecretField = None


class BearerTokenAuth(ProviderConfig):
    token: SecretField = None
    token_plaintext: SecretField = None


class CustomProviderConfig(ProviderConfig):
    custom_provider_url: str = Field(pattern=r"^https?://")
    api_key_auth: ApiKeyAuth | None = None
    bearer_token_auth: BearerTokenAuth | None = None


class CustomProvider(OpenAICompatibleProvider):
    name = "custom"
    config_key = "custom_provider_config"
    config_model = CustomProviderConfig
    # Gemini's OpenAI-compatible API needs its thought signatures back; other servers ignore unknown keys.
    keeps_extra_content = True

    def __init__(self, model_name: str, task: str, config: ProviderConfig, deps: ProviderDeps) -> None:
        super().__init__(model_name, task, config, deps)
        assert isinstance(config, CustomProviderConfig)
        self.base = config.custom_provider_url.rstrip("/")
        self.header_name: str | None = None
        self.header_secret: SecretValue | None = None
        self.bearer: SecretValue | None = None
        if config.api_key_auth is not None:
            self.header_name = config.api_key_auth.key
            self.header_secret = self._auth_secret(config.api_key_auth.model_dump(), "api_key_auth", "value")
        if config.bearer_token_auth is not None:
            self.bearer = self._auth_secret(config.bearer_token_auth.model_dump(), "bearer_token_auth", "token")

    def _auth_secret(self, raw: dict[str, Any], where: str, field: str) -> SecretValue | None:
        value = raw.get(field) if raw.get(field) is not None else raw.get(field + "_plaintext")
        if value is None:
            return None
        return SecretValue(value, f"{self.config_key}.{where}.{field}", self.deps.secrets)

    @classmethod
    def parse_config(cls, raw: Any) -> ProviderConfig:
        config = super().parse_config(raw)
        assert isinstance(config, CustomProviderConfig)
        if config.api_key_auth is not None and config.bearer_token_auth is not None:
            raise InvalidParameterValue(
                "custom_provider_config: give one of 'api_key_auth' and 'bearer_token_auth', not both"
            )
        if config.api_key_auth is not None:
            check_secret_pair(raw["api_key_auth"], "value", "custom_provider_config.api_key_auth", deps_required=True)
        if config.bearer_token_auth is not None:
            check_secret_pair(
                raw["bearer_token_auth"], "token", "custom_provider_config.bearer_token_auth", deps_required=True
            )
        return config

    def url_for(self, route: str) -> str:
        for known in _ROUTES:
            if self.base.endswith("/" + known):
                return self.base if known == route else self.base[: -len(known)] + route
        return f"{self.base}/{route}"

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.header_name and self.header_secret is not None:
            headers[self.header_name] = self.header_secret.get()
        if self.bearer is not None:
            headers["Authorization"] = f"Bearer {self.bearer.get()}"
        return headers
