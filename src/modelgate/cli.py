"""The `modelgate` command: serve, and manage tokens without a running server."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from modelgate import __version__
from modelgate.cli_endpoints import endpoints
from modelgate.settings import Settings


def _settings(data_dir: Path | None, **overrides: object) -> Settings:
    return Settings.from_env(data_dir=data_dir, **overrides)


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="The server's data dir [default: $MODELGATE_DATA_DIR or ./.modelgate].",
)


@click.group()
@click.version_option(__version__, prog_name="modelgate")
def main() -> None:
    """modelgate: Databricks-compatible model serving on your own machine."""


main.add_command(endpoints)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where the SQLite database and the secret key live [default: $MODELGATE_DATA_DIR or ./.modelgate].",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="YAML file declaring endpoints (same schema as the REST API).",
)
@click.option(
    "--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"])
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes sharing the port (one per core). Set MODELGATE_REDIS_URL so rate limits count together.",
)
def serve(host: str, port: int, data_dir: Path | None, config_file: Path | None, log_level: str, workers: int) -> None:
    """Start the server."""
    import asyncio
    import os

    import uvicorn

    from modelgate.app import create_app, prepare_store
    from modelgate.auth.tokens import PAT_PATTERN
    from modelgate.config_file import ConfigFileError, load_endpoints
    from modelgate.redaction import SecretMask, install_log_scrubbing
    from modelgate.secrets import EnvPolicy
    from modelgate.server_protocol import ConnectionLimits, protocol_factory

    settings = _settings(data_dir, host=host, port=port, config_file=config_file, log_level=log_level)
    if settings.admin_token and not PAT_PATTERN.match(settings.admin_token):
        raise click.UsageError(
            "MODELGATE_ADMIN_TOKEN must be 'dapi' followed by 32 hex characters; make one with: "
            "python -c \"import secrets; print('dapi' + secrets.token_hex(16))\""
        )
    if config_file is not None:
        try:
            load_endpoints(config_file, EnvPolicy.parse(settings.allowed_env_references))
        except ConfigFileError as exc:
            raise click.UsageError(str(exc)) from None
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    mask = SecretMask()  # every secret this process resolves: masked in error answers and in every log record
    install_log_scrubbing(mask)
    click.echo(f"modelgate {__version__} serving on http://{host}:{port} (data in {settings.data_dir})", err=True)
    common: dict[str, object] = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "access_log": False,
        "timeout_graceful_shutdown": 30,
        # Nothing here uses the client's address, so uvicorn need not rewrite it from X-Forwarded-For: that
        # middleware was one more ASGI layer on every request.
        "proxy_headers": False,
        # Deadlines and limits on receiving requests, which uvicorn alone does not have (server_protocol.py).
        "http": protocol_factory(ConnectionLimits.from_settings(settings)),
    }
    _warn_if_fd_limit_below(settings.max_connections)
    if workers == 1:
        uvicorn.run(create_app(settings, mask), **common)  # type: ignore[arg-type]
        return
    if not settings.redis_url:
        click.echo("note: without MODELGATE_REDIS_URL each worker counts rate limits on its own", err=True)
    # Migrations, the admin token and the config file run once here, not in every worker at once.
    asyncio.run(prepare_store(settings, mask))
    os.environ["MODELGATE_DATA_DIR"] = str(settings.data_dir)
    uvicorn.run("modelgate.app:create_app_from_env", factory=True, workers=workers, **common)  # type: ignore[arg-type]


def _warn_if_fd_limit_below(max_connections: int) -> None:
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < max_connections + 64:
        click.echo(
            f"note: the open-file limit ({soft}) is below MODELGATE_MAX_CONNECTIONS ({max_connections}) plus "
            "what the server itself opens; raise it (ulimit -n) or lower the setting",
            err=True,
        )


@main.group()
def tokens() -> None:
    """Personal access tokens."""


def _db(data_dir: Path | None, *, create: bool = False) -> tuple[Settings, object]:
    """The server's database, which must already exist unless `create`: run from the wrong directory, the
    default `./.modelgate` would otherwise be a new, empty database that no server reads."""
    from sqlalchemy import inspect

    from modelgate.store.db import Database

    settings = _settings(data_dir)
    url = settings.resolved_database_url
    sqlite_file = None if settings.database_url else settings.data_dir / "modelgate.db"
    missing = sqlite_file is not None and not sqlite_file.exists()
    if not create and missing:
        raise click.ClickException(_no_database(settings))
    if sqlite_file is not None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(url)
    if not create and not inspect(db.engine).has_table("alembic_version"):
        raise click.ClickException(_no_database(settings))
    db.migrate()
    return settings, db


def _database_label(settings: Settings) -> str:
    """Which database a command used, for its output: the SQLite file, or the URL without its password."""
    from sqlalchemy.engine import make_url

    if not settings.database_url:
        return str((settings.data_dir / "modelgate.db").resolve())
    return make_url(settings.database_url).render_as_string(hide_password=True)


def _no_database(settings: Settings) -> str:
    return (
        f"no modelgate database at {_database_label(settings)}. Run this where the server keeps its data (the "
        "data dir `modelgate serve` prints at start), or pass --data-dir or set MODELGATE_DATA_DIR / "
        "MODELGATE_DATABASE_URL as the server has them."
    )


@tokens.command("create")
@click.option("--comment", default=None, help="What the token is for.")
@click.option("--lifetime-seconds", type=int, default=None, help="Expire after this many seconds (default: never).")
@click.option("--user", "user_name", default=None, help="Owner (created if new) [default: the admin user].")
@click.option("--admin/--no-admin", default=None, help="Make a new --user an admin.")
@click.option(
    "--create-database", is_flag=True, help="Create the database if it does not exist yet (before a first serve)."
)
@data_dir_option
def tokens_create(
    comment: str | None,
    lifetime_seconds: int | None,
    user_name: str | None,
    admin: bool | None,
    create_database: bool,
    data_dir: Path | None,
) -> None:
    """Create a token and print it (the only time it is shown); stderr says which database holds it."""
    from modelgate.auth.tokens import create_token, ensure_principal
    from modelgate.store.db import Database

    settings, db = _db(data_dir, create=create_database)
    assert isinstance(db, Database)
    owner = user_name or settings.admin_user
    is_admin = bool(admin) if user_name else True
    with db.session() as s:
        principal = ensure_principal(s, "user", owner, is_admin=is_admin)
        value, _info = create_token(s, principal, comment=comment, lifetime_seconds=lifetime_seconds)
    click.echo(value)
    click.echo(f"token for {owner} written to {_database_label(settings)}", err=True)


@tokens.command("list")
@data_dir_option
def tokens_list(data_dir: Path | None) -> None:
    """List active tokens (ids, owners, expiry; never the tokens themselves)."""
    from modelgate.auth.tokens import list_tokens
    from modelgate.store.db import Database

    db = _db(data_dir)[1]
    assert isinstance(db, Database)
    with db.session() as s:
        for t in list_tokens(s):
            expiry = "never" if t.expiry_time < 0 else str(t.expiry_time)
            click.echo(f"{t.token_id}\t{t.owner}\texpires={expiry}\t{t.comment or ''}")


@tokens.command("revoke")
@click.argument("token_id")
@data_dir_option
def tokens_revoke(token_id: str, data_dir: Path | None) -> None:
    """Revoke a token by id (running servers stop accepting it within seconds)."""
    from modelgate.auth.tokens import revoke_token
    from modelgate.store.db import Database

    db = _db(data_dir)[1]
    assert isinstance(db, Database)
    with db.session() as s:
        if revoke_token(s, token_id) is None:
            click.echo(f"no active token with id {token_id}", err=True)
            sys.exit(1)
    click.echo(f"revoked {token_id}")


@main.group("service-principals")
def service_principals() -> None:
    """Service principals for OAuth machine-to-machine (DATABRICKS_CLIENT_ID / DATABRICKS_CLIENT_SECRET)."""


def _sp_db(data_dir: Path | None) -> object:
    return _db(data_dir)[1]


@service_principals.command("create")
@click.argument("name")
@data_dir_option
def service_principals_create(name: str, data_dir: Path | None) -> None:
    """Create a service principal with an OAuth secret; prints its client id and secret (shown only once)."""
    from modelgate.auth.service_principals import create_secret, create_service_principal
    from modelgate.store.db import Database

    db = _sp_db(data_dir)
    assert isinstance(db, Database)
    with db.session() as s:
        sp = create_service_principal(s, name)
        secret, _info = create_secret(s, sp)
        scim_id, client_id = sp.id, sp.name
    click.echo(f"id={scim_id}")
    click.echo(f"DATABRICKS_CLIENT_ID={client_id}")
    click.echo(f"DATABRICKS_CLIENT_SECRET={secret}")


@service_principals.command("list")
@data_dir_option
def service_principals_list(data_dir: Path | None) -> None:
    """List service principals: SCIM id, client (application) id, name, active."""
    from modelgate.auth.service_principals import list_service_principals
    from modelgate.store.db import Database

    db = _sp_db(data_dir)
    assert isinstance(db, Database)
    with db.session() as s:
        for sp in list_service_principals(s):
            click.echo(f"{sp.id}\t{sp.name}\t{sp.display_name or ''}\tactive={str(sp.active).lower()}")


@service_principals.command("delete")
@click.argument("id_or_client_id")
@data_dir_option
def service_principals_delete(id_or_client_id: str, data_dir: Path | None) -> None:
    """Delete a service principal (by SCIM id or client id) with its secrets; its tokens stop working."""
    from modelgate.auth.service_principals import (
        delete_service_principal,
        find_by_application_id,
        get_service_principal,
    )
    from modelgate.store.db import Database

    db = _sp_db(data_dir)
    assert isinstance(db, Database)
    with db.session() as s:
        sp = get_service_principal(s, id_or_client_id) or find_by_application_id(s, id_or_client_id)
        if sp is None:
            click.echo(f"no service principal {id_or_client_id}", err=True)
            sys.exit(1)
        client_id = sp.name
        delete_service_principal(s, sp)
    click.echo(f"deleted {client_id}")


@main.group()
def models() -> None:
    """Local catalog models (system.ai.<name>), registered in the data dir's database.

    Running servers see changes within a second; GET /api/2.0/modelgate/models also lists the config file's
    models and load states.
    """


def _model_db(data_dir: Path | None) -> Any:
    return _db(data_dir)[1]


@models.command("add")
@click.argument("name")
@click.option("--task", required=True, type=click.Choice(["llm/v1/chat", "llm/v1/completions", "llm/v1/embeddings"]))
@click.option("--engine", required=True, help="transformers, sentence_transformers or openai_server.")
@click.option(
    "--path", "model_path", required=True, help="A Hugging Face model folder, or a GGUF file (openai_server)."
)
@click.option("--endpoint", default=None, help="Also serve it as this endpoint (e.g. databricks-NAME).")
@click.option("--dtype", default=None, type=click.Choice(["auto", "float32", "bfloat16"]), help="[default: auto]")
@click.option("--preset", default=None, type=click.Choice(["vllm", "llama-server"]), help="openai_server command.")
@click.option("--command", "server_command", default=None,
              help="openai_server command line, with {port}, {model_path} and {served_name}.")  # fmt: skip
@click.option("--start-timeout", "start_timeout_s", default=None, type=float, help="openai_server readiness wait (s).")
@data_dir_option
def models_add(
    name: str, task: str, engine: str, model_path: str, endpoint: str | None, dtype: str | None, preset: str | None,
    server_command: str | None, start_timeout_s: float | None, data_dir: Path | None,
) -> None:  # fmt: skip
    """Register a model; with --endpoint the running server creates that endpoint at once."""
    import shlex

    from modelgate.engines import model_store
    from modelgate.engines.catalog import PREFIX, default_entries, parse_entry
    from modelgate.errors import ModelgateError

    raw: dict[str, Any] = {"name": name, "task": task, "engine": engine, "path": model_path, "endpoint": endpoint,
                           "dtype": dtype, "preset": preset, "start_timeout_s": start_timeout_s,
                           "command": shlex.split(server_command) if server_command else None}  # fmt: skip
    db = _model_db(data_dir)
    try:
        entry = parse_entry({k: v for k, v in raw.items() if v is not None}, source="registered")
        model_store.check_location(entry)
        reserved = {e.name for e in default_entries()}
        with db.session() as s:
            model_store.add(s, entry, "cli", reserved=reserved, endpoint_pending=bool(endpoint))
    except ModelgateError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"registered {PREFIX}{name}")
    if endpoint:
        click.echo(f"endpoint {endpoint} will be created by the running server (or when it next starts)")


@models.command("list")
@data_dir_option
def models_list(data_dir: Path | None) -> None:
    """List built-in and registered models: name, task, engine, path, endpoint, source."""
    from modelgate.engines import model_store
    from modelgate.engines.catalog import default_entries

    db = _model_db(data_dir)
    with db.session() as s:
        _generation, rows = model_store.read_all(s)
    for entry in [*default_entries(), *(row[0] for row in rows)]:
        click.echo(
            f"{entry.full_name}\t{entry.task}\t{entry.engine}\t{entry.path}\t{entry.endpoint or ''}\t{entry.source}"
        )


@models.command("remove")
@click.argument("name")
@data_dir_option
def models_remove(name: str, data_dir: Path | None) -> None:
    """Remove a registered model (refused while an endpoint serves it); running servers unload it."""
    from modelgate.engines import model_store
    from modelgate.engines.catalog import PREFIX, default_entries
    from modelgate.errors import ModelgateError

    db = _model_db(data_dir)
    name = name.removeprefix(PREFIX)
    try:
        with db.session() as s:
            model_store.remove(s, name, reserved={e.name for e in default_entries()})
    except ModelgateError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"removed {PREFIX}{name}")


@main.group("export")
def export_group() -> None:
    """Export an endpoint's inference table or usage rows as a Parquet file or a Delta Lake table."""


