#!/usr/bin/python3
"""A small GTK3 login form for accessibility tests; run it with Debian's ``/usr/bin/python3``.

``/usr/bin/python3 gtk_login.py --layout FILE`` opens a window titled "Acme login" (WM_CLASS
``acme-login`` / ``AcmeLogin``) with a "User" entry, a "Password" entry whose text is hidden (GTK
exposes it to AT-SPI with the role "password text"), a multi-line "Notes" text view, a "Country"
dropdown (a GtkComboBoxText of :data:`COUNTRIES`) and a "Sign in" button, which has the focus at
start. Whenever the window is mapped, moves or is resized, or the dropdown's list opens or closes,
it replaces FILE atomically (temp file + ``os.replace``) with JSON::

    {"version": 3, "pid": 1234, "window": [x0, y0, x1, y1],
     "widgets": {"user": {"center": [x, y], "box": [x0, y0, x1, y1]}, "password": ..., ...},
     "popup": {"items": [{"text": "Brazil", "center": [x, y], "box": [...]}, ...]} or null,
     "country": "Argentina"}

in root-window (screen) pixels, x1/y1 exclusive, so a test can click the widget centres with XTEST.
The widget names are ``user``, ``password``, ``notes``, ``country`` and ``sign_in``.

It uses only the standard library and PyGObject (no demotrace imports): it runs outside the venv.
PyGObject is imported when the window is built, so the venv can import the constants. It never
writes what is typed into any field.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

TITLE = "Acme login"
WM_INSTANCE = "acme-login"
WM_CLASS = "AcmeLogin"
COUNTRIES = ("Argentina", "Brazil", "Germany", "Japan", "Kenya")


class LoginWindow:
    """The window, its widgets, and the layout file it keeps current."""

    def __init__(self, layout: Path | None) -> None:
        from gi.repository import Gtk

        self.layout = layout
        self.version = 0
        self._last = ""
        self._pending = False
        self.window = Gtk.Window(title=TITLE)
        self.window.set_default_size(420, 320)
        self.window.connect("destroy", Gtk.main_quit)
        grid = Gtk.Grid(row_spacing=10, column_spacing=12, margin=16)
        self.window.add(grid)

        self.user = Gtk.Entry()
        self.password = Gtk.Entry()
        self.password.set_visibility(False)
        self.password.set_input_purpose(Gtk.InputPurpose.PASSWORD)
        self.notes = Gtk.TextView()
        self.notes.set_wrap_mode(Gtk.WrapMode.WORD)
        notes_box = Gtk.ScrolledWindow(hexpand=True, vexpand=True)
        notes_box.set_shadow_type(Gtk.ShadowType.IN)
        notes_box.set_min_content_height(90)
        notes_box.add(self.notes)
        self.sign_in = Gtk.Button(label="Sign in")
        self.country = Gtk.ComboBoxText()
        for name in COUNTRIES:
            self.country.append_text(name)
        self.country.set_active(0)
        self.country.connect("notify::popup-shown", self._popup_changed)
        self.country.connect("changed", self._changed)

        rows: list[tuple[str, Any, Any]] = [
            ("_User", self.user, self.user),
            ("_Password", self.password, self.password),
            ("_Notes", self.notes, notes_box),
            ("_Country", self.country, self.country),
        ]
        for row, (text, widget, holder) in enumerate(rows):
            label = Gtk.Label.new_with_mnemonic(text)
            label.set_mnemonic_widget(widget)
            label.set_xalign(1.0)
            grid.attach(label, 0, row, 1, 1)
            holder.set_hexpand(True)
            grid.attach(holder, 1, row, 1, 1)
            widget.get_accessible().set_name(text.replace("_", ""))
        grid.attach(self.sign_in, 1, len(rows), 1, 1)
        self.widgets: dict[str, Any] = {
            "user": self.user,
            "password": self.password,
            "notes": self.notes,
            "country": self.country,
            "sign_in": self.sign_in,
        }
        self.window.connect("map-event", self._changed)
        self.window.connect("configure-event", self._changed)
        self.window.connect("size-allocate", self._changed)

    def _changed(self, *_args: Any) -> bool:
        from gi.repository import GLib

        if not self._pending:
            self._pending = True
            GLib.idle_add(self._write)
        return False

    def _popup_changed(self, *_args: Any) -> bool:
        from gi.repository import GLib

        # the list is laid out just after it is shown: measure it a moment later
        GLib.timeout_add(150, self._write)
        return self._changed()

    def _popup_items(self) -> list[dict[str, Any]] | None:
        """The open dropdown list's items with their screen boxes, or None when it is closed."""
        from gi.repository import Gtk

        if not self.country.get_property("popup-shown"):
            return None
        for top in Gtk.Window.list_toplevels():
            child = top.get_child() if top.get_visible() else None
            if not isinstance(child, Gtk.Menu) or top.get_window() is None:
                continue
            _, ox, oy = top.get_window().get_origin()
            items = []
            # the combo's menu holds one item per row of its model, in order (cell views inside)
            for index, item in enumerate(child.get_children()[: len(COUNTRIES)]):
                alloc = item.get_allocation()
                coords = item.translate_coordinates(top, 0, 0)
                if coords is None or alloc.height <= 1:
                    continue
                x0, y0 = ox + coords[0], oy + coords[1]
                items.append(
                    {
                        "text": COUNTRIES[index],
                        "center": [x0 + alloc.width // 2, y0 + alloc.height // 2],
                        "box": [x0, y0, x0 + alloc.width, y0 + alloc.height],
                    }
                )
            return items
        return None

    def _measure(self) -> dict[str, Any] | None:
        gdk_window = self.window.get_window()
        if gdk_window is None or not self.window.get_mapped():
            return None
        _, ox, oy = gdk_window.get_origin()
        width, height = gdk_window.get_width(), gdk_window.get_height()
        widgets: dict[str, Any] = {}
        for name, widget in self.widgets.items():
            alloc = widget.get_allocation()
            coords = widget.translate_coordinates(self.window, 0, 0)
            if coords is None or alloc.width <= 1:
                return None
            x0, y0 = ox + coords[0], oy + coords[1]
            widgets[name] = {
                "center": [x0 + alloc.width // 2, y0 + alloc.height // 2],
                "box": [x0, y0, x0 + alloc.width, y0 + alloc.height],
            }
        return {
            "window": [ox, oy, ox + width, oy + height],
            "widgets": widgets,
            "popup": {"items": items} if (items := self._popup_items()) else None,
            "country": self.country.get_active_text(),
        }

    def _write(self) -> bool:
        self._pending = False
        if self.layout is None:
            return False
        data = self._measure()
        if data is None:
            return False
        text = json.dumps(data, sort_keys=True)
        if text == self._last:
            return False
        self._last = text
        self.version += 1
        doc = {"version": self.version, "pid": os.getpid(), **data}
        tmp = self.layout.with_name(self.layout.name + ".tmp")
        tmp.write_text(json.dumps(doc), encoding="utf-8")
        os.replace(tmp, self.layout)
        return False


def main(argv: list[str] | None = None) -> int:
    """Open the window and run GTK's main loop until the window closes or SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", type=Path, help="JSON file to keep the widget layout in")
    args = parser.parse_args(argv)
    import gi

    gi.require_version("Gdk", "3.0")
    gi.require_version("Gtk", "3.0")
    from gi.repository import Gdk, GLib, Gtk

    GLib.set_prgname(WM_INSTANCE)
    GLib.set_application_name(TITLE)
    Gdk.set_program_class(WM_CLASS)
    app = LoginWindow(args.layout)
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signum, Gtk.main_quit)
    app.window.show_all()
    app.sign_in.grab_focus()  # so that a click on "User" is a real focus change
    Gtk.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
