"""X11 capture: input through the RECORD extension, windows and popups through event masks.

Three connections to the X server, each used by one thread only:

- ``rec``: the RECORD data connection. Its thread blocks in ``record_enable_context`` and parses
  the intercepted device events (32 bytes each) in bulk with :mod:`struct`. It also answers "which
  window is under the pointer" at every press, through a fourth, query-only connection.
- ``win``: root PropertyChange and SubstructureNotify: active window, titles, popups (read at
  MapNotify, when override-redirect is set), screen size, keyboard mapping changes.
- ``ctl``: used by :meth:`X11Capture.stop` to disable the RECORD context and wake the window thread.

This module imports python-xlib at the top; import it only when a display is wanted.
"""

from __future__ import annotations

import contextlib
import json
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from Xlib import XK, X, Xatom
from Xlib import display as xdisplay
from Xlib import error as xerror
from Xlib.ext import record
from Xlib.protocol import event as xevent

from demotrace.capture.base import ServerClock, Sink, now_ns, process_name
from demotrace.errors import NoDisplayError
from demotrace.model import WHEEL_BUTTONS, Kind, Row
from demotrace.privacy.scope import Layout, TopWindow

_LAYOUT_EVENTS = frozenset(
    {X.MapNotify, X.UnmapNotify, X.ConfigureNotify, X.DestroyNotify, X.ReparentNotify}
)
# type, detail, sequence, time, root, event, child, root_x, root_y, event_x, event_y, state, same
_DEVICE_EVENT = struct.Struct("=BBHIIIIhhhhHBx")
_RECORD_ENABLE = 5  # RecordEnableContext minor opcode
_FROM_SERVER, _END_OF_DATA = 0, 5  # RECORD reply categories
_COALESCE_S = 0.02


def open_display(name: str | None) -> xdisplay.Display:
    """Open an X connection, or raise :class:`NoDisplayError` with what to do about it."""
    try:
        return xdisplay.Display(name)
    except (xerror.DisplayError, xerror.DisplayNameError, ConnectionError, OSError) as exc:
        shown = name or "(DISPLAY is not set)"
        raise NoDisplayError(
            f"Cannot open the X display {shown}: {exc}. demotrace records an X11 desktop, so it "
            "needs a running X server: run it inside your desktop session, set DISPLAY (for "
            "example DISPLAY=:0), or try `demotrace demo`, which starts a private virtual desktop."
        ) from None


