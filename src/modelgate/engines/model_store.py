"""Registered catalog models in the database: read, add and remove them, and check a new registration.

Each change bumps the `models_generation` counter in `meta`; every server process polls it (see
LocalCatalog) so a model registered through one worker, or with the CLI, is known to all within a second.
The REST routes and the CLI share these functions (the CLI writes the data dir's database directly, as
`modelgate tokens create` does).
"""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelgate.engines.catalog import ENGINES, PREFIX, ModelEntry, RegisteredRow, parse_entry, resolve_path
from modelgate.errors import InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist
from modelgate.store.counters import bump_counter, read_counter
from modelgate.store.tables import CatalogModel, Endpoint

GENERATION_KEY = "models_generation"
GGUF_MAGIC = b"GGUF"


def read_generation(s: Session) -> str:
    return read_counter(s, GENERATION_KEY)


def bump_generation(s: Session) -> None:
    bump_counter(s, GENERATION_KEY)


def read_all(s: Session) -> tuple[str, list[RegisteredRow]]:
    """(generation, registered models); a row that no longer validates (an engine gone) is skipped."""
    out: list[RegisteredRow] = []
    for row in s.scalars(select(CatalogModel).order_by(CatalogModel.name)):
        try:
            entry = parse_entry(row.spec, source="registered")
        except InvalidParameterValue:
            continue
        out.append((entry, row.creator, row.created_ms))
    return read_generation(s), out


def check_location(entry: ModelEntry) -> None:
    """The path must exist and look like what the engine loads: an HF folder (config.json) or a GGUF file."""
    try:
        location = Path(resolve_path(entry.path))
    except ImportError as exc:
        raise InvalidParameterValue(f"'path' names package '{exc.name}', which is not installed.") from None
    except Exception as exc:
        raise InvalidParameterValue(f"'path' {entry.path} cannot be resolved: {exc}") from None
    kind = ENGINES[entry.engine].path_kind
    if not location.exists():
        raise InvalidParameterValue(f"'path' {entry.path} does not exist on the server's machine.")
    if location.is_dir():
        if not (location / "config.json").is_file():
            raise InvalidParameterValue(
                f"'path' {entry.path} is a folder without config.json; give a Hugging Face model folder."
            )
        return
    if kind == "hf_folder":
        raise InvalidParameterValue(
            f"'path' {entry.path} is a file; engine '{entry.engine}' loads a Hugging Face model folder."
        )
    try:
        with location.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise InvalidParameterValue(f"'path' {entry.path} cannot be read: {exc.strerror}") from None
    if magic != GGUF_MAGIC:
        raise InvalidParameterValue(f"'path' {entry.path} is neither a Hugging Face model folder nor a GGUF file.")


def check_endpoint_free(s: Session, endpoint: str | None) -> None:
    if endpoint and s.scalar(select(Endpoint.id).where(Endpoint.name == endpoint)) is not None:
        raise ResourceAlreadyExists(
            f"Endpoint '{endpoint}' already exists; choose another 'endpoint' or leave it out and serve "
            "the model from an existing endpoint's served entities."
        )


def add(s: Session, entry: ModelEntry, creator: str | None, *, reserved: set[str], endpoint_pending: bool) -> None:
    """Store a new registration; `reserved` holds the names of the built-in and config-file models."""
    if entry.name in reserved:
        raise ResourceAlreadyExists(
            f"Model '{entry.name}' is already in the catalog (built in or from the config file); choose another name."
        )
    if s.get(CatalogModel, entry.name) is not None:
        raise ResourceAlreadyExists(f"Model '{entry.name}' is already registered; remove it first to change it.")
    check_endpoint_free(s, entry.endpoint)
    s.add(
        CatalogModel(
            name=entry.name,
            task=entry.task,
            engine=entry.engine,
            spec=entry.model_dump(exclude_none=True),
            endpoint_pending=endpoint_pending,
            creator=creator,
            created_ms=int(time.time() * 1000),
        )
    )
    bump_generation(s)


def serving_endpoints(s: Session, name: str) -> list[str]:
    """Names of the endpoints whose served entities (current or pending config) name this model."""
    full = PREFIX + name
    out = []
    for ep_name, config in s.execute(select(Endpoint.name, Endpoint.config)):
        entities = list(config.get("served_entities", []))
        entities += (config.get("pending_config") or {}).get("served_entities", [])
        if any(e.get("entity_name") == full for e in entities):
            out.append(ep_name)
    return sorted(out)


def remove(s: Session, name: str, *, reserved: set[str]) -> None:
    """Delete a registration; refused while an endpoint serves the model, and for built-in/config models."""
    row = s.get(CatalogModel, name)
    if row is None:
        if name in reserved:
            raise InvalidParameterValue(
                f"Model '{name}' is built in or comes from the config file; remove it from the config file "
                "and restart the server instead."
            )
        raise ResourceDoesNotExist(f"Model '{name}' is not registered.")
    serving = serving_endpoints(s, name)
    if serving:
        raise InvalidParameterValue(
            f"Model '{name}' is still served by endpoint(s) {', '.join(serving)}; delete them "
            "(DELETE /api/2.0/serving-endpoints/<name>) or change their served entities first."
        )
    s.delete(row)
    bump_generation(s)


def pending_endpoints(s: Session) -> list[tuple[str, str]]:
    """(model name, endpoint) of CLI registrations whose endpoint the server has yet to create."""
    rows = s.scalars(select(CatalogModel).where(CatalogModel.endpoint_pending.is_(True)))
    return [(r.name, str(r.spec.get("endpoint"))) for r in rows if r.spec.get("endpoint")]


def clear_pending(s: Session, name: str) -> None:
    row = s.get(CatalogModel, name)
    if row is not None:
        row.endpoint_pending = False
