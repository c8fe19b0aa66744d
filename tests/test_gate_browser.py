"""The gate and the scope with what the browser extension says (unit tests of one piece; the
real Chromium with the extension is in test_browser_e2e.py): URL scope for browser windows,
failing closed, secret fields, masks, what is stored of element events, and the reducer's DOM
targets and select_option steps."""

from __future__ import annotations

import json
from typing import Any

from demotrace.dataset.reduce import Action, _attach_dom, canonical
from demotrace.model import MOD_SHIFT, Kind, Row
from demotrace.privacy.browser import BrowserContext
from demotrace.privacy.gate import Gate
from demotrace.privacy.policy import parse_policy
from demotrace.privacy.scope import Layout, TopWindow

POLICY = """
format = 1
revision = 1
name = "t"
purpose = "tests"
organisation = "o"
contact = "c"
who_sees = "w"
[[apps]]
name = "Editor"
class = ["Editor"]
keystrokes = "text"
[[sites]]
name = "Shop"
domains = ["shop.test"]
keystrokes = "text"
"""
BROWSER = 21  # the X window of Chromium
EDITOR = 11
ROOT = (1000, 600)


class Harness:
    def __init__(self) -> None:
        self.policy = parse_policy(POLICY)
        self.rows: list[tuple[int, Row]] = []
        self.n = 0
        self.t = 1_000_000_000
        self.ctx = BrowserContext()
        self.gate = Gate(self.policy, self.rows.extend, self._next)
        self.gate.scope.browser = self.ctx
        self.gate.secret_field = self.ctx.secret_between
        windows = (
            TopWindow(111, EDITOR, "Editor", "editor", "Editor", (0, 0, 400, 600)),
            TopWindow(121, BROWSER, "Chromium", "chromium", "Shop - Chromium", (400, 0, 1000, 600)),
        )
        self.layout = Layout(1, windows, ROOT)
        self.gate.set_layout(self.layout)

    def _next(self) -> int:
        self.n += 1
        return self.n

    def tick(self, ns: int = 10_000_000) -> int:
        self.t += ns
        return self.t

    def focus(self, window: int) -> None:
        app = "Chromium" if window == BROWSER else "Editor"
        title = "Shop - Chromium" if window == BROWSER else app
        data = {"window": window, "app": app, "instance": app.lower(), "title": title}
        self.gate.feed([Row(self.tick(), None, Kind.FOCUS, data=json.dumps(data))])

    def browser(self, event: dict[str, Any]) -> None:
        """What Recorder._on_browser does with one event."""
        event = {"t_ns": self.tick(), "tab": 1, "win": 7, **event}
        active = self.gate.active.get("window")
        changed = False
        if event["type"] == "active":
            changed = self.ctx.on_active(event, active, active == BROWSER)
        elif event["type"] == "page":
            changed = self.ctx.on_page(event, BROWSER)
        else:
            self.ctx.on_element(event, active)
        if changed:
            self.gate.browser_changed()
        self.gate.field_secret = self.ctx.secret_focused(active)
        if event["type"] != "page":
            self.gate.feed([Row(event["t_ns"], None, Kind.BROWSER, data=json.dumps(event))])

    def type(self, text: str) -> None:
        for ch in text:
            code = 30 + ord(ch) % 50
            state = MOD_SHIFT if ch.isupper() else 0
            self.gate.feed([Row(self.tick(), 1, Kind.KEY, 5, 5, code, state, 1, ch)])
            self.gate.feed([Row(self.tick(), 1, Kind.KEY, 5, 5, code, state, 0, ch)])

    def click(self, x: int, y: int) -> None:
        self.gate.feed([Row(self.tick(), 1, Kind.BUTTON, x, y, 1, 0, 1)])
        self.gate.feed([Row(self.tick(), 1, Kind.BUTTON, x, y, 1, 0, 0)])

    def finish(self) -> list[Row]:
        self.gate.flush(self.tick())
        return [row for _seq, row in sorted(self.rows, key=lambda item: item[0])]


def element(role: str, name: str, box: list[int], **extra: Any) -> dict[str, Any]:
    return {"tag": "input", "role": role, "name": name, "bbox": box, "secret": False, **extra}


