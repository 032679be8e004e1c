"""create_app(settings): builds the ASGI app and everything it owns. No module-level state."""

from __future__ import annotations

import logging
import secrets as pysecrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from modelgate.auth.authenticator import Authenticator
from modelgate.auth.principal import Principal
from modelgate.auth.tokens import PAT_PATTERN, ensure_principal, register_token_value
from modelgate.config_file import apply_endpoints, load_endpoints
from modelgate.errors import EndpointNotFound, InternalError, MethodNotAllowed, ModelgateError
from modelgate.metrics import ServingMetrics
from modelgate.providers.base import ProviderDeps
from modelgate.providers.registry import ProviderRegistry
from modelgate.routes import endpoints as endpoint_routes
from modelgate.routes import serving as serving_routes
from modelgate.routes import system as system_routes
from modelgate.routes import tokens as token_routes
from modelgate.routes.common import JSONResponse
from modelgate.secrets import SecretCipher, SecretResolver, load_or_create_key
from modelgate.serving.dispatch import InvocationService
from modelgate.serving.endpoint_service import EndpointService
from modelgate.serving.entities import EntityFactory
from modelgate.serving.registry import EndpointRegistry
from modelgate.settings import Settings
from modelgate.store.db import Database
from modelgate.store.tables import Meta

log = logging.getLogger("modelgate")


@dataclass
class Services:
    settings: Settings
    db: Database
    http: aiohttp.ClientSession
    authenticator: Authenticator
    registry: EndpointRegistry
    endpoints: EndpointService
    invocations: InvocationService
    metrics: ServingMetrics
    secrets: SecretResolver
    workspace_id: str
    admin: Principal


class StartupError(Exception):
    """A problem with the settings that the server cannot start with; the message says how to fix it."""


def _workspace_id(db: Database) -> str:
    with db.session() as s:
        row = s.get(Meta, "workspace_id")
        if row is None:
            row = Meta(key="workspace_id", value=str(1_000_000_000_000_000 + pysecrets.randbelow(10**15)))
            s.add(row)
        return row.value


def _bootstrap_admin(db: Database, settings: Settings) -> Principal:
    with db.session() as s:
        admin = ensure_principal(s, "user", settings.admin_user, is_admin=True)
        if settings.admin_token:
            if not PAT_PATTERN.match(settings.admin_token):
                raise StartupError(
                    "MODELGATE_ADMIN_TOKEN must look like a Databricks personal access token: 'dapi' "
                    'followed by 32 hex characters (generate one with: python -c "import secrets; '
                    "print('dapi' + secrets.token_hex(16))\")"
                )
            if register_token_value(s, admin, settings.admin_token, comment="MODELGATE_ADMIN_TOKEN"):
                log.info("registered MODELGATE_ADMIN_TOKEN for admin user %s", settings.admin_user)
        return Principal(kind="user", name=admin.name, is_admin=True, principal_id=admin.id)


def _error_response(exc: ModelgateError) -> Response:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers())


async def _on_modelgate_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ModelgateError)
    return _error_response(exc)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return _error_response(EndpointNotFound(f"No API found for '{request.method} {request.url.path}'."))
    if exc.status_code == 405:
        return _error_response(MethodNotAllowed(f"{request.method} is not supported on '{request.url.path}'."))
    err = ModelgateError(str(exc.detail))
    err.status = exc.status_code
    return _error_response(err)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s: %s", request.method, request.url.path, type(exc).__name__, exc_info=exc)
    return _error_response(InternalError("Internal error; the server log has the details."))


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = await _start(settings)
        app.state.services = services
        try:
            yield
        finally:
            await _stop(services)

    app = Starlette(
        routes=[
            *system_routes.routes,
            *serving_routes.routes,
            *endpoint_routes.routes,
            *token_routes.routes,
        ],
        exception_handlers={
            ModelgateError: _on_modelgate_error,
            HTTPException: _on_http_error,
            Exception: _on_unexpected,
        },
        lifespan=lifespan,
    )
    return app


async def _start(settings: Settings) -> Services:
    import asyncio

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    await asyncio.to_thread(db.migrate)
    cipher = SecretCipher(load_or_create_key(settings.data_dir, settings.secret_key))
    resolver = SecretResolver(cipher)
    admin = await asyncio.to_thread(_bootstrap_admin, db, settings)
    workspace_id = await asyncio.to_thread(_workspace_id, db)
    http = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=settings.upstream_connections, keepalive_timeout=60, ttl_dns_cache=300),
        auto_decompress=True,
        trust_env=False,
    )
    deps = ProviderDeps(http=http, secrets=resolver, request_timeout_s=settings.upstream_timeout_s)
    factory = EntityFactory(ProviderRegistry(), deps, cipher)
    registry = EndpointRegistry(db, factory, poll_interval_s=settings.registry_poll_s)
    await registry.start()
    metrics = ServingMetrics()
    services = Services(
        settings=settings,
        db=db,
        http=http,
        authenticator=Authenticator(db),
        registry=registry,
        endpoints=EndpointService(db, factory, registry),
        invocations=InvocationService(registry, observers=[metrics.observe]),
        metrics=metrics,
        secrets=resolver,
        workspace_id=workspace_id,
        admin=admin,
    )
    if settings.config_file is not None:
        await apply_endpoints(services.endpoints, admin, load_endpoints(settings.config_file))
    return services


async def _stop(services: Services) -> None:
    await services.registry.stop()
    await services.http.close()
    services.db.dispose()
