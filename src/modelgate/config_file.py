"""Declarative endpoints from `--config FILE` (YAML), in the same schema as the REST API.

    endpoints:
      - name: my-chat
        config:
          served_entities:
            - external_model:
                name: gpt-4o-mini
                provider: openai
                task: llm/v1/chat
                openai_config:
                  openai_api_key: "{{secrets/my-scope/openai-key}}"   # or "{{env/OPENAI_API_KEY}}"

Secrets never sit in the file: any `*_plaintext` key is refused. Applying is idempotent: a missing endpoint
is created, an existing one gets the file's config, AI Gateway settings and tags.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from modelgate.auth.principal import Principal
from modelgate.engines.catalog import ModelEntry, parse_entries
from modelgate.errors import InvalidParameterValue, PermissionDenied, ResourceDoesNotExist
from modelgate.protocol.common import validate_request
from modelgate.protocol.endpoints import CreateEndpointRequest, PatchTagsRequest
from modelgate.providers.registry import ProviderRegistry
from modelgate.secrets import PLAINTEXT_SUFFIX, EnvPolicy, references_in
from modelgate.serving.endpoint_service import EndpointService

log = logging.getLogger(__name__)


class ConfigFileError(Exception):
    pass


def _find_plaintext(obj: Any, path: str = "") -> str | None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            here = f"{path}.{k}" if path else str(k)
            if str(k).endswith(PLAINTEXT_SUFFIX):
                return here
            found = _find_plaintext(v, here)
            if found:
                return found
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            found = _find_plaintext(v, f"{path}[{i}]")
            if found:
                return found
    return None


def load_endpoints(path: Path, env_policy: EnvPolicy | None = None) -> list[CreateEndpointRequest]:
    """The file's endpoints, validated; `env_policy` also checks each `{{env/NAME}}` the file names, so a
    forbidden one stops `serve` with one clear line rather than at start-up."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigFileError(f"cannot read config file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigFileError(f"{path}: the top level must be a mapping with an 'endpoints' list")
    unknown = set(data) - {"endpoints", "models"}
    if unknown:
        raise ConfigFileError(f"{path}: unknown top-level keys {sorted(unknown)}; expected 'endpoints', 'models'")
    raw = data.get("endpoints") or []
    if not isinstance(raw, list):
        raise ConfigFileError(f"{path}: 'endpoints' must be a list")
    out: list[CreateEndpointRequest] = []
    for i, item in enumerate(raw):
        plaintext = _find_plaintext(item)
        if plaintext:
            raise ConfigFileError(
                f"{path}: endpoints[{i}].{plaintext}: secrets may not be written in the config file; use "
                "a reference such as '{{secrets/<scope>/<key>}}' or '{{env/<NAME>}}' in the field without "
                "'_plaintext'"
            )
        try:
            req = validate_request(CreateEndpointRequest, item, control_plane=True)
            _check_providers(req)
            if env_policy is not None:
                _check_env_references(item, env_policy)
        except (InvalidParameterValue, PermissionDenied) as exc:
            raise ConfigFileError(f"{path}: endpoints[{i}]: {exc.message}") from None
        out.append(req)
    load_models(path)  # so a bad `models:` list also stops `serve` with one clear line
    return out


def load_models(path: Path) -> list[ModelEntry]:
    """The optional top-level `models:` list: local catalog models (see docs/local_models.md)."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigFileError(f"cannot read config file {path}: {exc}") from None
    try:
        return parse_entries(data.get("models") if isinstance(data, dict) else None)
    except InvalidParameterValue as exc:
        raise ConfigFileError(f"{path}: {exc.message}") from None


def _check_providers(req: CreateEndpointRequest) -> None:
    """Validate each external model's provider and config, so a bad file stops `serve` with one clear line."""
    registry = ProviderRegistry()
    for entity in req.config.entities() if req.config else []:
        ext = entity.external_model
        if ext is not None:
            provider = registry.get(ext.provider)
            provider.parse_config((ext.model_extra or {}).get(provider.config_key))


def _check_env_references(item: Any, env_policy: EnvPolicy) -> None:
    for field, (kind, name, _key) in references_in(item):
        refusal = env_policy.refusal(name) if kind == "env" else None
        if refusal is not None:
            raise PermissionDenied(f"{field}: {refusal}")


async def apply_endpoints(service: EndpointService, admin: Principal, endpoints: list[CreateEndpointRequest]) -> None:
    for req in endpoints:
        try:
            await service.get(admin, req.name)
        except ResourceDoesNotExist:
            await service.create(admin, req)
            log.info("config file: created endpoint %s", req.name)
            continue
        if req.config is not None:
            await service.update_config(admin, req.name, req.config)
        if req.ai_gateway is not None:
            await service.put_ai_gateway(admin, req.name, req.ai_gateway)
        if req.tags is not None:
            await service.patch_tags(admin, req.name, PatchTagsRequest(add_tags=req.tags))
        log.info("config file: updated endpoint %s", req.name)
