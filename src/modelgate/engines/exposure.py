"""Serving catalog models as ready endpoints (`databricks-<name>`).

Built-in and config-file models that name an `endpoint` get it at startup when it is missing. Models
registered with the CLI (which writes the database, with no server at hand) leave their endpoint pending;
a running server creates it as soon as it sees the registration, and at startup.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from sqlalchemy.orm import Session

from modelgate.auth.principal import Principal
from modelgate.engines import model_store
from modelgate.engines.catalog import PREFIX, ChangeHook, LocalCatalog
from modelgate.errors import ModelgateError, ResourceAlreadyExists, ResourceDoesNotExist
from modelgate.protocol.endpoints import CreateEndpointRequest
from modelgate.serving.endpoint_service import EndpointService
from modelgate.store.db import Database

log = logging.getLogger(__name__)

# Built-in models get their endpoint unless MODELGATE_EXPOSE_DEFAULT_MODELS=0, so a fresh server answers
# embeddings out of the box; models from the config file that name an `endpoint` always get it.
EXPOSE_DEFAULTS_ENV = "MODELGATE_EXPOSE_DEFAULT_MODELS"


def exposes_defaults() -> bool:
    return os.environ.get(EXPOSE_DEFAULTS_ENV, "1").lower() not in ("0", "false", "no")


def endpoint_request(endpoint: str, model_name: str) -> CreateEndpointRequest:
    return CreateEndpointRequest.model_validate(
        {"name": endpoint, "config": {"served_entities": [{"entity_name": PREFIX + model_name, "entity_version": "1"}]}}
    )


async def _create_if_missing(service: EndpointService, admin: Principal, endpoint: str, model_name: str) -> None:
    try:
        await service.get(admin, endpoint)
        return
    except ResourceDoesNotExist:
        pass
    try:
        await service.create(admin, endpoint_request(endpoint, model_name))
    except ResourceAlreadyExists:  # another worker process created it first
        return
    log.info("catalog model %s%s served as endpoint %s", PREFIX, model_name, endpoint)


async def expose_endpoints(service: EndpointService, admin: Principal, catalog: LocalCatalog) -> None:
    expose_defaults = exposes_defaults()
    for endpoint, entry in catalog.endpoints():
        if entry.source == "default" and not expose_defaults:
            continue
        await _create_if_missing(service, admin, endpoint, entry.name)


def pending_exposer(service: EndpointService, admin: Principal, db: Database) -> ChangeHook:
    """The catalog's change hook: create the endpoints CLI registrations asked for, once each."""

    async def expose_pending() -> None:
        for model_name, endpoint in await db.run(model_store.pending_endpoints):
            try:
                await _create_if_missing(service, admin, endpoint, model_name)
            except ModelgateError as exc:
                log.warning("could not create endpoint %s for model %s: %s", endpoint, model_name, exc.message)
            await db.run(_clearer(model_name))

    return expose_pending


def _clearer(model_name: str) -> Callable[[Session], None]:
    return lambda s: model_store.clear_pending(s, model_name)
