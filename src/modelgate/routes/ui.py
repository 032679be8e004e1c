"""The web UI: `/` and `/ui/...` serve the packaged static files (no build step, no auth).

The assets are public; the page asks for a token and sends it on every API call itself, so serving the files
needs no principal. Only files inside the package's `ui/` folder with a known type are served.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelgate.errors import EndpointNotFound

UI_DIR = Path(__file__).resolve().parent.parent / "ui"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
}

# The page loads only its own files; it talks to this server alone and shows images the user attached.
_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
}


def _file(relative: str) -> Path:
    path = (UI_DIR / relative).resolve()
    if not path.is_relative_to(UI_DIR) or path.suffix not in CONTENT_TYPES or not path.is_file():
        raise EndpointNotFound(f"No UI file '{relative}'.")
    return path


def _serve(path: Path, request: Request) -> Response:
    body = b"" if request.method == "HEAD" else path.read_bytes()
    headers = dict(_HEADERS)
    if request.method == "HEAD":
        headers["Content-Length"] = str(path.stat().st_size)
    return Response(body, media_type=CONTENT_TYPES[path.suffix], headers=headers)


async def index(request: Request) -> Response:
    return _serve(_file("index.html"), request)


async def asset(request: Request) -> Response:
    return _serve(_file(request.path_params["path"]), request)


routes = [
    Route("/", index, methods=["GET", "HEAD"]),
    Route("/ui/{path:path}", asset, methods=["GET", "HEAD"]),
]
