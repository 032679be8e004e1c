"""How a stored served entity becomes something that answers queries.

Two kinds exist: external models (a provider from the provider registry) and catalog models
(`entity_name`, hosted by a local engine). Catalog support plugs in through `LocalModelCatalog`; until a
catalog is configured, served entities naming a model are rejected at create time with a clear message.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

from modelgate.errors import InvalidParameterValue
from modelgate.protocol.endpoints import ServedEntityInput
from modelgate.providers.base import Provider, ProviderDeps
from modelgate.providers.registry import ProviderRegistry
from modelgate.secrets import ConfigOwner, SecretCipher, encrypt_plaintext_fields
from modelgate.serving.upstream_hosts import UpstreamHostPolicy

READY = "DEPLOYMENT_READY"


class LocalModelCatalog(Protocol):
    """Hosted models (`system.ai.<name>`); implemented by the engines package."""

    def task_of(self, entity_name: str, entity_version: str | None) -> str: ...

    def backend(self, entity_name: str, entity_version: str | None) -> Provider: ...

    def state_of(self, entity_name: str, entity_version: str | None) -> tuple[str, str | None]: ...


class EntityFactory:
    def __init__(
        self,
        providers: ProviderRegistry,
        deps: ProviderDeps,
        cipher: SecretCipher,
        catalog: LocalModelCatalog | None = None,
        upstream_hosts: UpstreamHostPolicy | None = None,
    ) -> None:
        self.providers = providers
        self.deps = deps
        self.cipher = cipher
        self.catalog = catalog
        self.upstream_hosts = upstream_hosts or UpstreamHostPolicy()

    def prepare(self, entity: ServedEntityInput) -> tuple[dict[str, Any], str]:
        """Validate an input entity; return what is stored for it (secrets encrypted) and its task."""
        stored = entity.model_dump(exclude_none=True)
        stored["name"] = entity.default_name()
        ext = entity.external_model
        if ext is not None:
            provider_cls = self.providers.get(ext.provider)
            extra = dict(ext.model_extra or {})
            raw_config = extra.pop(provider_cls.config_key, None)
            if extra:
                raise InvalidParameterValue(
                    f"external_model for provider '{ext.provider}' takes '{provider_cls.config_key}'; "
                    f"unexpected: {', '.join(sorted(extra))}"
                )
            provider_cls.parse_config(raw_config)
            self.upstream_hosts.check(raw_config, f"external_model.{provider_cls.config_key}")
            stored["external_model"] = encrypt_plaintext_fields(stored["external_model"], self.cipher, "external_model")
            return stored, ext.task
        if self.catalog is None:
            raise InvalidParameterValue(
                f"Served entity '{stored['name']}' names model '{entity.entity_name}', but this server has "
                "no local model catalog. Serve an external model (external_model) instead."
            )
        return stored, self.catalog.task_of(entity.entity_name or "", entity.entity_version)

    def build(self, stored: dict[str, Any], owner: ConfigOwner | None = None) -> Provider:
        """The backend of a stored entity; an external model's secret references resolve with the rights of
        `owner`, the principal that last set the endpoint's config."""
        ext = stored.get("external_model")
        if ext is not None:
            provider_cls = self.providers.get(ext["provider"])
            config = provider_cls.parse_config(ext.get(provider_cls.config_key))
            self.upstream_hosts.check(ext.get(provider_cls.config_key), f"external_model.{provider_cls.config_key}")
            deps = dataclasses.replace(self.deps, secrets=self.deps.secrets.for_owner(owner))
            return provider_cls(ext["name"], ext["task"], config, deps)
        if self.catalog is None:
            raise InvalidParameterValue(f"Served entity '{stored['name']}' has no backend on this server.")
        return self.catalog.backend(stored["entity_name"], stored.get("entity_version"))

    def state(self, stored: dict[str, Any]) -> tuple[str, str | None]:
        if stored.get("external_model") is not None or self.catalog is None:
            return READY, None
        return self.catalog.state_of(stored["entity_name"], stored.get("entity_version"))
