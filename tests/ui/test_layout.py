"""Focus is drawn only where a person needs it, and axe-core finds no violations."""

from __future__ import annotations

from typing import Any

from tests.support.live import LiveServer


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