def _compact(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class Keymap:
    """Key code + modifier state -> keysym name, refreshed on MappingNotify."""

    def __init__(self, disp: xdisplay.Display) -> None:
        for group in ("miscellany", "latin1", "latin2", "latin3", "latin4", "greek", "xkb"):
            XK.load_keysym_group(group)
        self._names = {v: k[3:] for k, v in vars(XK).items() if k.startswith("XK_")}
        self._disp = disp
        self._lock = threading.Lock()
        self._map: dict[int, tuple[int, ...]] = {}
        self.refresh()

    def refresh(self) -> None:
        first = self._disp.display.info.min_keycode
        count = self._disp.display.info.max_keycode - first + 1
        rows = self._disp.get_keyboard_mapping(first, count)
        with self._lock:
            self._map = {first + i: tuple(r) for i, r in enumerate(rows)}

    def keysym(self, keycode: int, state: int) -> int:
        syms = self._map.get(keycode, ())
        if not syms:
            return 0
        lower, upper = syms[0], (syms[1] if len(syms) > 1 and syms[1] else syms[0])
        shifted = bool(state & X.ShiftMask)
        if state & X.LockMask and 0x61 <= lower <= 0x7A:  # caps lock affects letters only
            shifted = not shifted
        return upper if shifted else lower

    def name(self, keycode: int, state: int) -> str:
        sym = self.keysym(keycode, state)
        if sym == 0:
            return f"keycode:{keycode}"
        if sym >= 0x01000000:
            return f"U+{sym - 0x01000000:04X}"
        return self._names.get(sym) or f"0x{sym:x}"


class X11Capture:
    """Captures input, window and popup events from one X display into a :data:`Sink`."""

    def __init__(self, display_name: str | None = None) -> None:
        self.display_name = display_name
        self._ctl = open_display(display_name)
        for ext in ("RECORD",):
            if not self._ctl.has_extension(ext):
                self._ctl.close()
                raise NoDisplayError(
                    f"The X server at {display_name} lacks the {ext} extension, which demotrace "
                    "needs to see input. Enable it in the server configuration (Xorg and Xvfb "
                    "offer it by default)."
                )
        from demotrace.capture.xsettings import input_settings

        #: The desktop's double-click time and distance, where a settings manager publishes them.
        self.input_settings = input_settings(self._ctl)
        screen = self._ctl.screen()
        self.screen_size = (screen.width_in_pixels, screen.height_in_pixels)
        self._rec = open_display(display_name)
        self._win = open_display(display_name)
        self._query = open_display(display_name)
        self.keymap = Keymap(self._win)
        self._clock = ServerClock()
        self._sink: Sink | None = None
        self._ctx: int | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._wake_window = None
        self._atoms: dict[str, int] = {}
        self._class_cache: dict[int, str] = {}
        self._popups: dict[int, dict[str, Any]] = {}
        self._popup_seen: dict[int, int] = {}  # popup -> when its map was read (now_ns)
        self.active: dict[str, Any] = {}
        self.errors: list[str] = []
        # The stacking layout of top-level windows, recomputed after layout events.
        self.on_layout: Callable[[Layout], None] | None = None
        self.layout_pending = threading.Event()
        self._layout_version = 0
        self._clients: dict[int, tuple[int, str, str, int | None]] = {}  # frame -> client info
        # root child -> [viewable, override_redirect, (x0, y0, x1, y1)], kept current from the
        # root's SubstructureNotify events, so a new layout costs one QueryTree round trip.
        self._tops: dict[int, list[Any]] = {}
        self._titles: dict[int, str] = {}
        self._watched: set[int] = set()

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, sink: Sink, on_layout: Callable[[Layout], None] | None = None) -> None:
        """Start both threads. ``on_layout`` gets the window layout now and after every change."""
        self._sink = sink
        self.on_layout = on_layout
        self._ctx = self._rec.record_create_context(
            0,
            [record.AllClients],
            [
                {
                    "core_requests": (0, 0),
                    "core_replies": (0, 0),
                    "ext_requests": (0, 0, 0, 0),
                    "ext_replies": (0, 0, 0, 0),
                    "delivered_events": (0, 0),
                    "device_events": (X.KeyPress, X.MotionNotify),
                    "errors": (0, 0),
                    "client_started": False,
                    "client_died": False,
                }
            ],
        )
        self._rec.sync()
        root = self._win.screen().root
        self._wake_window = root.create_window(0, 0, 1, 1, 0, X.CopyFromParent, X.InputOnly)
        root.change_attributes(event_mask=X.PropertyChangeMask | X.SubstructureNotifyMask)
        self._win.sync()
        t = now_ns()
        w, h = self.screen_size
        rows = [Row(t, None, Kind.SCREEN, w, h)]
        self._check_active(rows, t)
        self._publish_layout()
        sink(rows)
        for target, name in ((self._record_loop, "x11-record"), (self._window_loop, "x11-win")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop both threads and close the connections. Safe to call twice."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        with contextlib.suppress(Exception):
            if self._ctx is not None:
                self._ctl.record_disable_context(self._ctx)
                self._ctl.flush()
        with contextlib.suppress(Exception):
            if self._wake_window is not None:
                ev = xevent.ClientMessage(
                    window=self._wake_window, client_type=Xatom.STRING, data=(32, [0] * 5)
                )
                self._ctl.send_event(self._wake_window, ev, event_mask=0)
                self._ctl.flush()
        for thread in self._threads:
            thread.join(timeout=5)
        with contextlib.suppress(Exception):
            if self._ctx is not None:
                self._ctl.record_free_context(self._ctx)
                self._ctl.sync()
        for disp in (self._rec, self._win, self._query, self._ctl):
            with contextlib.suppress(Exception):
                disp.close()

    # -- input (RECORD) -----------------------------------------------------------------------
    def _record_loop(self) -> None:
        """Enable the context on the data connection and read its replies straight off the socket.

        python-xlib opens the connection (authentication, byte order) and creates the context;
        the enable request is then written by hand and the stream of RECORD replies is parsed
        here, many replies per ``recv``: per-reply parsing through python-xlib costs several
        times the whole per-event budget at storm rates.
        """
        sock = self._rec.display.socket
        opcode = self._rec.display.get_extension_major("RECORD")
        try:
            sock.sendall(struct.pack("=BBHI", opcode, _RECORD_ENABLE, 2, self._ctx))
            self._read_record_stream(sock)
        except Exception as exc:  # connection lost: report, never crash the recorder
            if not self._stopping.is_set():
                self.errors.append(f"X input capture stopped: {exc}")

    def _read_record_stream(self, sock: Any) -> None:
        buf = bytearray()
        unpack_from = struct.unpack_from
        event_from = _DEVICE_EVENT.unpack_from
        cmap = self._clock.map
        keyname = self.keymap.name
        motion, bpress, brelease, kpress, krelease = (
            X.MotionNotify,
            X.ButtonPress,
            X.ButtonRelease,
            X.KeyPress,
            X.KeyRelease,
        )
        MOVE, BUTTON, WHEEL, KEY = Kind.MOVE, Kind.BUTTON, Kind.WHEEL, Kind.KEY
        while True:
            chunk = sock.recv(1 << 16)
            if not chunk:
                if not self._stopping.is_set():
                    self.errors.append(
                        "X input capture stopped: the X server closed the connection"
                    )
                return
            recv = now_ns()
            buf += chunk
            pos, end, done = 0, len(buf), False
            rows: list[Row] = []
            append = rows.append
            while end - pos >= 32:
                if buf[pos] != 1:  # an error or event on the data connection: skip it
                    pos += 32
                    continue
                total = 32 + 4 * unpack_from("=I", buf, pos + 4)[0]
                if end - pos < total:
                    break
                category = buf[pos + 1]
                if category == _END_OF_DATA:
                    done = True
                elif category == _FROM_SERVER:
                    for off in range(pos + 32, pos + total - 31, 32):
                        typ, detail, _s, xt, _r, _e, _c, rx, ry, _ex, _ey, state, _ss = event_from(
                            buf, off
                        )
                        typ &= 0x7F
                        t = cmap(xt, recv)
                        if typ == motion:
                            append((t, xt, MOVE, rx, ry))  # type: ignore[arg-type]  # short row
                        elif typ in (bpress, brelease):
                            press = 1 if typ == bpress else 0
                            if detail in WHEEL_BUTTONS:
                                if press:
                                    append(Row(t, xt, WHEEL, rx, ry, detail, state, 1))
                            else:
                                append(Row(t, xt, BUTTON, rx, ry, detail, state, press))
                                if press:
                                    append(self._target_row(t, rx, ry))
                        elif typ in (kpress, krelease):
                            press = 1 if typ == kpress else 0
                            append(
                                Row(
                                    t, xt, KEY, rx, ry, detail, state, press, keyname(detail, state)
                                )
                            )
                pos += total
            del buf[:pos]
            if rows and self._sink is not None:
                self._sink(rows)
            if done:
                return
            # Let events accumulate: one wake-up then handles several (dozens in a storm)
            # instead of one. This delays the handling of an event by at most this much; its
            # timestamp comes from the X server and is not affected.
            time.sleep(_COALESCE_S)

    # -- window under the pointer ---------------------------------------------------------
    def _atom(self, disp: xdisplay.Display, name: str) -> int:
        atom = self._atoms.get(name)
        if atom is None:
            atom = self._atoms[name] = disp.intern_atom(name)
        return atom

    def _target_row(self, t: int, x: int, y: int) -> Row:
        info: dict[str, Any] = {}
        try:
            info = self._window_at(x, y, t)
        except xerror.XError:
            info = {"window": 0}
        return Row(t, None, Kind.TARGET, x, y, data=_compact(info))

    def _window_at(self, x: int, y: int, t: int | None = None) -> dict[str, Any]:
        """The client (or open popup) under a root point at time ``t``: two round trips per
        tree level.

        The lookup runs up to 20 ms after the press (input is read in batches): a window mapped
        since, above the point, was not there at the press (the dropdown the press opened), so
        the lookup goes to what is beneath it. A point on a window manager's frame (title bar,
        border) gives the framed client, marked ``"part": "frame"``.
        """
        q = self._query
        root = q.screen().root
        wm_state = self._atom(q, "WM_STATE")
        parent = root
        for level in range(10):
            child = parent.translate_coords(root, x, y).child
            if child and level == 0 and t is not None and self._mapped_after(child.id, t):
                child = self._beneath(root, x, y, t)
            if not child:
                break
            popup = self._popups.get(child.id)
            if popup is not None:
                return {"window": child.id, "popup": popup.get("type"), "app": popup.get("app")}
            if child.get_property(wm_state, X.AnyPropertyType, 0, 0) is not None:
                return {"window": child.id, "app": self._class_of(child)}
            parent = child
        if parent.id != root.id:  # on a frame's decoration: find the client it frames
            for child in parent.query_tree().children:
                if child.get_property(wm_state, X.AnyPropertyType, 0, 0) is not None:
                    return {"window": child.id, "app": self._class_of(child), "part": "frame"}
        return {"window": 0}

    def _mapped_after(self, window: int, t: int) -> bool:
        """Whether a root child was mapped after ``t``: a popup whose map was read later, or a
        window whose map is not read yet (not known to be viewable)."""
        seen = self._popup_seen.get(window)
        if seen is not None:
            return seen > t
        top = self._tops.get(window)
        return top is None or not top[0]

    def _beneath(self, root: Any, x: int, y: int, t: int) -> Any:
        """The topmost root child over (x, y) that was there at ``t`` (None: the desktop)."""
        for child in reversed(root.query_tree().children):
            top = self._tops.get(child.id)
            if top is None or not top[0] or self._mapped_after(child.id, t):
                continue
            x0, y0, x1, y1 = top[2]
            if x0 <= x < x1 and y0 <= y < y1:
                return child
        return None

    def _class_of(self, window: Any) -> str:
        cached = self._class_cache.get(window.id)
        if cached is None:
            try:
                wm_class = window.get_wm_class()
            except xerror.XError:
                wm_class = None
            cached = wm_class[1] if wm_class else ""
            if len(self._class_cache) > 4096:
                self._class_cache.clear()
            self._class_cache[window.id] = cached
        return cached

    @staticmethod
    def _geometry(disp: xdisplay.Display, window: Any) -> list[int]:
        geo = window.get_geometry()
        pos = window.translate_coords(disp.screen().root, 0, 0)
        return [-pos.x, -pos.y, geo.width, geo.height]

    # -- windows, titles, popups ----------------------------------------------------------
    def _window_loop(self) -> None:
        disp = self._win
        active_atom = self._atom(disp, "_NET_ACTIVE_WINDOW")
        title_atoms = {self._atom(disp, "_NET_WM_NAME"), Xatom.WM_NAME}
        while not self._stopping.is_set():
            try:
                ev = disp.next_event()
            except Exception as exc:
                if not self._stopping.is_set():
                    self.errors.append(f"X window tracking stopped: {exc}")
                return
            if self._stopping.is_set():
                return
            try:
                rows = self._on_window_event(ev, active_atom, title_atoms)
            except xerror.XError:
                rows = []  # the window went away while we looked at it
            if rows and self._sink is not None:
                self._sink(rows)
            if self.layout_pending.is_set() and not disp.pending_events():
                self._publish_layout()

    def _on_window_event(self, ev: Any, active_atom: int, title_atoms: set[int]) -> list[Row]:
        rows: list[Row] = []
        t = now_ns()
        etype = ev.type
        if etype in _LAYOUT_EVENTS:
            self.layout_pending.set()  # frames wait for the new layout before the next grab
            self._track_top(ev, etype)
        if etype == X.PropertyNotify and ev.atom in title_atoms:
            self._titles.pop(ev.window.id, None)
            if ev.window.id in self._watched:
                self.layout_pending.set()
        if etype == X.PropertyNotify:
            if ev.atom == active_atom:
                self._check_active(rows, t)
            elif ev.atom in title_atoms and ev.window.id == self.active.get("window"):
                title = self._title(ev.window)
                if title != self.active.get("title"):
                    self.active["title"] = title
                    rows.append(
                        Row(
                            t,
                            None,
                            Kind.TITLE,
                            data=_compact({"window": ev.window.id, "title": title}),
                        )
                    )
        elif etype == X.MapNotify and ev.override:
            popup = self._read_popup(ev.window)
            if popup is not None:
                self._popups[ev.window.id] = popup
                self._popup_seen[ev.window.id] = t
                rows.append(Row(t, None, Kind.POPUP, value=1, data=_compact(popup)))
        elif etype == X.UnmapNotify:
            popup = self._popups.pop(ev.window.id, None)
            self._popup_seen.pop(ev.window.id, None)
            if popup is not None:
                rows.append(Row(t, None, Kind.POPUP, value=0, data=_compact(popup)))
        elif etype == X.DestroyNotify:
            self._class_cache.pop(ev.window.id, None)
            self._clients.pop(ev.window.id, None)
            self._titles.pop(ev.window.id, None)
            self._watched.discard(ev.window.id)
        elif etype == X.MappingNotify:
            self._win.refresh_keyboard_mapping(ev)
            self.keymap.refresh()
        elif etype == X.ConfigureNotify and ev.window.id == self._win.screen().root.id:
            size = (ev.width, ev.height)
            if size != self.screen_size:
                self.screen_size = size
                rows.append(Row(t, None, Kind.SCREEN, size[0], size[1]))
        return rows

    def _read_popup(self, window: Any) -> dict[str, Any] | None:
        disp = self._win
        try:
            geo = self._geometry(disp, window)
            if geo[2] <= 10 and geo[3] <= 10:
                return None  # toolkit helper windows (GTK's 10x10 at -100,-100)
            prop = window.get_full_property(self._atom(disp, "_NET_WM_WINDOW_TYPE"), Xatom.ATOM)
        except xerror.XError:
            return None
        wtype = "NONE"
        if prop is not None and len(prop.value):
            name = disp.get_atom_name(prop.value[0])
            wtype = name.removeprefix("_NET_WM_WINDOW_TYPE_")
        return {
            "window": window.id,
            "type": wtype,
            "geometry": geo,
            "app": self.active.get("app", ""),
            "opener": self.active.get("window", 0),
            "own_class": self._class_of(window),
        }

    def _title(self, window: Any) -> str:
        disp = self._win
        prop = window.get_full_property(self._atom(disp, "_NET_WM_NAME"), X.AnyPropertyType)
        if prop is None or not prop.value:
            prop = window.get_full_property(Xatom.WM_NAME, X.AnyPropertyType)
        if prop is None:
            return ""
        value = prop.value
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        return str(value)

    def _check_active(self, rows: list[Row], t: int) -> None:
        disp = self._win
        root = disp.screen().root
        try:
            prop = root.get_full_property(self._atom(disp, "_NET_ACTIVE_WINDOW"), Xatom.WINDOW)
        except xerror.XError:
            return
        wid = int(prop.value[0]) if prop is not None and len(prop.value) else 0
        if wid == self.active.get("window"):
            return
        info: dict[str, Any] = {"window": wid, "app": "", "instance": "", "title": "", "pid": None}
        if wid:
            window = disp.create_resource_object("window", wid)
            try:
                wm_class = window.get_wm_class()
                pid_prop = window.get_full_property(self._atom(disp, "_NET_WM_PID"), Xatom.CARDINAL)
                info.update(
                    app=wm_class[1] if wm_class else "",
                    instance=wm_class[0] if wm_class else "",
                    title=self._title(window),
                    pid=int(pid_prop.value[0]) if pid_prop is not None else None,
                    geometry=self._geometry(disp, window),
                )
                window.change_attributes(event_mask=X.PropertyChangeMask)
            except xerror.XError:
                pass
        self.active = info
        rows.append(Row(t, None, Kind.FOCUS, data=_compact(info)))

    # -- layout ---------------------------------------------------------------------------------
    def _publish_layout(self) -> None:
        self.layout_pending.clear()
        try:
            layout = self._compute_layout()
        except xerror.XError:
            self.layout_pending.set()  # a window vanished mid-way: try again after the next event
            return
        if self.on_layout is not None:
            self.on_layout(layout)

    def _compute_layout(self) -> Layout:
        """Every viewable root child, bottom to top, with its client's identity and title."""
        disp = self._win
        root = disp.screen().root
        wm_state = self._atom(disp, "WM_STATE")
        windows: list[TopWindow] = []
        for child in root.query_tree().children:
            top = self._tops.get(child.id)
            if top is None:
                try:
                    attrs = child.get_attributes()
                    geo = child.get_geometry()
                except xerror.XError:
                    continue
                b2 = 2 * geo.border_width
                top = [
                    attrs.map_state == X.IsViewable and attrs.win_class != X.InputOnly,
                    bool(attrs.override_redirect),
                    (geo.x, geo.y, geo.x + geo.width + b2, geo.y + geo.height + b2),
                    attrs.win_class == X.InputOnly,
                ]
                self._tops[child.id] = top
            viewable, override, rect, _input_only = top
            if not viewable:
                continue
            if override:
                # A popup mapped on the server whose MapNotify is still on its way has no entry
                # yet; its opener is the active window, as _read_popup will say. Without one it
                # would be out of scope, and a click it covers (the one that opened it) dropped.
                popup = self._popups.get(child.id) or {"opener": self.active.get("window", 0)}
                windows.append(
                    TopWindow(
                        child.id,
                        0,
                        popup.get("own_class") or self._class_of(child),
                        "",
                        "",
                        rect,
                        popup=True,
                        opener=int(popup.get("opener") or 0),
                    )
                )
                continue
            info = self._clients.get(child.id)
            if info is None:
                info = self._client_info(child, wm_state)
                self._clients[child.id] = info
            client, app, instance, pid = info
            title = ""
            if client:
                title = self._titles.get(client)
                if title is None:
                    window = disp.create_resource_object("window", client)
                    title = self._titles[client] = self._title(window)
                    if client not in self._watched and client != self.active.get("window"):
                        window.change_attributes(event_mask=X.PropertyChangeMask)
                    self._watched.add(client)
            windows.append(
                TopWindow(child.id, client, app, instance, title, rect, process=process_name(pid))
            )
        self._layout_version += 1
        return Layout(self._layout_version, tuple(windows), self.screen_size)

    def _track_top(self, ev: Any, etype: int) -> None:
        """Keep the cached state of root children current from one SubstructureNotify event."""
        root_id = self._win.screen().root.id
        if getattr(ev, "event", None) is not None and ev.event.id != root_id:
            return  # about a grandchild (a client inside its frame)
        wid = ev.window.id
        top = self._tops.get(wid)
        if etype == X.DestroyNotify:
            self._tops.pop(wid, None)
        elif etype == X.ReparentNotify:
            self._tops.pop(wid, None)  # left the root (or arrived): read afresh when listed
        elif top is None:
            return  # read in full when the next layout lists it
        elif etype == X.MapNotify:
            top[0] = not top[3]
            top[1] = bool(ev.override)
        elif etype == X.UnmapNotify:
            top[0] = False
        elif etype == X.ConfigureNotify:
            b2 = 2 * ev.border_width
            top[2] = (ev.x, ev.y, ev.x + ev.width + b2, ev.y + ev.height + b2)
            top[1] = bool(ev.override)

    def _client_info(self, frame: Any, wm_state: int) -> tuple[int, str, str, int | None]:
        """The client inside a WM frame (or the window itself): id, class, instance, pid."""
        client = None
        if frame.get_property(wm_state, X.AnyPropertyType, 0, 0) is not None:
            client = frame
        else:
            for child in frame.query_tree().children:
                if child.get_property(wm_state, X.AnyPropertyType, 0, 0) is not None:
                    client = child
                    break
        if client is None:
            return (0, "", "", None)
        wm_class = client.get_wm_class()
        pid_prop = client.get_full_property(self._atom(self._win, "_NET_WM_PID"), Xatom.CARDINAL)
        pid = int(pid_prop.value[0]) if pid_prop is not None and len(pid_prop.value) else None
        return (
            client.id,
            wm_class[1] if wm_class else "",
            wm_class[0] if wm_class else "",
            pid,
        )
