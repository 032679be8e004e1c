"""Server settings, from command-line flags and the environment (flags win)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _default_data_dir() -> Path:
    return Path(os.environ.get("MODELGATE_DATA_DIR") or "./.modelgate")


_FLOAT_VARS = {
    "keepalive_timeout_s": "MODELGATE_KEEPALIVE_TIMEOUT_S",
    "header_timeout_s": "MODELGATE_HEADER_TIMEOUT_S",
    "body_timeout_s": "MODELGATE_BODY_TIMEOUT_S",
}
_INT_VARS = {"max_header_bytes": "MODELGATE_MAX_HEADER_BYTES", "max_connections": "MODELGATE_MAX_CONNECTIONS"}


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = field(default_factory=_default_data_dir)
    # MODELGATE_MODEL_CACHE_DIR: what local engines derive from models (a GGUF file's bf16 copy); default
    # `models` in the data dir. Servers with different data dirs may share one.
    model_cache_dir: Path | None = None
    config_file: Path | None = None
    # MODELGATE_DATABASE_URL; default: SQLite in the data dir.
    database_url: str | None = None
    # MODELGATE_ADMIN_TOKEN: registered at start as the admin user's personal access token.
    admin_token: str | None = None
    admin_user: str = "admin"
    # MODELGATE_SECRET_KEY: Fernet key for secrets at rest; default: `secret.key` in the data dir.
    secret_key: str | None = None
    redis_url: str | None = None
    # Endpoints on this server that AI Gateway guardrails use for valid_topics and safety.
    guardrail_embedding_endpoint: str | None = None
    guardrail_safety_endpoint: str | None = None
    max_request_bytes: int = 16 * 1024 * 1024
    # MODELGATE_ALLOWED_ENV_REFERENCES: comma-separated names or globs that `{{env/NAME}}` may name (default
    # any); MODELGATE_* and DATABRICKS_* never, whatever this says.
    allowed_env_references: str | None = None
    # MODELGATE_UPSTREAM_HOSTS: comma-separated host globs (optional :port) that external models' URLs may
    # name; default any (see serving/upstream_hosts.py).
    upstream_hosts: str | None = None
    # MODELGATE_METRICS_PUBLIC=1: serve /metrics without a token (it then names every endpoint to anyone).
    metrics_public: bool = False
    # MODELGATE_UPSTREAM_TIMEOUT_S: the longest wait for an upstream's next bytes (its first byte, or the next
    # chunk of a stream); a call that keeps sending is never cut.
    upstream_timeout_s: float = 600.0
    # MODELGATE_UPSTREAM_RETRY_BUDGET_S: default time for retrying transient upstream failures (0: off);
    # an endpoint overrides it with `retry_budget_s` in its provider config.
    upstream_retry_budget_s: float = 30.0
    upstream_connections: int = 1000
    registry_poll_s: float = 1.0
    # MODELGATE_GATEWAY_FLUSH_INTERVAL_S: how often the AI Gateway writer inserts the rows queued since its last
    # batch; rows show in the tables within about this long. Larger batches cost a little less per row.
    gateway_flush_interval_s: float = 0.25
    log_level: str = "info"
    # How long the server waits for a client to send its request (see server_protocol.py): a kept-alive
    # connection's next request, the request line and headers (from the connection's start or the request's
    # first byte), the body (from the end of the headers). Answers are never deadlined.
    keepalive_timeout_s: float = 5.0
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    # MODELGATE_MAX_HEADER_BYTES: request line plus headers; past it, 431.
    max_header_bytes: int = 32 * 1024
    # MODELGATE_MAX_CONNECTIONS: open connections per server process; a request over it gets 503.
    max_connections: int = 4096

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ
        values: dict[str, object] = {
            "database_url": env.get("MODELGATE_DATABASE_URL") or None,
            "admin_token": env.get("MODELGATE_ADMIN_TOKEN") or None,
            "admin_user": env.get("MODELGATE_ADMIN_USER") or "admin",
            "secret_key": env.get("MODELGATE_SECRET_KEY") or None,
            "redis_url": env.get("MODELGATE_REDIS_URL") or None,
            "guardrail_embedding_endpoint": env.get("MODELGATE_GUARDRAIL_EMBEDDING_ENDPOINT") or None,
            "guardrail_safety_endpoint": env.get("MODELGATE_GUARDRAIL_SAFETY_ENDPOINT") or None,
            "allowed_env_references": env.get("MODELGATE_ALLOWED_ENV_REFERENCES") or None,
            "upstream_hosts": env.get("MODELGATE_UPSTREAM_HOSTS") or None,
            "metrics_public": env.get("MODELGATE_METRICS_PUBLIC", "").lower() in ("1", "true", "yes"),
            "model_cache_dir": Path(env["MODELGATE_MODEL_CACHE_DIR"]) if env.get("MODELGATE_MODEL_CACHE_DIR") else None,
        }
        if env.get("MODELGATE_UPSTREAM_RETRY_BUDGET_S"):
            values["upstream_retry_budget_s"] = float(env["MODELGATE_UPSTREAM_RETRY_BUDGET_S"])
        if env.get("MODELGATE_UPSTREAM_TIMEOUT_S"):
            values["upstream_timeout_s"] = float(env["MODELGATE_UPSTREAM_TIMEOUT_S"])
        if env.get("MODELGATE_GATEWAY_FLUSH_INTERVAL_S"):
            values["gateway_flush_interval_s"] = float(env["MODELGATE_GATEWAY_FLUSH_INTERVAL_S"])
        if env.get("MODELGATE_MAX_REQUEST_BYTES"):
            values["max_request_bytes"] = int(env["MODELGATE_MAX_REQUEST_BYTES"])
        for name, var in _FLOAT_VARS.items():
            if env.get(var):
                values[name] = float(env[var])
        for name, var in _INT_VARS.items():
            if env.get(var):
                values[name] = int(env[var])
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)  # type: ignore[arg-type]
        settings.data_dir = Path(settings.data_dir)
        return settings

    @property
    def resolved_model_cache_dir(self) -> Path:
        return Path(self.model_cache_dir) if self.model_cache_dir else self.data_dir / "models"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'modelgate.db').resolve()}"
