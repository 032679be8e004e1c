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
def serve(host: str, port: int, data_dir: Path | None, config_file: Path | None, log_level: str) -> None:
    """Start the server."""
    import uvicorn

    from modelgate.app import create_app
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
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        loop="auto",
        http="auto",
        timeout_graceful_shutdown=30,
    )


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
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), default=None)
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
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), default=None)
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
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), default=None)
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


if __name__ == "__main__":
    main()