_EXPORT_OPTIONS = [
    click.argument("endpoint"),
    click.option("--format", "fmt", default="parquet", show_default=True, type=click.Choice(["parquet", "delta"])),
    click.option("--out", required=True, type=click.Path(path_type=Path), help="Parquet file or Delta directory."),
    click.option("--since", default=None, help="Rows from this time: epoch ms, ISO 8601, or 24h / 7d back."),
    click.option("--until", default=None, help="Rows before this time (same forms as --since)."),
    click.option(
        "--if-exists",
        default="error",
        show_default=True,
        type=click.Choice(["error", "overwrite", "append"]),
        help="append: Delta only.",
    ),
    data_dir_option,
]


def _export_options(fn: Any) -> Any:
    for option in reversed(_EXPORT_OPTIONS):
        fn = option(fn)
    return fn


def _run_export(kind: str, endpoint: str, fmt: str, out: Path, since: str | None, until: str | None,
                if_exists: str, data_dir: Path | None) -> None:  # fmt: skip
    """Reads the database directly (the data dir's SQLite, or MODELGATE_DATABASE_URL), as `tokens` does."""
    from sqlalchemy import select

    from modelgate.errors import ModelgateError
    from modelgate.gateway import export
    from modelgate.store.db import Database
    from modelgate.store.tables import Endpoint

    settings, db = _db(data_dir)
    assert isinstance(db, Database)
    try:
        rng = export.time_range(since, until, names=("--since", "--until"))
        with db.session() as s:
            row = s.scalar(select(Endpoint).where(Endpoint.name == endpoint))
        if row is None and kind == "inference-table":
            raise click.ClickException(f"no endpoint named '{endpoint}' (see GET /api/2.0/serving-endpoints)")
        if row is None:
            click.echo(f"note: no endpoint named '{endpoint}' now; exporting any usage rows it left", err=True)
        if kind == "inference-table" and row is not None:
            export.check_inference_table(db.engine, endpoint, row.ai_gateway)
        source = (
            export.inference_table_source(endpoint, row.ai_gateway if row else None)
            if kind == "inference-table"
            else export.usage_source(endpoint)
        )
        mode = export.parse_if_exists(if_exists)
        result = export.export_to_path(db.engine, source, export.parse_format(fmt), out, rng, if_exists=mode)
    except ModelgateError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(
        f"wrote {result.rows} rows of {result.table_name} from {_database_label(settings)} to {result.path} ({fmt})"
    )


