"""The UI's static files: served without auth, with the right types and headers, and nothing outside ui/."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from modelgate.routes.ui import CONTENT_TYPES, UI_DIR
from tests.support.live import LiveServer


def test_index_is_served_without_a_token(server: LiveServer) -> None:
    resp = httpx.get(server.url + "/")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="/ui/js/main.js"></script>' in resp.text
    csp = resp.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert resp.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/ui/js/main.js", "text/javascript; charset=utf-8"),
        ("/ui/app.css", "text/css; charset=utf-8"),
        ("/ui/favicon.svg", "image/svg+xml"),
    ],
)
def test_assets_have_their_content_type(server: LiveServer, path: str, content_type: str) -> None:
    resp = httpx.get(server.url + path)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == content_type
    assert resp.content == (UI_DIR / path.removeprefix("/ui/")).read_bytes()


def test_head_gives_length_without_body(server: LiveServer) -> None:
    resp = httpx.head(server.url + "/ui/js/api.js")
    assert resp.status_code == 200
    assert resp.content == b""
    assert int(resp.headers["content-length"]) == (UI_DIR / "js" / "api.js").stat().st_size


@pytest.mark.parametrize(
    "path",
    ["/ui/js/nope.js", "/ui/../routes/ui.py", "/ui/%2e%2e/app.py", "/ui/..%2f..%2fpyproject.toml", "/ui/js", "/ui/"],
)
def test_unknown_or_outside_files_are_404(server: LiveServer, path: str) -> None:
    resp = httpx.get(server.url + path)
    assert resp.status_code == 404
    assert resp.json()["error_code"] in {"ENDPOINT_NOT_FOUND"}


def test_every_packaged_file_has_a_served_type_and_imports_resolve() -> None:
    files = [p for p in UI_DIR.rglob("*") if p.is_file()]
    assert files, "no UI files packaged"
    assert [p for p in files if p.suffix not in CONTENT_TYPES] == []
    for js in UI_DIR.rglob("*.js"):
        for target in re.findall(r'from "(\./[^"]+)"', js.read_text()):
            assert (js.parent / target).resolve().is_file(), f"{js.name} imports missing {target}"


def test_api_still_needs_a_token(server: LiveServer) -> None:
    resp = httpx.get(server.url + "/api/2.0/serving-endpoints")
    assert resp.status_code == 401
    assert resp.json()["error_code"] == "UNAUTHENTICATED"


def test_ui_dir_is_inside_the_package() -> None:
    import modelgate

    assert Path(modelgate.__file__).resolve().parent / "ui" == UI_DIR