def test_url_decides_the_scope_of_a_browser_window() -> None:
    h = Harness()
    h.focus(BROWSER)
    # before the extension speaks: the title rules (none match "Chromium") -> out of scope
    assert h.gate.state() == "out_of_scope"
    h.browser({"type": "active", "url": "https://shop.test/cart?id=4", "title": "Shop"})
    assert h.gate.state() == "recording"
    h.click(500, 100)
    h.browser({"type": "active", "url": "https://news.test/story", "title": "News"})
    assert h.gate.state() == "out_of_scope"
    h.click(500, 100)
    h.type("private words")
    h.browser(
        {
            "type": "pointer",
            "x": 500,
            "y": 100,
            "button": 0,
            "target": element("link", "Story", [480, 90, 600, 110]),
        }
    )
    h.browser({"type": "active", "url": "https://shop.test/", "title": "Shop"})
    rows = h.finish()
    stored = json.dumps([list(r) for r in rows])
    assert "news.test" not in stored and "Story" not in stored and "private" not in stored
    urls = [json.loads(r.data)["url"] for r in rows if r[2] == Kind.BROWSER]
    assert len(urls) == 2 and all("shop.test" in u for u in urls)
    gaps = [json.loads(r.data)["reason"] for r in rows if r[2] == Kind.GAP]
    assert gaps == ["out_of_scope", "out_of_scope"]  # before the extension spoke; news.test
    clicks = [r for r in rows if r[2] == Kind.BUTTON]
    assert len(clicks) == 2  # the press and release on the shop page only


def test_a_browser_window_without_a_known_url_is_out_of_scope_once_the_extension_speaks() -> None:
    h = Harness()
    h.focus(EDITOR)
    h.browser({"type": "focus", "target": element("textbox", "Name", [0, 0, 1, 1])})
    assert h.ctx.seen
    h.focus(BROWSER)
    assert h.gate.state() == "out_of_scope"  # no URL for this window: not judged by its title
    mask = h.gate.scope.mask(h.layout, *ROOT)
    assert not mask[:, 400:].any() and mask[:, :400].all()


def test_keys_into_a_secret_field_are_dropped_and_its_box_is_masked() -> None:
    h = Harness()
    h.focus(BROWSER)
    h.browser({"type": "active", "url": "https://shop.test/login", "title": "Shop"})
    mask = h.gate.scope.mask(h.layout, *ROOT)
    assert not mask[:, 400:].any()  # the page's secret fields are not known yet: all masked
    h.browser(
        {
            "type": "page",
            "url": "https://shop.test/login",
            "title": "Shop",
            "viewport": [400, 80, 1000, 600],
            "dpr": 1,
            "sensitive": [[500, 200, 700, 230]],
        }
    )
    mask = h.gate.scope.mask(h.layout, *ROOT)
    assert not mask[200:230, 500:700].any()
    assert mask[100:190, 400:1000].all() and mask[240:, 400:].all()
    # a wheel moves the page: its fields are unknown again until the page says where
    assert h.ctx.scrolled(BROWSER)
    assert not h.gate.scope.mask(h.layout, *ROOT)[:, 400:].any()

    password = element("textbox", "Password", [500, 200, 700, 230], type="password", secret=True)
    h.browser({"type": "focus", "target": password})
    assert h.gate.state() == "secret"
    h.type("Hunter2Canary")
    name = element("textbox", "Name", [500, 100, 700, 130])
    h.browser({"type": "focus", "target": name})
    assert h.gate.state() == "recording"
    h.type("Ada")
    h.click(600, 115)
    rows = h.finish()
    stored = json.dumps([list(r) for r in rows])
    assert "Hunter2Canary" not in stored and "Canary" not in stored
    texts = [json.loads(r.data)["text"] for r in rows if r[2] == Kind.TEXT]
    assert texts == ["Ada"]
    assert any(json.loads(r.data)["reason"] == "secret" for r in rows if r[2] == Kind.GAP)


def test_a_secret_focus_reported_late_still_makes_the_typing_secret() -> None:
    h = Harness()
    h.focus(BROWSER)
    h.browser({"type": "active", "url": "https://shop.test/login", "title": "Shop"})
    t_focus = h.t + 5_000_000  # the focus moved before the first key; the report comes after
    h.type("Se")
    h.gate.secret_field = h.ctx.secret_between
    event = {"type": "focus", "t_ns": t_focus, "tab": 1, "win": 7}
    event["target"] = element("textbox", "PIN", [1, 1, 2, 2], type="password", secret=True)
    h.ctx.on_element(event, BROWSER)
    h.type("cret")
    rows = h.finish()
    assert not [r for r in rows if r[2] == Kind.TEXT]
    assert "Secret" not in json.dumps([list(r) for r in rows])


def test_element_events_are_stored_redacted_and_never_with_a_value() -> None:
    h = Harness()
    h.focus(BROWSER)
    h.browser(
        {
            "type": "active",
            "url": "https://shop.test/u/ada@example.org?card=4111111111111111",
            "title": "Shop",
        }
    )
    target = element("combobox", "Country", [500, 300, 700, 330], id="ada@example.org")
    h.browser(
        {
            "type": "change",
            "target": {**target, "tag": "select"},
            "option": {"text": "Germany", "value": "DE", "index": 3},
        }
    )
    h.browser({"type": "pointer", "x": 600, "y": 315, "button": 0, "target": target})
    rows = h.finish()
    stored = [json.loads(r.data) for r in rows if r[2] == Kind.BROWSER]
    blob = json.dumps(stored)
    assert "ada@example.org" not in blob and "4111111111111111" not in blob
    change = next(e for e in stored if e["type"] == "change")
    assert change["option"] == {"text": "Germany", "value": "DE", "index": 3}
    assert change["target"]["role"] == "combobox" and change["target"]["name"] == "Country"
    assert set(change["target"]) <= {
        "tag",
        "role",
        "name",
        "id",
        "type",
        "autocomplete",
        "bbox",
        "secret",
    }


