"""Control-plane logic for serving endpoints: create, read, update, delete, tags, AI Gateway, permissions.

Every mutation runs in one database transaction, bumps the generation counter (so other processes drop
their cached runtimes) and invalidates this process's runtime at once.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from modelgate.auth.permissions import LEVEL_DESCRIPTIONS, Level, effective_level
from modelgate.auth.principal import Principal
from modelgate.errors import (
    InvalidParameterValue,
    PermissionDenied,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
)
from modelgate.gateway.guardrails import Guardrails
from modelgate.protocol.endpoints import (
    MAX_SERVED_ENTITIES,
    AiGatewayConfig,
    CreateEndpointRequest,
    EndpointCoreConfigInput,
    PatchTagsRequest,
    PermissionsRequest,
)
from modelgate.secrets_store import SecretStore
from modelgate.serving.endpoint_view import endpoint_view, openapi_document
from modelgate.serving.entities import EntityFactory
from modelgate.serving.registry import EndpointRegistry, acl_from_rows, bump_generation
from modelgate.serving.traffic import check_routes, default_routes
from modelgate.store.db import Database
from modelgate.store.tables import Endpoint, EndpointPermission

Json = dict[str, Any]
_KIND_FIELD = {"user": "user_name", "group": "group_name", "service_principal": "service_principal_name"}


def _now_ms() -> int:
    return int(time.time() * 1000)


class EndpointService:
    def __init__(
        self,
        db: Database,
        factory: EntityFactory,
        registry: EndpointRegistry,
        guardrails: Guardrails | None = None,
        secrets: SecretStore | None = None,
    ) -> None:
        self.db = db
        self.factory = factory
        self.registry = registry
        self.guardrails = guardrails
        self.secrets = secrets or SecretStore(db, factory.cipher)
        self._bumped: dict[str, str] = {}  # endpoint -> the generation our last change of it made

    # -- helpers -----------------------------------------------------------------------------------
    def _build_config(self, config: EndpointCoreConfigInput) -> tuple[Json, str]:
        try:
            entities = config.entities()
        except ValueError as exc:
            raise InvalidParameterValue(str(exc)) from None
        if not entities:
            raise InvalidParameterValue(
                "config.served_entities must name at least one served entity (an external_model, or an "
                "entity_name from the model catalog)"
            )
        if len(entities) > MAX_SERVED_ENTITIES:
            raise InvalidParameterValue(f"an endpoint serves at most {MAX_SERVED_ENTITIES} entities")
        stored_entities: list[Json] = []
        tasks: set[str] = set()
        for entity in entities:
            stored, task = self.factory.prepare(entity)
            stored_entities.append(stored)
            tasks.add(task)
        names = [e["name"] for e in stored_entities]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InvalidParameterValue(
                f"served entity names must be unique in an endpoint; repeated: {', '.join(dupes)}. "
                "Give each a distinct 'name'."
            )
        if len(tasks) > 1:
            raise InvalidParameterValue(
                f"all served entities of an endpoint must share one task; got {', '.join(sorted(tasks))}"
            )
        kinds = {"external_model" in e for e in stored_entities}
        if len(kinds) > 1:
            raise InvalidParameterValue("an endpoint cannot mix external models with other served entities")
        if config.traffic_config is not None and config.traffic_config.routes:
            routes = [r.model_dump(exclude_none=True) for r in config.traffic_config.routes]
            check_routes(routes, names)
            routes = [
                {
                    "served_entity_name": r.get("served_entity_name") or r.get("served_model_name"),
                    "traffic_percentage": r["traffic_percentage"],
                }
                for r in routes
            ]
        else:
            routes = default_routes(names)
        stored_config: Json = {"served_entities": stored_entities, "traffic_config": {"routes": routes}}
        if config.auto_capture_config is not None:
            stored_config["auto_capture_config"] = config.auto_capture_config.model_dump(exclude_none=True)
        return stored_config, tasks.pop()

    @staticmethod
    def _load(s: Session, name: str) -> tuple[Endpoint, list[EndpointPermission]]:
        row = s.scalar(select(Endpoint).where(Endpoint.name == name))
        if row is None:
            raise ResourceDoesNotExist(f"Endpoint with name '{name}' does not exist.")
        perms = list(s.scalars(select(EndpointPermission).where(EndpointPermission.endpoint_id == row.id)))
        return row, perms

    @staticmethod
    def _check(principal: Principal, row: Endpoint, perms: list[EndpointPermission], needed: Level) -> Level:
        level = effective_level(principal, acl_from_rows(perms), row.creator)
        if level < needed:
            if level == Level.NONE:
                # Do not reveal that an endpoint exists to someone who may not even view it.
                raise ResourceDoesNotExist(f"Endpoint with name '{row.name}' does not exist.")
            raise PermissionDenied(
                f"{principal.name} does not have {needed.name} permission on serving endpoint "
                f"'{row.name}'. Ask a user with CAN_MANAGE on it to grant access."
            )
        return level

    def _set_config(self, s: Session, principal: Principal, row: Endpoint, stored_config: Json) -> None:
        """`principal` sets the config: it must READ every secret scope the config names (and be an admin to
        name the server's environment); its references then resolve with its rights."""
        self.secrets.check_references(
            s, principal, stored_config["served_entities"], self.factory.deps.secrets.env_policy
        )
        row.config = stored_config
        row.config_owner_kind, row.config_owner = principal.kind, principal.name

    def _changed(self, s: Session, name: str) -> None:
        self._bumped[name] = bump_generation(s)

    def _after(self, name: str) -> None:
        self.registry.changed_here(name, self._bumped.pop(name, None))

    # -- create / read -------------------------------------------------------------------------------
    async def create(self, principal: Principal, req: CreateEndpointRequest) -> Json:
        if req.config is None:
            raise InvalidParameterValue("'config' with at least one served entity is required")
        stored_config, task = self._build_config(req.config)
        ai_gateway = req.ai_gateway.model_dump(exclude_none=True) if req.ai_gateway else None
        if ai_gateway and self.guardrails is not None:
            self.guardrails.check_config(ai_gateway.get("guardrails"))
        if req.rate_limits:
            ai_gateway = ai_gateway or {}
            ai_gateway.setdefault("rate_limits", [r.model_dump(exclude_none=True) for r in req.rate_limits])
        extras = {
            k: v
            for k, v in req.model_dump(
                exclude_none=True,
                include={
                    "budget_policy_id",
                    "email_notifications",
                    "telemetry_config",
                    "uc_system_metrics_export_state",
                    "usage_policy_id",
                },
            ).items()
        }

        def work(s: Session) -> Json:
            if s.scalar(select(Endpoint.id).where(Endpoint.name == req.name)) is not None:
                raise ResourceAlreadyExists(f"Endpoint with name '{req.name}' already exists.")
            now = _now_ms()
            row = Endpoint(
                id=secrets.token_hex(16),
                name=req.name,
                creator=principal.name,
                creation_ms=now,
                updated_ms=now,
                description=req.description,
                task=task,
                config_version=1,
                ai_gateway=ai_gateway,
                tags=[t.model_dump(exclude_none=True) for t in req.tags or []],
                route_optimized=bool(req.route_optimized),
                extras=extras,
            )
            self._set_config(s, principal, row, stored_config)
            s.add(row)
            s.add(
                EndpointPermission(
                    endpoint_id=row.id,
                    principal_kind=principal.kind,
                    principal_name=principal.name,
                    level=Level.CAN_MANAGE.name,
                )
            )
            self._changed(s, req.name)
            s.flush()
            return endpoint_view(row, self.factory, Level.CAN_MANAGE)

        try:
            view = await self.db.run(work)
        except IntegrityError:
            raise ResourceAlreadyExists(f"Endpoint with name '{req.name}' already exists.") from None
        self._after(req.name)
        return view

    async def get(self, principal: Principal, name: str) -> Json:
        def work(s: Session) -> Json:
            row, perms = self._load(s, name)
            level = self._check(principal, row, perms, Level.CAN_VIEW)
            return endpoint_view(row, self.factory, level)

        return await self.db.run(work)

    async def list_visible(self, principal: Principal) -> list[Json]:
        def work(s: Session) -> list[Json]:
            rows = list(s.scalars(select(Endpoint).order_by(Endpoint.name)))
            perms: dict[str, list[EndpointPermission]] = {}
            for p in s.scalars(select(EndpointPermission)):
                perms.setdefault(p.endpoint_id, []).append(p)
            out = []
            for row in rows:
                level = effective_level(principal, acl_from_rows(perms.get(row.id, [])), row.creator)
                if level >= Level.CAN_VIEW:
                    out.append(endpoint_view(row, self.factory, level, summary=True))
            return out

        return await self.db.run(work)

    async def list_queryable(self, principal: Principal) -> list[Endpoint]:
        """The endpoints `principal` may query (CAN_QUERY or more), by name: what the OpenAI models list shows."""

        def work(s: Session) -> list[Endpoint]:
            rows = list(s.scalars(select(Endpoint).order_by(Endpoint.name)))
            perms: dict[str, list[EndpointPermission]] = {}
            for p in s.scalars(select(EndpointPermission)):
                perms.setdefault(p.endpoint_id, []).append(p)
            return [
                row
                for row in rows
                if effective_level(principal, acl_from_rows(perms.get(row.id, [])), row.creator) >= Level.CAN_QUERY
            ]

        return await self.db.run(work)

    async def delete(self, principal: Principal, name: str) -> None:
        def work(s: Session) -> None:
            row, perms = self._load(s, name)
            self._check(principal, row, perms, Level.CAN_MANAGE)
            s.execute(delete(EndpointPermission).where(EndpointPermission.endpoint_id == row.id))
            s.delete(row)
            self._changed(s, name)

        await self.db.run(work)
        self._after(name)

    # -- updates -------------------------------------------------------------------------------------
    async def update_config(self, principal: Principal, name: str, config: EndpointCoreConfigInput) -> Json:
        stored_config, task = self._build_config(config)

        def work(s: Session) -> Json:
            row, perms = self._load(s, name)
            level = self._check(principal, row, perms, Level.CAN_MANAGE)
            was_external = all("external_model" in e for e in row.config.get("served_entities", []))
            is_external = all("external_model" in e for e in stored_config["served_entities"])
            if was_external != is_external:
                raise InvalidParameterValue(
                    "an endpoint cannot switch between external models and other served entities; "
                    "create a new endpoint instead"
                )
            if config.auto_capture_config is None and "auto_capture_config" in row.config:
                stored_config["auto_capture_config"] = row.config["auto_capture_config"]
            if stored_config == row.config and task == row.task:
                return endpoint_view(row, self.factory, level)  # nothing changed: no new config version
            self._set_config(s, principal, row, stored_config)
            row.task = task
            row.config_version += 1
            row.updated_ms = _now_ms()
            self._changed(s, name)
            s.flush()
            return endpoint_view(row, self.factory, level)

        view = await self.db.run(work)
        self._after(name)
        return view

    async def put_ai_gateway(self, principal: Principal, name: str, config: AiGatewayConfig) -> Json:
        stored = config.model_dump(exclude_none=True)
        if self.guardrails is not None:
            self.guardrails.check_config(stored.get("guardrails"))

        def work(s: Session) -> Json:
            row, perms = self._load(s, name)
            self._check(principal, row, perms, Level.CAN_MANAGE)
            old = row.ai_gateway or {}
            old_it = old.get("inference_table_config") or {}
            new_it = stored.get("inference_table_config") or {}
            if old_it.get("enabled") and new_it.get("enabled"):
                for key in ("catalog_name", "schema_name", "table_name_prefix"):
                    if key in new_it and old_it.get(key) != new_it.get(key):
                        raise InvalidParameterValue(
                            f"inference_table_config.{key} cannot change while the inference table is "
                            "enabled; disable it first"
                        )
            row.ai_gateway = stored
            row.updated_ms = _now_ms()
            self._changed(s, name)
            return stored

        out = await self.db.run(work)
        self._after(name)
        return out

    async def put_rate_limits(self, principal: Principal, name: str, limits: list[Json]) -> Json:
        def work(s: Session) -> Json:
            row, perms = self._load(s, name)
            self._check(principal, row, perms, Level.CAN_MANAGE)
            gateway = dict(row.ai_gateway or {})
            gateway["rate_limits"] = limits
            row.ai_gateway = gateway
            row.updated_ms = _now_ms()
            self._changed(s, name)
            return {"rate_limits": limits}

        out = await self.db.run(work)
        self._after(name)
        return out

    async def patch_tags(self, principal: Principal, name: str, req: PatchTagsRequest) -> Json:
        def work(s: Session) -> Json:
            row, perms = self._load(s, name)
            self._check(principal, row, perms, Level.CAN_MANAGE)
            tags = {t["key"]: t for t in row.tags}
            for key in req.delete_tags or []:
                tags.pop(key, None)
            for tag in req.add_tags or []:
                tags[tag.key] = tag.model_dump(exclude_none=True)
            row.tags = list(tags.values())
            row.updated_ms = _now_ms()
            return {"tags": row.tags}

        return await self.db.run(work)

    async def openapi(self, principal: Principal, name: str, server_url: str) -> Json:
        def work(s: Session) -> Json:
            row, perms = self._load(s, name)
            self._check(principal, row, perms, Level.CAN_QUERY)
            return openapi_document(row, server_url)

        return await self.db.run(work)

    async def require_level(self, principal: Principal, name: str, needed: Level) -> Endpoint:
        def work(s: Session) -> Endpoint:
            row, perms = self._load(s, name)
            self._check(principal, row, perms, needed)
            return row

        return await self.db.run(work)

    # -- permissions -----------------------------------------------------------------------------------
    @staticmethod
    def _load_by_id(s: Session, endpoint_id: str) -> tuple[Endpoint, list[EndpointPermission]]:
        row = s.get(Endpoint, endpoint_id)
        if row is None:
            raise ResourceDoesNotExist(
                f"Serving endpoint with id '{endpoint_id}' does not exist. Permissions take the endpoint's "
                "id (from GET /api/2.0/serving-endpoints/{name}), not its name."
            )
        perms = list(s.scalars(select(EndpointPermission).where(EndpointPermission.endpoint_id == row.id)))
        return row, perms

    @staticmethod
    def _permissions_view(row: Endpoint, perms: list[EndpointPermission]) -> Json:
        acl: list[Json] = []
        for p in sorted(perms, key=lambda p: (p.principal_kind, p.principal_name)):
            acl.append(
                {
                    _KIND_FIELD[p.principal_kind]: p.principal_name,
                    "all_permissions": [{"permission_level": p.level, "inherited": False}],
                }
            )
        acl.append(
            {
                "group_name": "admins",
                "all_permissions": [
                    {
                        "permission_level": "CAN_MANAGE",
                        "inherited": True,
                        "inherited_from_object": ["/serving-endpoints/"],
                    }
                ],
            }
        )
        return {
            "object_id": f"/serving-endpoints/{row.id}",
            "object_type": "serving-endpoint",
            "access_control_list": acl,
        }

    async def get_permissions(self, principal: Principal, endpoint_id: str) -> Json:
        def work(s: Session) -> Json:
            row, perms = self._load_by_id(s, endpoint_id)
            self._check(principal, row, perms, Level.CAN_VIEW)
            return self._permissions_view(row, perms)

        return await self.db.run(work)

    async def set_permissions(
        self, principal: Principal, endpoint_id: str, req: PermissionsRequest, *, replace: bool
    ) -> Json:
        def work(s: Session) -> Json:
            row, perms = self._load_by_id(s, endpoint_id)
            self._check(principal, row, perms, Level.CAN_MANAGE)
            if replace:
                s.execute(delete(EndpointPermission).where(EndpointPermission.endpoint_id == row.id))
                s.flush()
                current: dict[tuple[str, str], EndpointPermission] = {}
            else:
                current = {(p.principal_kind, p.principal_name): p for p in perms}
            for entry in req.access_control_list:
                if entry.user_name:
                    key = ("user", entry.user_name)
                elif entry.group_name:
                    key = ("group", entry.group_name)
                else:
                    key = ("service_principal", entry.service_principal_name or "")
                existing = current.get(key)
                if existing is not None:
                    existing.level = entry.permission_level
                else:
                    new = EndpointPermission(
                        endpoint_id=row.id,
                        principal_kind=key[0],
                        principal_name=key[1],
                        level=entry.permission_level,
                    )
                    s.add(new)
                    current[key] = new
            self._changed(s, row.name)
            s.flush()
            fresh = list(s.scalars(select(EndpointPermission).where(EndpointPermission.endpoint_id == row.id)))
            return {"name": row.name, "view": self._permissions_view(row, fresh)}

        out = await self.db.run(work)
        self._after(out["name"])
        view: Json = out["view"]
        return view

    async def permission_levels(self, principal: Principal, endpoint_id: str) -> Json:
        def work(s: Session) -> Json:
            row, perms = self._load_by_id(s, endpoint_id)
            self._check(principal, row, perms, Level.CAN_VIEW)
            return {
                "permission_levels": [{"permission_level": k, "description": v} for k, v in LEVEL_DESCRIPTIONS.items()]
            }

        return await self.db.run(work)
