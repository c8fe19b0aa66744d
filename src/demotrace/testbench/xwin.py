"""Window-manager queries over a python-xlib ``Display`` (EWMH client list, class, geometry).

Xlib is imported inside the functions, so importing this module needs no display.
"""

from __future__ import annotations

from typing import Any

Box = list[int]


def _atom(d: Any, name: str) -> int:
    return int(d.intern_atom(name))


def client_list(d: Any) -> list[int]:
    """Window ids in ``_NET_CLIENT_LIST`` (managed, top-level clients)."""
    from Xlib import X

    prop = d.screen().root.get_full_property(_atom(d, "_NET_CLIENT_LIST"), X.AnyPropertyType)
    return [int(w) for w in prop.value] if prop else []


def wm_class(d: Any, wid: int) -> tuple[str, str]:
    """(instance, class) of a window's WM_CLASS, empty strings when unset or gone."""
    from Xlib.error import XError

    try:
        value = d.create_resource_object("window", wid).get_wm_class()
    except XError:
        return "", ""
    return value if value else ("", "")


def active_window(d: Any) -> int | None:
    from Xlib import X

    prop = d.screen().root.get_full_property(_atom(d, "_NET_ACTIVE_WINDOW"), X.AnyPropertyType)
    if not prop or not prop.value or not int(prop.value[0]):
        return None
    return int(prop.value[0])


def is_mapped(d: Any, wid: int) -> bool:
    from Xlib import X
    from Xlib.error import XError

    try:
        attrs = d.create_resource_object("window", wid).get_attributes()
    except XError:
        return False
    return attrs.map_state == X.IsViewable


def find_client(d: Any, name: str) -> int | None:
    """The first mapped client whose WM_CLASS class or instance equals ``name``."""
    for wid in client_list(d):
        if name in wm_class(d, wid) and is_mapped(d, wid):
            return wid
    return None


def client_box(d: Any, wid: int) -> Box:
    """The client window's box in root coordinates."""
    win = d.create_resource_object("window", wid)
    geom = win.get_geometry()
    origin = win.translate_coords(d.screen().root, 0, 0)
    x, y = -origin.x, -origin.y
    return [x, y, x + geom.width, y + geom.height]


def frame_box(d: Any, wid: int) -> Box:
    """The window manager's frame around a client (the child of root that holds it)."""
    root = d.screen().root
    win = d.create_resource_object("window", wid)
    while True:
        parent = win.query_tree().parent
        if parent is None or int(parent.id) == int(root.id) or int(parent.id) == 0:
            break
        win = parent
    geom = win.get_geometry()
    return [
        geom.x,
        geom.y,
        geom.x + geom.width + 2 * geom.border_width,
        geom.y + geom.height + 2 * geom.border_width,
    ]


def wm_running(d: Any) -> bool:
    """True once a window manager has announced itself on the root window."""
    from Xlib import X

    prop = d.screen().root.get_full_property(
        _atom(d, "_NET_SUPPORTING_WM_CHECK"), X.AnyPropertyType
    )
    return bool(prop and prop.value and int(prop.value[0]))
