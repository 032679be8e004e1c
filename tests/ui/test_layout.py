"""Layout and focus: the pages fit a phone's width and a desktop's, the top bar stays readable, focus is drawn
only where a person needs it, and axe-core finds no violations."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.openai_upstream import FakeUpstreamThread
from tests.support.live import LiveServer, create_endpoint, external_chat_config
from tests.ui.test_browser import sign_in

# Every element that is drawn lies inside the viewport, or inside a scrolling box that does.
OVERFLOWING = """() => {
    const vw = document.documentElement.clientWidth;
    const fits = (r) => r.left >= -0.5 && r.right <= vw + 0.5;
    const bad = [];
    for (const el of document.querySelectorAll("body *:not(.skip)")) {
        const r = el.getBoundingClientRect();
        if ((r.width === 0 && r.height === 0) || fits(r)) continue;
        let box = el.parentElement;
        while (box && box !== document.body && getComputedStyle(box).overflowX === "visible") box = box.parentElement;
        if (box && box !== document.body && fits(box.getBoundingClientRect())) continue;
        bad.push(`${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}.${el.className?.baseVal ?? el.className}`
                 + ` ${Math.round(r.left)}..${Math.round(r.right)}`);
    }
    return {bad, scrollWidth: document.documentElement.scrollWidth, vw};
}"""

# For each piece of the top bar: does it lie inside the bar, and its text's contrast with what is behind it.
TOP_BAR = """() => {
    const rgb = (c) => c.match(/[\\d.]+/g).map(Number);
    const lum = ([r, g, b]) => {
        const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
        return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const background = (el) => {
        for (; el; el = el.parentElement) {
            const c = rgb(getComputedStyle(el).backgroundColor);
            if (c.length < 4 || c[3] > 0) return c;
        }
        return [255, 255, 255];
    };
    const bar = document.querySelector(".topbar").getBoundingClientRect();
    return [...document.querySelectorAll("#nav a, #who-name, #sign-out")].map((el) => {
        const r = el.getBoundingClientRect();
        const [a, b] = [lum(rgb(getComputedStyle(el).color)), lum(background(el))];
        return {
            text: el.textContent,
            inside: r.left >= bar.left && r.right <= bar.right && r.top >= bar.top && r.bottom <= bar.bottom,
            contrast: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05),
        };
    });
}"""


def axe_violations(page: Any) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [f"{v['id']}: {[n['target'] for n in v['nodes']]}" for v in results.response["violations"]]


def test_programmatic_focus_on_main_draws_no_outline(page: Any, server: LiveServer) -> None:
    """After a navigation the page moves focus to <main tabindex=-1> for screen readers; when the navigation came
    from the keyboard, Chromium counts that focus as :focus-visible, which drew the ring around the whole page."""
    page.goto(server.url + "/")
    page.get_by_label("Access token").fill(server.admin_token)
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Serving endpoints").wait_for()
    main_focused = "() => document.activeElement === document.getElementById('main')"
    outline = "getComputedStyle(document.getElementById('main')).outlineStyle"
    page.wait_for_function(main_focused)
    assert page.evaluate(outline) == "none"
    for link in ("Usage", "Serving"):  # the Playground focuses its prompt instead
        page.get_by_role("navigation", name="Main").get_by_role("link", name=link).press("Enter")
        page.wait_for_function(main_focused)
        assert page.evaluate(outline) == "none", link
    # A keyboard user still sees where focus is: the next Tab lands on a control with the focus ring.
    page.keyboard.press("Tab")
    style = "getComputedStyle(document.activeElement)"
    ring = page.evaluate(f"[{style}.outlineStyle, {style}.outlineWidth]")
    assert page.evaluate("document.activeElement.tagName") in ("A", "BUTTON", "INPUT")
    assert ring == ["solid", "3px"]
    assert axe_violations(page) == []


@pytest.mark.parametrize("width", [390, 1400])
def test_pages_fit_the_viewport_and_the_top_bar_stays_readable(
    page: Any,
    admin: httpx.Client,
    server: LiveServer,
    upstream: FakeUpstreamThread,
    shot: Callable[[str], Path],
    width: int,
) -> None:
    # Underscores give a browser no place to break the name: it must wrap, not widen the page.
    name = f"ui_layout_with_a_long_endpoint_name_and_no_breaks_{secrets.token_hex(3)}"
    create_endpoint(admin, name, external_chat_config(upstream.base_url, "gpt-4o-mini"))
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, server, server.admin_token)
    page.get_by_role("link", name=name).wait_for()
    for step, route, ready in (
        ("list", "#/serving", "Serving endpoints"),
        ("detail", f"#/serving/{name}", "Query endpoint"),
        ("create", "#/create", "Create serving endpoint"),
        ("playground", f"#/playground/{name}", "Playground"),
        ("usage", f"#/usage/{name}", "Usage"),
    ):
        page.goto(f"{server.url}/{route}")
        page.get_by_role("heading", name=ready, exact=True).first.wait_for()
        shot(step)
        fit = page.evaluate(OVERFLOWING)
        assert fit["bad"] == [] and fit["scrollWidth"] <= fit["vw"], (route, fit)
        for part in page.evaluate(TOP_BAR):
            assert part["inside"] and part["contrast"] >= 4.5, (route, part)
        assert axe_violations(page) == [], route


@pytest.fixture
def admin(server: LiveServer) -> Any:
    with server.client() as client:
        yield client
