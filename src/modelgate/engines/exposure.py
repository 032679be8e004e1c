"""Serving catalog models as ready endpoints (`databricks-<name>`), created at startup when missing."""

from __future__ import annotations

import logging
import os

from modelgate.auth.principal import Principal
from modelgate.engines.catalog import DEFAULT_EMBEDDING_MODEL, LocalCatalog
from modelgate.errors import ResourceAlreadyExists, ResourceDoesNotExist
from modelgate.protocol.endpoints import CreateEndpointRequest
from modelgate.serving.endpoint_service import EndpointService

log = logging.getLogger(__name__)

# Built-in models get their endpoint unless MODELGATE_EXPOSE_DEFAULT_MODELS=0, so a fresh server answers
# embeddings out of the box; models from the config file that name an `endpoint` always get it.
EXPOSE_DEFAULTS_ENV = "MODELGATE_EXPOSE_DEFAULT_MODELS"


def exposes_defaults() -> bool:
    return os.environ.get(EXPOSE_DEFAULTS_ENV, "1").lower() not in ("0", "false", "no")


async def expose_endpoints(service: EndpointService, admin: Principal, catalog: LocalCatalog) -> None:
    expose_defaults = exposes_defaults()
    for endpoint, entry in catalog.endpoints():
        if entry.name == DEFAULT_EMBEDDING_MODEL and not expose_defaults and not entry.from_config:
            continue
        try:
            await service.get(admin, endpoint)
            continue
        except ResourceDoesNotExist:
            pass
        request = CreateEndpointRequest.model_validate(
            {"name": endpoint, "config": {"served_entities": [{"entity_name": entry.full_name, "entity_version": "1"}]}}
        )
        try:
            await service.create(admin, request)
        except ResourceAlreadyExists:  # another worker process created it first
            continue
        log.info("catalog model %s served as endpoint %s", entry.full_name, endpoint)
