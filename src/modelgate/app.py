"""create_app(settings): builds the ASGI app and everything it owns. No module-level state."""

from __future__ import annotations

import gc
import logging
import os
import secrets as pysecrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from modelgate.auth.authenticator import Authenticator
from modelgate.auth.oauth import OAuthIssuer, load_or_create_signing_key
from modelgate.auth.principal import Principal
from modelgate.auth.tokens import PAT_PATTERN, create_token, ensure_principal, list_tokens, register_token_value
from modelgate.config_file import apply_endpoints, load_endpoints, load_models
from modelgate.engines.catalog import DEFAULT_EMBEDDING_ENDPOINT, LocalCatalog
from modelgate.engines.exposure import expose_endpoints, exposes_defaults, pending_exposer
from modelgate.errors import Cancelled, EndpointNotFound, InternalError, MethodNotAllowed, ModelgateError
from modelgate.gateway.guardrails import SAFETY_PROMPT, Guardrails
from modelgate.gateway.ratelimit import MemoryCounters, RateLimiter, RedisCounters
from modelgate.gateway.recorder import GatewayRecorder
from modelgate.gateway.writer import GatewayWriter
from modelgate.metrics import ServingMetrics
from modelgate.protocol.chat import ChatRequest
from modelgate.protocol.embeddings import EmbeddingRequest
from modelgate.providers.base import ProviderDeps
from modelgate.providers.http import HttpClient, new_http_client
from modelgate.providers.registry import ProviderRegistry
from modelgate.redaction import SecretMask, install_log_scrubbing
from modelgate.routes import endpoints as endpoint_routes
from modelgate.routes import gateway_data as gateway_data_routes
from modelgate.routes import models as model_routes
from modelgate.routes import oauth as oauth_routes
from modelgate.routes import openai_models as openai_model_routes
from modelgate.routes import responses as responses_routes
from modelgate.routes import scim as scim_routes
from modelgate.routes import secrets as secret_routes
from modelgate.routes import service_principals as service_principal_routes
from modelgate.routes import serving as serving_routes
from modelgate.routes import system as system_routes
from modelgate.routes import tokens as token_routes
from modelgate.routes import ui as ui_routes
from modelgate.routes.common import JSONResponse
from modelgate.routes.serving import match_query_route
from modelgate.secrets import EnvPolicy, SecretCipher, SecretResolver, load_or_create_key
from modelgate.secrets_store import SecretStore
from modelgate.serving.dispatch import InvocationService
from modelgate.serving.endpoint_service import EndpointService
from modelgate.serving.entities import EntityFactory
from modelgate.serving.registry import EndpointRegistry
from modelgate.serving.upstream_hosts import UpstreamHostPolicy
from modelgate.settings import Settings
from modelgate.store.db import Database
from modelgate.store.tables import Meta

log = logging.getLogger("modelgate")


@dataclass
class Services:
    settings: Settings
    db: Database
    http: HttpClient
    authenticator: Authenticator
    registry: EndpointRegistry
    endpoints: EndpointService
    invocations: InvocationService
    writer: GatewayWriter
    limiter: RateLimiter
    metrics: ServingMetrics
    secrets: SecretResolver
    workspace_id: str
    admin: Principal
    oauth: OAuthIssuer | None = None
    catalog: LocalCatalog | None = None


class StartupError(Exception):
    """A problem with the settings that the server cannot start with; the message says how to fix it."""


def _workspace_id(db: Database) -> str:
    with db.session() as s:
        row = s.get(Meta, "workspace_id")
        if row is None:
            row = Meta(key="workspace_id", value=str(1_000_000_000_000_000 + pysecrets.randbelow(10**15)))
            s.add(row)
        return row.value


ADMIN_TOKEN_FILE = "admin-token"


def _write_private(path: Path, text: str) -> None:
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")


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
        elif not list_tokens(s, admin.id):
            # First start without MODELGATE_ADMIN_TOKEN: make one and leave it where only the owner can read
            # it (never in a log), so a fresh install works without any set-up.
            value, _info = create_token(s, admin, comment="first-start admin token")
            _write_private(settings.data_dir / ADMIN_TOKEN_FILE, value)
            log.warning("created an admin token; it is in %s", settings.data_dir / ADMIN_TOKEN_FILE)
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


