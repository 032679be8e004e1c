"""Which hosts an external model's config may send requests to (MODELGATE_UPSTREAM_HOSTS).

Whoever sets an endpoint's config picks the URLs modelgate calls (`openai_api_base`, `custom_provider_url`,
...), with the server's network position: a host on the operator's private network, or a cloud metadata
address, is one config away. By default any host is allowed, since serving a vLLM or llama-server on
localhost is a main use. An operator who wants a boundary lists the hosts allowed, as globs, with an
optional port: `api.openai.com,*.openai.azure.com,127.0.0.1:8000`. The list applies to every principal,
admins included (it is the operator's), both when a config is set and when an endpoint is built, so
narrowing it later takes endpoints outside it out of service with a clear error.

Only URLs a config names are checked; a provider's own default host (api.anthropic.com, ...) is always
allowed. A service-account key's `token_uri` (Vertex) is secret material and is not read here.
"""

from __future__ import annotations

import fnmatch
from typing import Any
from urllib.parse import urlsplit

from modelgate.errors import InvalidParameterValue, PermissionDenied

# Config fields that hold a base URL even when the scheme was left out.
_URL_SUFFIXES = ("_api_base", "_url", "_host")


class UpstreamHostPolicy:
    def __init__(self, patterns: tuple[str, ...] | None = None) -> None:
        self.patterns = tuple(p.lower() for p in patterns) if patterns else None

    @classmethod
    def parse(cls, text: str | None) -> UpstreamHostPolicy:
        patterns = tuple(p.strip() for p in (text or "").split(",") if p.strip())
        return cls(patterns or None)

    def check(self, config: Any, path: str) -> None:
        """Refuse (403) a config tree that names a URL whose host the policy does not allow."""
        if self.patterns is None:
            return
        for where, url in _urls(config, path):
            host, port = _host_port(url, where)
            if not any(_matches(p, host, port) for p in self.patterns):
                shown = f"{host}:{port}" if port else host
                raise PermissionDenied(
                    f"{where}: this server may not send requests to {shown}; the operator allows only "
                    f"MODELGATE_UPSTREAM_HOSTS={','.join(self.patterns)}"
                )


def _urls(tree: Any, path: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if isinstance(tree, dict):
        for key, value in tree.items():
            here = f"{path}.{key}"
            if isinstance(value, str) and (_is_url(value) or str(key).endswith(_URL_SUFFIXES)):
                found.append((here, value))
            else:
                found += _urls(value, here)
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            found += _urls(value, f"{path}[{i}]")
    return found


def _is_url(value: str) -> bool:
    return value[:8].lower().startswith(("http://", "https://"))


def _host_port(url: str, where: str) -> tuple[str, int | None]:
    parts = urlsplit(url if "://" in url else "http://" + url)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host:
        raise InvalidParameterValue(f"{where}: {url!r} is not a URL with a host")
    return host.lower(), port


def _matches(pattern: str, host: str, port: int | None) -> bool:
    name, sep, want_port = pattern.rpartition(":") if not pattern.endswith("]") else (pattern, "", "")
    if sep and want_port.isdigit():
        return port == int(want_port) and fnmatch.fnmatchcase(host, name.strip("[]"))
    return fnmatch.fnmatchcase(host, pattern.strip("[]"))