def _click(t: int, x: int, y: int, popup: tuple[str, list[int]] | None = None) -> Action:
    a = Action(
        "click",
        t,
        t + 50_000_000,
        t // 1000,
        t // 1000 + 1,
        {"x": x, "y": y, "button": "left", "count": 1, "modifiers": []},
    )
    a.popup = popup
    return a


def test_reducer_targets_and_select_options_from_the_dom() -> None:
    button = {"tag": "button", "role": "button", "name": "Save", "bbox": [100, 200, 180, 230]}
    select = {"tag": "select", "role": "combobox", "name": "Country", "bbox": [100, 300, 300, 330]}
    option = {"tag": "div", "role": "option", "name": "Blue", "bbox": [100, 400, 300, 420]}
    actions = [
        _click(1_000_000_000, 150, 215),  # the button
        _click(2_000_000_000, 200, 315),  # opens the select's popup
        _click(2_600_000_000, 210, 380, popup=("MENU", [100, 330, 200, 120])),  # the option
        _click(4_000_000_000, 150, 410),  # an option of a custom listbox
        _click(5_000_000_000, 900, 900),  # nothing the extension saw
    ]
    dom = [
        (1_010_000_000, 1, {"type": "pointer", "x": 150, "y": 215, "target": button}),
        (2_008_000_000, 2, {"type": "pointer", "x": 200, "y": 315, "target": select}),
        (
            2_700_000_000,
            3,
            {"type": "change", "target": select, "option": {"text": "Germany", "value": "DE"}},
        ),
        (4_005_000_000, 4, {"type": "pointer", "x": 150, "y": 410, "target": option}),
    ]
    _attach_dom(actions, dom)
    one, opener, chosen, custom, none = (canonical(a, 1000, 1000) for a in actions)
    assert one["type"] == "click" and one["target"] == {
        "role": "button",
        "name": "Save",
        "bbox": [0.1, 0.2, 0.18, 0.23],
        "source": "dom",
    }
    assert opener["type"] == "click" and opener["target"]["name"] == "Country"
    assert chosen["type"] == "select_option" and chosen["value"] == "Germany"
    assert chosen["target"]["role"] == "combobox" and chosen["target"]["source"] == "dom"
    assert custom["type"] == "select_option" and custom["value"] == "Blue"
    assert custom["target"]["role"] == "option"
    assert none["type"] == "click" and "target" not in none


def test_a_click_reported_after_the_next_page_is_judged_by_its_own_page() -> None:
    """A click on a link to another site: its report can arrive after the new page's URL."""
    h = Harness()
    h.focus(BROWSER)
    h.browser({"type": "active", "url": "https://shop.test/", "title": "Shop"})
    t_click = h.tick()
    link = element("link", "Read the news", [450, 500, 560, 520])
    h.browser({"type": "active", "url": "https://news.test/", "title": "News"})
    event = {"type": "pointer", "t_ns": t_click, "tab": 1, "win": 7, "x": 500, "y": 510}
    event["target"] = link
    h.ctx.on_element(event, BROWSER)
    h.gate.feed([Row(t_click, None, Kind.BROWSER, data=json.dumps(event))])
    # and one made on the news page is dropped
    late = {**event, "t_ns": h.tick(), "target": element("textbox", "Search", [1, 1, 2, 2])}
    h.gate.feed([Row(late["t_ns"], None, Kind.BROWSER, data=json.dumps(late))])
    rows = h.finish()
    stored = [json.loads(r.data) for r in rows if r[2] == Kind.BROWSER]
    assert [e.get("target", {}).get("name") for e in stored] == [None, "Read the news"]
    assert "Search" not in json.dumps(stored)


def test_a_new_title_before_the_new_url_is_out_of_scope_until_the_extension_speaks() -> None:
    """X tells the new page's title before the extension tells its URL: the title is not
    stored and the window is masked until the page is known."""
    h = Harness()
    h.focus(BROWSER)
    h.browser({"type": "active", "url": "https://shop.test/", "title": "Shop"})
    assert h.gate.state() == "recording"
    title = {"window": BROWSER, "title": "Secret Diary - Chromium"}
    h.gate.feed([Row(h.tick(), None, Kind.TITLE, data=json.dumps(title))])
    assert h.gate.state() == "out_of_scope"
    h.browser({"type": "active", "url": "https://diary.test/", "title": "Secret Diary"})
    assert h.gate.state() == "out_of_scope"
    rows = h.finish()
    assert "Secret Diary" not in json.dumps([list(r) for r in rows])
