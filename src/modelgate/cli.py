"""The `modelgate` command: serve, and manage tokens without a running server."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from modelgate import __version__
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

    settings = _settings(data_dir, host=host, port=port, config_file=config_file, log_level=log_level)
    if settings.admin_token and not PAT_PATTERN.match(settings.admin_token):
        raise click.UsageError(
            "MODELGATE_ADMIN_TOKEN must be 'dapi' followed by 32 hex characters; make one with: "
            "python -c \"import secrets; print('dapi' + secrets.token_hex(16))\""
        )
    if config_file is not None:
        try:
            load_endpoints(config_file)
        except ConfigFileError as exc:
            raise click.UsageError(str(exc)) from None
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    click.echo(f"modelgate {__version__} serving on http://{host}:{port} (data in {settings.data_dir})", err=True)
    common: dict[str, object] = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "access_log": False,
        "timeout_graceful_shutdown": 30,
    }
    if workers == 1:
        uvicorn.run(create_app(settings), **common)  # type: ignore[arg-type]
        return
    if not settings.redis_url:
        click.echo("note: without MODELGATE_REDIS_URL each worker counts rate limits on its own", err=True)
    # Migrations, the admin token and the config file run once here, not in every worker at once.
    asyncio.run(prepare_store(settings))
    os.environ["MODELGATE_DATA_DIR"] = str(settings.data_dir)
    uvicorn.run("modelgate.app:create_app_from_env", factory=True, workers=workers, **common)  # type: ignore[arg-type]


@main.group()
def tokens() -> None:
    """Personal access tokens."""


def _db(data_dir: Path | None) -> tuple[Settings, object]:
    from modelgate.store.db import Database

    settings = _settings(data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    db.migrate()
    return settings, db


@tokens.command("create")
@click.option("--comment", default=None, help="What the token is for.")
@click.option("--lifetime-seconds", type=int, default=None, help="Expire after this many seconds (default: never).")
@click.option("--user", "user_name", default=None, help="Owner (created if new) [default: the admin user].")
@click.option("--admin/--no-admin", default=None, help="Make a new --user an admin.")
@data_dir_option
def tokens_create(
    comment: str | None, lifetime_seconds: int | None, user_name: str | None, admin: bool | None, data_dir: Path | None
) -> None:
    """Create a token and print it (the only time it is shown)."""
    from modelgate.auth.tokens import create_token, ensure_principal
    from modelgate.store.db import Database

    settings, db = _db(data_dir)
    assert isinstance(db, Database)
    owner = user_name or settings.admin_user
    is_admin = bool(admin) if user_name else True
    with db.session() as s:
        principal = ensure_principal(s, "user", owner, is_admin=is_admin)
        value, _info = create_token(s, principal, comment=comment, lifetime_seconds=lifetime_seconds)
    click.echo(value)


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
        raise click.ClickException(f"{exc.name} is missing: pip install 'modelgate[sql]'") from None
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