@export_group.command("inference-table")
@_export_options
def export_inference_table(endpoint: str, fmt: str, out: Path, since: str | None, until: str | None,
                           if_exists: str, data_dir: Path | None) -> None:  # fmt: skip
    """The endpoint's payload table ({catalog}.{schema}.{prefix}_payload)."""
    _run_export("inference-table", endpoint, fmt, out, since, until, if_exists, data_dir)


@export_group.command("usage")
@_export_options
def export_usage(endpoint: str, fmt: str, out: Path, since: str | None, until: str | None,
                 if_exists: str, data_dir: Path | None) -> None:  # fmt: skip
    """The endpoint's rows of endpoint_usage."""
    _run_export("usage", endpoint, fmt, out, since, until, if_exists, data_dir)


@main.command("sql")
@click.argument("query", required=False)
@click.option(
    "--file",
    "-f",
    "sql_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Read the SQL script from this file.",
)
@click.option("--host", default=None, help="Server URL [default: $DATABRICKS_HOST or ~/.databrickscfg].")
@click.option("--token", default=None, help="Access token [default: $DATABRICKS_TOKEN or ~/.databrickscfg].")
@click.option(
    "--profile", default=None, help="~/.databrickscfg profile [default: $DATABRICKS_CONFIG_PROFILE or DEFAULT]."
)
@click.option(
    "--concurrency", default=64, show_default=True, type=click.IntRange(1, 4096), help="ai_query requests in flight."
)
@click.option(
    "--max-retries",
    default=8,
    show_default=True,
    type=click.IntRange(0, 100),
    help="Retries per row on 429/503 and connection errors.",
)
@click.option("--database", default=":memory:", show_default=True, help="DuckDB database file.")
@click.option("--max-rows", default=100, show_default=True, type=int, help="Rows of a result to print (0: all).")
@click.option("--progress/--no-progress", default=None, help="Progress line on stderr [default: when a terminal].")
def sql_command(
    query: str | None, sql_file: Path | None, host: str | None, token: str | None, profile: str | None,
    concurrency: int, max_retries: int, database: str, max_rows: int, progress: bool | None,
) -> None:  # fmt: skip
    """Run SQL on DuckDB with ai_query(endpoint, request, ...) calling this server's endpoints.

    Prints each query's result as a table; DuckDB's own COPY ... TO writes files (CSV, Parquet, JSON).
    """
    if (query is None) == (sql_file is None):
        raise click.UsageError("give the SQL either as an argument or with --file")
    try:
        from modelgate.sql.duckdb_binding import connect
        from modelgate.sql.errors import AiQueryError
        from modelgate.sql.runner import run_script
    except ImportError as exc:
        raise click.ClickException(f"{exc.name} is missing: reinstall modelgate, which depends on it") from None
    text = query if query is not None else sql_file.read_text() if sql_file else ""
    try:
        con = connect(host, token, profile=profile, database=database, concurrency=concurrency,
                      max_retries=max_retries)  # fmt: skip
    except AiQueryError as exc:
        raise click.ClickException(str(exc)) from None
    show = sys.stderr.isatty() if progress is None else progress
    import signal

    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C stops cleanly, even if SIGINT was ignored
    try:
        code = run_script(con, text, out=sys.stdout, err=sys.stderr, show_progress=show, max_rows=max_rows)
    finally:
        con.close()
    sys.exit(code)


if __name__ == "__main__":
    main()
