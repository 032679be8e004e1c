"""Provider `databricks-model-serving`: an endpoint of another Databricks workspace, or of another modelgate.

Config (reference §5.4): databricks_workspace_url (required) and databricks_api_token / _plaintext (a PAT).
`external_model.name` is the remote serving endpoint's name; every task goes to its invocations route, whose
requests and answers are already OpenAI-shaped, so the shared OpenAI-compatible code does the rest.
Example upstream call (docs.databricks.com/api/workspace/servingendpoints/query):
    POST https://<workspace>.cloud.databricks.com/serving-endpoints/<name>/invocations
    Authorization: Bearer dapi...   {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 64}
"""

from __future__ import annotations

from urllib.parse import quote

from pydantic import Field

from modelgate.providers.base import ProviderConfig, ProviderDeps
from modelgate.providers.openai_compat import OpenAICompatibleProvider

SecretField = str | dict[str, str] | None


class DatabricksServingConfig(ProviderConfig):
    databricks_workspace_url: str = Field(pattern=r"^https?://")
    databricks_api_token: SecretField = None
    databricks_api_token_plaintext: SecretField = None


class DatabricksServingProvider(OpenAICompatibleProvider):
    name = "databricks-model-serving"
    config_key = "databricks_model_serving_config"
    config_model = DatabricksServingConfig
    secret_fields = (("databricks_api_token", True),)
    # The remote speaks this same API: reasoning blocks and signatures reach its own provider unchanged.
    keeps_reasoning_blocks = True
    keeps_extra_content = True

    def __init__(self, model_name: str, task: str, config: ProviderConfig, deps: ProviderDeps) -> None:
        super().__init__(model_name, task, config, deps)
        assert isinstance(config, DatabricksServingConfig)
        self.token = self.secret(config.model_dump(), "databricks_api_token")
        workspace = config.databricks_workspace_url.rstrip("/")
        self.url = f"{workspace}/serving-endpoints/{quote(model_name, safe='')}/invocations"

    def url_for(self, route: str) -> str:
        return self.url  # chat, completions and embeddings share the endpoint's one route

    def body_model_name(self) -> str | None:
        return None  # the endpoint name in the URL picks the model

    def headers(self) -> dict[str, str]:
        token = self.token.get() if self.token else ""
        return {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
