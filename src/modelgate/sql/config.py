"""Where ai_query finds its workspace: flags, then DATABRICKS_HOST/DATABRICKS_TOKEN, then ~/.databrickscfg."""

from __future__ import annotations

import configparser
import os
from pathlib import Path

from modelgate.sql.errors import AiQueryError


def resolve_credentials(
    host: str | None = None, token: str | None = None, profile: str | None = None
) -> tuple[str, str]:
    """(host, token), each from the first source that has it, as the Databricks SDK and CLI resolve them."""
    host = host or os.environ.get("DATABRICKS_HOST") or None
    token = token or os.environ.get("DATABRICKS_TOKEN") or None
    if host is None or token is None:
        section = _profile(profile or os.environ.get("DATABRICKS_CONFIG_PROFILE") or "DEFAULT")
        host = host or section.get("host") or None
        token = token or section.get("token") or None
    if not host:
        raise AiQueryError("no server: pass --host, set DATABRICKS_HOST, or add host to ~/.databrickscfg")
    if not token:
        raise AiQueryError("no token: pass --token, set DATABRICKS_TOKEN, or add token to ~/.databrickscfg")
    return host, token


def _profile(name: str) -> dict[str, str]:
    path = Path(os.environ.get("DATABRICKS_CONFIG_FILE") or Path.home() / ".databrickscfg")
    if not path.is_file():
        return {}
    parser = configparser.ConfigParser(default_section="__none__")
    try:
        parser.read(path)
    except configparser.Error as exc:
        raise AiQueryError(f"cannot read {path}: {exc}") from None
    if name not in parser:
        return {}
    return dict(parser[name])
