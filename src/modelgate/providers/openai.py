"""Provider `openai`: OpenAI's API, and Azure OpenAI (`openai_api_type` azure with an API key, or azuread with a
Microsoft Entra ID app registration whose access token is sent as a Bearer token; see `entra.py`).

Config (reference §5.4): openai_api_key / _plaintext, openai_api_base, openai_api_type, openai_api_version,
openai_deployment_name, openai_organization, microsoft_entra_client_id, microsoft_entra_client_secret /
_plaintext, microsoft_entra_tenant_id; modelgate extension microsoft_entra_authority_host (sovereign clouds,
tests).
Example upstream call (platform.openai.com/docs/api-reference/chat/create):
    POST https://api.openai.com/v1/chat/completions  Authorization: Bearer sk-...
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from modelgate.errors import InvalidParameterValue
from modelgate.providers.base import Json, ProviderConfig, ProviderDeps
from modelgate.providers.entra import DEFAULT_AUTHORITY_HOST, EntraTokenSource
from modelgate.providers.openai_compat import OpenAICompatibleProvider

OPENAI_DEFAULT_BASE = "https://api.openai.com/v1"
SecretField = str | dict[str, str] | None


class OpenAIConfig(ProviderConfig):
    openai_api_key: SecretField = None
    openai_api_key_plaintext: SecretField = None
    openai_api_base: str | None = None
    openai_api_type: Literal["openai", "azure", "azuread"] | None = None
    openai_api_version: str | None = None
    openai_deployment_name: str | None = None
    openai_organization: str | None = None
    microsoft_entra_client_id: str | None = None
    microsoft_entra_client_secret: SecretField = None
    microsoft_entra_client_secret_plaintext: SecretField = None
    microsoft_entra_tenant_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]*$")
    # modelgate extension: the Entra ID authority host (default https://login.microsoftonline.com), for
    # sovereign clouds (e.g. https://login.microsoftonline.us) and tests.
    microsoft_entra_authority_host: str | None = Field(default=None, pattern=r"^https?://[^/?#]+/?$")


class OpenAIProvider(OpenAICompatibleProvider):
    name = "openai"
    config_key = "openai_config"
    config_model = OpenAIConfig
    secret_fields = (("openai_api_key", False), ("microsoft_entra_client_secret", False))
    # OpenAI's API rejects these; Databricks-only knobs are translated or dropped.
    unsupported_fields = frozenset({"top_k", "thinking"})

    def __init__(self, model_name: str, task: str, config: ProviderConfig, deps: ProviderDeps) -> None:
        super().__init__(model_name, task, config, deps)
        assert isinstance(config, OpenAIConfig)
        self.cfg = config
        raw = config.model_dump()
        self.api_key = self.secret(raw, "openai_api_key")
        self.azure = config.openai_api_type in ("azure", "azuread")
        base = (config.openai_api_base or OPENAI_DEFAULT_BASE).rstrip("/")
        if self.azure:
            deployment = config.openai_deployment_name or model_name
            self.base = f"{base}/openai/deployments/{deployment}"
            self.query = f"?api-version={config.openai_api_version}"
        else:
            self.base = base
            self.query = ""
        self.entra: EntraTokenSource | None = None
        self._headers: dict[str, str] | None = None
        self._headers_key: str | None = None
        if config.openai_api_type == "azuread":
            secret = self.secret(raw, "microsoft_entra_client_secret")
            assert secret is not None and config.microsoft_entra_client_id and config.microsoft_entra_tenant_id
            self.entra = EntraTokenSource(
                deps.http,
                config.microsoft_entra_tenant_id,
                config.microsoft_entra_client_id,
                secret,
                config.microsoft_entra_authority_host or DEFAULT_AUTHORITY_HOST,
                mask=deps.secrets.mask,
            )

    @classmethod
    def parse_config(cls, raw: Any) -> ProviderConfig:
        config = super().parse_config(raw)
        assert isinstance(config, OpenAIConfig)
        if config.openai_api_type in ("azure", "azuread"):
            missing = [f for f in ("openai_api_base", "openai_api_version") if getattr(config, f) is None]
            if missing:
                raise InvalidParameterValue(f"openai_config: Azure OpenAI needs {', '.join(missing)}")
        if config.openai_api_type == "azuread":
            _check_entra(config)
        if config.openai_api_type in (None, "openai") and not (
            config.openai_api_key or config.openai_api_key_plaintext
        ):
            raise InvalidParameterValue(
                "openai_config: 'openai_api_key' (a secret reference) or 'openai_api_key_plaintext' is required"
            )
        return config

    async def request_headers(self) -> dict[str, str]:
        if self.entra is None:
            return self.headers()
        headers = dict(self.headers())  # a copy: the cached one is shared
        headers["Authorization"] = f"Bearer {await self.entra.token()}"
        return headers

    def url_for(self, route: str) -> str:
        return f"{self.base}/{route}{self.query}"

    def body_model_name(self) -> str | None:
        return None if self.azure else self.model_name

    def headers(self) -> dict[str, str]:
        """The upstream headers; one dict, rebuilt only when the key changes (a secret can be rotated).
        Callers must not change it."""
        key = self.api_key.get() if self.api_key else None
        if self._headers is not None and key == self._headers_key:
            return self._headers
        headers = {"Content-Type": "application/json"}
        if key:
            if self.azure:
                headers["api-key"] = key
            else:
                headers["Authorization"] = f"Bearer {key}"
        if self.cfg.openai_organization:
            headers["OpenAI-Organization"] = self.cfg.openai_organization
        self._headers, self._headers_key = headers, key
        return headers

    def build_body(self, request: Any) -> Json:
        body = super().build_body(request)
        thinking = getattr(request, "thinking", None)
        if thinking is not None and thinking.type == "enabled" and "reasoning_effort" not in body:
            budget = thinking.budget_tokens or 0
            body["reasoning_effort"] = "low" if budget < 4096 else "medium" if budget < 16384 else "high"
        return body


def _check_entra(config: OpenAIConfig) -> None:
    """azuread authenticates with an Entra ID app registration (client id, secret, tenant), not an API key."""
    missing = [
        name
        for name, value in (
            ("microsoft_entra_client_id", config.microsoft_entra_client_id),
            ("microsoft_entra_tenant_id", config.microsoft_entra_tenant_id),
            (
                "microsoft_entra_client_secret (a secret reference) or microsoft_entra_client_secret_plaintext",
                config.microsoft_entra_client_secret or config.microsoft_entra_client_secret_plaintext,
            ),
        )
        if not value
    ]
    if missing:
        raise InvalidParameterValue(f"openai_config: openai_api_type 'azuread' needs {', '.join(missing)}")
    if config.openai_api_key or config.openai_api_key_plaintext:
        raise InvalidParameterValue(
            "openai_config: openai_api_type 'azuread' authenticates with the microsoft_entra_* fields; "
            "drop openai_api_key, or use openai_api_type 'azure' for an API key"
        )
