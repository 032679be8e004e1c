"""In-memory endpoint runtimes, so the query path never touches the database.

A runtime holds an endpoint's built providers, its traffic splitter and its ACL. It is built on first use
from the store and dropped when the endpoint changes: at once in the process that made the change, and
within `poll_interval_s` elsewhere, through a generation counter other processes poll (several modelgate
processes can share one database). A process does not take its own change for another's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelgate.auth.permissions import AclKey, Level
from modelgate.errors import ResourceDoesNotExist
from modelgate.gateway.tables import RecordingPlan, recording_plan
from modelgate.providers.base import Provider
from modelgate.secrets import ConfigOwner
from modelgate.serving.entities import EntityFactory
from modelgate.serving.traffic import TrafficSplitter
from modelgate.store.counters import bump_counter, read_counter
from modelgate.store.db import Database
from modelgate.store.tables import Endpoint, EndpointPermission

log = logging.getLogger(__name__)

GENERATION_KEY = "endpoints_generation"
MAX_NEGATIVE_ENTRIES = 10_000


@dataclass
class EntityRuntime:
    name: str
    stored: dict[str, Any]
    backend: Provider | None
    build_error: str | None = None


@dataclass
class EndpointRuntime:
    id: str
    name: str
    task: str | None
    creator: str | None
    entities: dict[str, EntityRuntime]
    splitter: TrafficSplitter
    acl: dict[AclKey, Level]
    ai_gateway: dict[str, Any] | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    # What the AI Gateway config switches on, worked out once so queries test a flag, not nested dicts.
    fallback: bool = field(init=False)
    rate_limits: bool = field(init=False)
    input_guardrails: bool = field(init=False)
    output_guardrails: bool = field(init=False)
    recording: RecordingPlan | None = field(init=False)  # usage rows and inference-table rows

    def __post_init__(self) -> None:
        gateway = self.ai_gateway or {}
        self.fallback = bool((gateway.get("fallback_config") or {}).get("enabled"))
        self.rate_limits = bool(gateway.get("rate_limits"))
        guardrails = gateway.get("guardrails") or {}
        self.input_guardrails = bool(guardrails.get("input"))
        self.output_guardrails = bool(guardrails.get("output"))
        self.recording = recording_plan(self.name, self.ai_gateway)


def load_endpoint_row(s: Session, name: str) -> tuple[Endpoint, list[EndpointPermission]] | None:
    row = s.scalar(select(Endpoint).where(Endpoint.name == name))
    if row is None:
        return None
    perms = list(s.scalars(select(EndpointPermission).where(EndpointPermission.endpoint_id == row.id)))
    return row, perms


def acl_from_rows(perms: list[EndpointPermission]) -> dict[AclKey, Level]:
    return {(p.principal_kind, p.principal_name): Level[p.level] for p in perms}


def bump_generation(s: Session) -> str:
    return bump_counter(s, GENERATION_KEY)


class EndpointRegistry:
    def __init__(self, db: Database, factory: EntityFactory, poll_interval_s: float = 1.0) -> None:
        self.db = db
        self.factory = factory
        self.poll_interval_s = poll_interval_s
        self._runtimes: dict[str, EndpointRuntime] = {}
        self._missing: set[str] = set()
        self._generation: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._loading: dict[str, asyncio.Future[EndpointRuntime | None]] = {}

    async def start(self) -> None:
        self._generation = await self.db.run(self._read_generation)
        self._task = asyncio.create_task(self._poll(), name="endpoint-registry-poll")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for rt in self._runtimes.values():
            await self._close(rt)
        self._runtimes.clear()

    def cached(self, name: str) -> EndpointRuntime | None:
        """The runtime if it is built already (the query path's common case: no coroutine, no await)."""
        return self._runtimes.get(name)

    async def get(self, name: str) -> EndpointRuntime:
        rt = self._runtimes.get(name)
        if rt is not None:
            return rt
        if name in self._missing:
            raise _not_found(name)
        rt = await self._load_once(name)
        if rt is None:
            if len(self._missing) >= MAX_NEGATIVE_ENTRIES:
                self._missing.clear()
            self._missing.add(name)
            raise _not_found(name)
        return rt

    def changed_here(self, name: str, generation: str | None) -> None:
        """This process changed endpoint `name`, moving the counter to `generation`: drop that runtime only.

        When the counter moved by exactly our change, the next poll must not take it for another process's
        and drop every runtime: rebuilt providers start cold (new connections, a new OAuth token each)."""
        known = self._generation
        if generation is not None and known is not None and int(generation) == int(known) + 1:
            self._generation = generation
        self.invalidate(name)

    def invalidate(self, name: str | None = None) -> None:
        """Drop one runtime (or all); the next query rebuilds it from the store."""
        if name is None:
            dropped = list(self._runtimes.values())
            self._runtimes.clear()
        else:
            old = self._runtimes.pop(name, None)
            dropped = [old] if old else []
        self._missing.clear()
        for rt in dropped:
            task = asyncio.ensure_future(self._close(rt))
            task.add_done_callback(lambda _t: None)

    async def _load_once(self, name: str) -> EndpointRuntime | None:
        # Concurrent first queries for one endpoint share a single load.
        pending = self._loading.get(name)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[EndpointRuntime | None] = asyncio.get_running_loop().create_future()
        self._loading[name] = fut
        try:
            loaded = await self.db.run(lambda s: load_endpoint_row(s, name))
            rt = self._build(*loaded) if loaded else None
            if rt is not None:
                self._runtimes[name] = rt
            fut.set_result(rt)
            return rt
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved
            raise
        finally:
            self._loading.pop(name, None)

    def _build(self, row: Endpoint, perms: list[EndpointPermission]) -> EndpointRuntime:
        entities: dict[str, EntityRuntime] = {}
        owner = ConfigOwner(row.config_owner_kind or "user", row.config_owner) if row.config_owner else None
        for stored in row.config.get("served_entities", []):
            try:
                backend: Provider | None = self.factory.build(stored, owner)
                error = None
            except Exception as exc:  # a broken entity must not take the endpoint's others down
                # Its message goes to callers (in a 503) and to the log: without any secret it may quote.
                error = self.factory.deps.secrets.mask.scrub(str(exc))
                log.warning("served entity %s of %s cannot be built: %s", stored.get("name"), row.name, error)
                backend = None
            entities[stored["name"]] = EntityRuntime(stored["name"], stored, backend, error)
        routes = [
            (r.get("served_entity_name") or r.get("served_model_name") or "", int(r["traffic_percentage"]))
            for r in row.config.get("traffic_config", {}).get("routes", [])
        ]
        return EndpointRuntime(
            id=row.id,
            name=row.name,
            task=row.task,
            creator=row.creator,
            entities=entities,
            splitter=TrafficSplitter(routes),
            acl=acl_from_rows(perms),
            ai_gateway=row.ai_gateway,
            extras=row.extras,
        )

    @staticmethod
    def _read_generation(s: Session) -> str:
        return read_counter(s, GENERATION_KEY)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval_s)
            try:
                gen = await self.db.run(self._read_generation)
            except Exception as exc:
                log.warning("could not poll endpoint changes: %s", exc)
                continue
            if gen != self._generation:
                self._generation = gen
                self.invalidate()

    async def _close(self, rt: EndpointRuntime) -> None:
        for ent in rt.entities.values():
            if ent.backend is not None:
                with contextlib.suppress(Exception):
                    await ent.backend.aclose()


def _not_found(name: str) -> ResourceDoesNotExist:
    return ResourceDoesNotExist(f"Endpoint with name '{name}' does not exist.")