async def _on_client_gone(request: Request, exc: Exception) -> Response:
    """The client hung up while sending its body: nothing to answer, nothing worth a traceback."""
    return _error_response(Cancelled("The client closed the connection before sending the whole request."))


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s: %s", request.method, request.url.path, type(exc).__name__, exc_info=exc)
    return _error_response(InternalError("Internal error; the server log has the details."))


class ModelgateApp(Starlette):
    """Starlette, except that the query routes' POSTs (the hot path) skip routing and middleware: their apps
    answer every error themselves (routes/serving.py)."""

    services: Services  # set at start-up (also as state.services, where Starlette routes look)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            found = match_query_route(scope["path"])
            if found is not None:
                query_app, scope["path_params"] = found
                scope["app"] = self
                await query_app(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


# Collect the young generation after this many more container objects were allocated than freed (Python's
# default is 700). At 64 requests in flight the objects of the requests under way alone outnumber 700, so
# the default ran a young collection every ~30 requests, each walking all of them: ~10 us per request and
# 10-20% of the throughput in bench/proxy_bench.py. Garbage in cycles still gets collected, a little later.
GC_YOUNG_THRESHOLD = 50_000


def settle_heap() -> None:
    """Move what startup built (modules, routes, models) out of the garbage collector's sight, and make
    young collections rare enough that requests in flight are not walked again and again.

    Those objects live as long as the process; without this every full collection walks all of them again,
    which showed up as latency spikes and CPU under load.
    """
    gc.collect()
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def create_app(settings: Settings | None = None, mask: SecretMask | None = None) -> Starlette:
    """The app; `mask` is the process's secret mask when its logs are scrubbed with it (`modelgate serve`)."""
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = await _start(settings, mask)
        app.state.services = services
        if isinstance(app, ModelgateApp):
            app.services = services
        settle_heap()
        try:
            yield
        finally:
            await _stop(services)

    app = ModelgateApp(
        routes=[
            *serving_routes.routes,  # the query path first: routes are matched in order
            *responses_routes.routes,
            *openai_model_routes.routes,
            *system_routes.routes,
            *endpoint_routes.routes,
            *gateway_data_routes.routes,
            *token_routes.routes,
            *secret_routes.routes,
            *model_routes.routes,
            *scim_routes.routes,
            *oauth_routes.routes,
            *service_principal_routes.routes,
            *ui_routes.routes,
        ],
        exception_handlers={
            ModelgateError: _on_modelgate_error,
            HTTPException: _on_http_error,
            ClientDisconnect: _on_client_gone,
            Exception: _on_unexpected,
        },
        lifespan=lifespan,
    )
    return app


def _connect_guardrails(guardrails: Guardrails, services: Services) -> None:
    """Let guardrails query this server's own endpoints (topics by embeddings, safety by a judge model)."""
    settings, invocations, admin = services.settings, services.invocations, services.admin
    # valid_topics compares with the built-in local embedding model unless another endpoint is named.
    embedding_endpoint = settings.guardrail_embedding_endpoint or (
        DEFAULT_EMBEDDING_ENDPOINT if exposes_defaults() else None
    )
    if embedding_endpoint:

        async def embed(texts: list[str]) -> list[list[float]]:
            result = await invocations.call(admin, embedding_endpoint, EmbeddingRequest(input=texts))
            return [item["embedding"] for item in result.body["data"]]

        guardrails.embed = embed
    if settings.guardrail_safety_endpoint:
        safety_endpoint = settings.guardrail_safety_endpoint

        async def judge(text: str) -> str:
            request = ChatRequest.model_validate(
                {
                    "messages": [{"role": "system", "content": SAFETY_PROMPT}, {"role": "user", "content": text}],
                    "max_tokens": 5,
                    "temperature": 0,
                }
            )
            result = await invocations.call(admin, safety_endpoint, request)
            content = result.body["choices"][0]["message"].get("content")
            return content if isinstance(content, str) else ""

        guardrails.judge = judge


def create_app_from_env() -> Starlette:
    """The app of one worker process of `modelgate serve --workers N` (settings from the environment), whose
    log records are scrubbed of every secret the process resolves, as in a single-process `serve`."""
    mask = SecretMask()
    install_log_scrubbing(mask)
    return create_app(Settings.from_env(), mask)


async def prepare_store(settings: Settings, mask: SecretMask | None = None) -> None:
    """Migrate, register the admin token and apply the config file once, before worker processes start."""
    services = await _start(settings, mask)
    await _stop(services)


async def _start(settings: Settings, mask: SecretMask | None = None) -> Services:
    import asyncio

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    await asyncio.to_thread(db.migrate)
    cipher = SecretCipher(load_or_create_key(settings.data_dir, settings.secret_key))
    secret_store = SecretStore(db, cipher)
    resolver = SecretResolver(
        cipher, secret_store, env_policy=EnvPolicy.parse(settings.allowed_env_references), mask=mask
    )
    admin = await asyncio.to_thread(_bootstrap_admin, db, settings)
    workspace_id = await asyncio.to_thread(_workspace_id, db)
    http = new_http_client(max_connections=settings.upstream_connections, read_timeout_s=settings.upstream_timeout_s)
    # The client's Tokio runtime must be closed before the interpreter exits (a live one aborts it), so a
    # start-up that fails from here on closes it before the error propagates.
    try:
        deps = ProviderDeps(http=http, secrets=resolver, retry_budget_s=settings.upstream_retry_budget_s)
        models = load_models(settings.config_file) if settings.config_file else []
        catalog = LocalCatalog.with_defaults(models, deps=deps, cache_dir=settings.resolved_model_cache_dir)
        hosts = UpstreamHostPolicy.parse(settings.upstream_hosts)
        factory = EntityFactory(ProviderRegistry(), deps, cipher, catalog=catalog, upstream_hosts=hosts)
        registry = EndpointRegistry(db, factory, poll_interval_s=settings.registry_poll_s)
        await registry.start()
        metrics = ServingMetrics()
        writer = GatewayWriter(db, flush_interval_s=settings.gateway_flush_interval_s)
        writer.start()
        metrics.watch_writer(writer)
        counters = RedisCounters(settings.redis_url) if settings.redis_url else MemoryCounters()
        limiter = RateLimiter(counters)
        guardrails = Guardrails()
        services = Services(
            settings=settings,
            db=db,
            http=http,
            authenticator=Authenticator(db),
            registry=registry,
            endpoints=EndpointService(db, factory, registry, guardrails=guardrails, secrets=secret_store),
            invocations=InvocationService(
                registry,
                observers=[metrics.observe, GatewayRecorder(writer).observe],
                limiter=limiter,
                guardrails=guardrails,
                mask=resolver.mask,
            ),
            writer=writer,
            limiter=limiter,
            metrics=metrics,
            secrets=resolver,
            workspace_id=workspace_id,
            admin=admin,
            catalog=catalog,
        )
        _connect_guardrails(guardrails, services)
        signing_key = await asyncio.to_thread(load_or_create_signing_key, settings.data_dir)
        services.oauth = OAuthIssuer(db, signing_key, workspace_id)
        services.authenticator.add_verifier(services.oauth.verify)
        if settings.config_file is not None:
            await apply_endpoints(services.endpoints, admin, load_endpoints(settings.config_file))
        await expose_endpoints(services.endpoints, admin, catalog)
        await catalog.start(db, settings.registry_poll_s, pending_exposer(services.endpoints, admin, db))
    except BaseException:
        await http.close()
        raise
    return services


async def _stop(services: Services) -> None:
    import asyncio

    await services.registry.stop()
    if services.catalog is not None:
        await services.catalog.close()  # stops managed inference server processes
    await services.limiter.drain()
    if isinstance(services.limiter.backend, RedisCounters):
        await services.limiter.backend.aclose()
    await asyncio.to_thread(services.writer.close)
    await services.http.close()
    services.db.dispose()
