"""Tables. Every schema change goes through a numbered Alembic migration in `migrations/versions`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Principal(Base):
    """A user, service principal or group. Users are named by user name (an email, usually)."""

    __tablename__ = "principals"
    __table_args__ = (UniqueConstraint("kind", "name", name="uq_principals_kind_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))  # user | service_principal | group
    name: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)


class Token(Base):
    """A personal access token, stored only as its SHA-256 hash."""

    __tablename__ = "tokens"

    token_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("principals.id", ondelete="CASCADE"), index=True)
    comment: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    creation_time_ms: Mapped[int] = mapped_column(BigInteger)
    expiry_time_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class Endpoint(Base):
    """A serving endpoint. `config` holds served entities and traffic with secrets already encrypted."""

    __tablename__ = "endpoints"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    creator: Mapped[str | None] = mapped_column(String(255), nullable=True)
    creation_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    task: Mapped[str | None] = mapped_column(String(64), nullable=True)
    config_version: Mapped[int] = mapped_column(Integer, default=1)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    ai_gateway: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    tags: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    route_optimized: Mapped[bool] = mapped_column(Boolean, default=False)
    # Fields stored and echoed but not acted on (budget_policy_id, email_notifications, ...).
    extras: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The principal that last set `config`: its secret references resolve with this principal's rights.
    config_owner_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    config_owner: Mapped[str | None] = mapped_column(String(255), nullable=True)


class EndpointPermission(Base):
    __tablename__ = "endpoint_permissions"

    endpoint_id: Mapped[str] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"), primary_key=True)
    principal_kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    principal_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    level: Mapped[str] = mapped_column(String(32))


class Meta(Base):
    """Small key/value facts, such as the generation counter other processes poll to refresh caches."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ServicePrincipalSecret(Base):
    """An OAuth client secret of a service principal, stored only as its SHA-256 hash."""

    __tablename__ = "service_principal_secrets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("principals.id", ondelete="CASCADE"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    create_time_ms: Mapped[int] = mapped_column(BigInteger)
    expire_time_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class GroupMember(Base):
    """Membership of a user or service principal in a group (all three are rows of `principals`)."""

    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(ForeignKey("principals.id", ondelete="CASCADE"), primary_key=True)
    member_id: Mapped[int] = mapped_column(
        ForeignKey("principals.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class SecretScope(Base):
    """A secret scope (Databricks secrets API); who may do what with it is in `secret_acls`."""

    __tablename__ = "secret_scopes"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    backend_type: Mapped[str] = mapped_column(String(32), default="DATABRICKS")
    creator: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)


class Secret(Base):
    """A secret value, encrypted with the server's key (kept outside the database) as a Fernet token."""

    __tablename__ = "secrets"

    scope: Mapped[str] = mapped_column(ForeignKey("secret_scopes.name", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value_encrypted: Mapped[str] = mapped_column(Text)
    last_updated_ms: Mapped[int] = mapped_column(BigInteger)


class SecretAcl(Base):
    """READ, WRITE or MANAGE on a secret scope for a user name, group name or service principal id."""

    __tablename__ = "secret_acls"

    scope: Mapped[str] = mapped_column(ForeignKey("secret_scopes.name", ondelete="CASCADE"), primary_key=True)
    principal: Mapped[str] = mapped_column(String(255), primary_key=True)
    permission: Mapped[str] = mapped_column(String(16))


class CatalogModel(Base):
    """A local catalog model registered over REST or the CLI (config-file and built-in ones are not stored).

    `spec` is the validated registration (task, engine, path and engine options). `endpoint_pending` is set
    by the CLI, which has no running server at hand: the server creates that endpoint and clears the flag.
    """

    __tablename__ = "catalog_models"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    task: Mapped[str] = mapped_column(String(64))
    engine: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    endpoint_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    creator: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)
