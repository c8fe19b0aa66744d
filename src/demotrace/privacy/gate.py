"""The privacy gate: every captured row passes here before anything is stored.

It enforces, in this order:

1. **Pause and working hours.** While paused (the hotkey, ``demotrace pause``) or outside the
   policy's hours nothing passes; one ``gap`` row records the reason and the duration.
2. **Scope.** While the active window is out of scope, or the pointer is over an out-of-scope
   window, its events are dropped and a ``gap`` of reason ``out_of_scope`` is recorded instead.
   Focus, title and popup rows of out-of-scope windows are dropped too; titles that pass are
   redacted.
3. **Typing.** Key presses that type characters are gathered into a *sequence* (closed by a
   click, scroll, window switch, a non-typing key such as Enter, Tab, an arrow or a shortcut, or
   a pause in typing). While a sequence is open the whole stream is held back in memory, so the
   decision about it is made on the whole sequence, after backspaces are applied:

   - in a secret field (secure prompt window, AT-SPI password field, browser password input,
     terminal password prompt) every key row of the sequence is dropped and a ``gap`` of
     reason ``secret`` takes its place;
   - mode ``text``: one ``text`` row carries the typed text through the redactor (cards, IBANs,
     keys, e-mail addresses ... become ``<CARD>`` ...); ``masked``: the text with every character
     replaced by its class; ``keys``: no text at all and the typing keys are dropped.

   The key rows of typing characters never carry their key code or keysym name in any mode: the
   text row is the only place typed content can appear, and only in its redacted or masked form.
   Shortcuts, navigation keys and modifiers keep their names.

Sequence numbers are assigned here, in stream order, when a row is accepted; a held row keeps its
number, and the ``text`` or ``gap`` row of a sequence takes a number reserved when it opened, so
the store reads back in time order. Dropped rows leave holes; holes carry no meaning.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from demotrace.capture.base import process_name
from demotrace.model import MOD_ALT, MOD_CONTROL, MOD_SHIFT, MOD_SUPER, Kind, Row
from demotrace.privacy.keys import BACKSPACE, apply_edits, keysym_char
from demotrace.privacy.redact import mask_text, redact, redact_name, redact_url
from demotrace.privacy.scope import Layout, ScopeResolver, popup_owner

if TYPE_CHECKING:
    from demotrace.privacy.policy import Policy, Rule

#: A typing sequence closes after this long without a key event.
SEQUENCE_IDLE_NS = 2_000_000_000
#: ... or when this many rows are held back (a storm of typing).
MAX_HELD = 50_000
#: Layouts kept to judge late rows by the windows of their time (a layout lasts from one window
#: change to the next: these cover far more than the recorder's 20 ms input pacing).
MAX_LAYOUTS = 16
#: Window classes of terminal emulators (matched lower-case).
TERMINALS = frozenset(
    {
        "xterm", "uxterm", "urxvt", "rxvt", "gnome-terminal", "gnome-terminal-server",
        "konsole", "alacritty", "kitty", "terminator", "xfce4-terminal", "tilix", "st-256color",
        "st", "lxterminal", "mate-terminal", "qterminal", "wezterm", "foot", "terminology",
    }
)  # fmt: skip
#: A line typed into a terminal after which the next line(s) are a password prompt's answer.
_PROMPTING = re.compile(
    r"^\s*(?:\S+=\S*\s+)*(?:sudo|su|doas|ssh|scp|sftp|passwd|gpg|gpg2|kinit|mysql|psql|"
    r"docker\s+login|podman\s+login|git\s+(?:push|pull|clone|fetch)|ssh-add|ssh-keygen|"
    r"openssl|vault\s+login|htpasswd|smbclient|ftp|luksOpen|cryptsetup)\b"
)
_MENTIONS_SECRET = re.compile(r"pass(?:word|wd|phrase)|\bpin\b|secret|token", re.I)
_NO_TYPING_MODS = MOD_CONTROL | MOD_ALT | MOD_SUPER
#: The modifiers a hotkey is made of (lock and num lock do not count).
_HOTKEY_MODS = MOD_SHIFT | MOD_CONTROL | MOD_ALT | MOD_SUPER
_COMPACT = {"separators": (",", ":"), "ensure_ascii": False}

Emit = Callable[[list[tuple[int, Row]]], None]


@dataclass
class _Sequence:
    t0: int
    seq: int  # reserved for its text or gap row
    window: int
    mode: str
    secret: bool
    terminal: bool
    t_last: int = 0
    tokens: list[str] = field(default_factory=list)
    chars: int = 0


@dataclass
class _Known:
    """A window layout and the time it is known from; its hit list, made when first asked."""

    t: int
    layout: Layout
    hits: list[tuple[int, int, int, int, int]] | None = None


@dataclass
class _Gap:
    reason: str
    t0: int
    seq: int
    t_last: int


class Gate:
    """Applies one policy to the captured stream. Not thread-safe: the recorder serialises calls."""

    def __init__(
        self,
        policy: Policy,
        emit: Emit,
        next_seq: Callable[[], int],
        *,
        own_windows: frozenset[int] = frozenset(),
        hotkey: tuple[str, int] | None = None,
        extra_hotkeys: tuple[tuple[str, int], ...] = (),
        secret_field: Callable[[int, int], bool] | None = None,
    ) -> None:
        self.policy = policy
        self.scope = ScopeResolver(policy, own_windows)
        self._emit = emit
        self._next_seq = next_seq
        self.hotkey = hotkey  # (keysym name lower-case, modifier mask) of the pause hotkey
        #: The other hotkeys of the recorder (task markers): like the pause one, never stored.
        self.hotkeys = tuple(h for h in (hotkey, *extra_hotkeys) if h)
        self.secret_field = secret_field  # (t0, t1) -> a password field had focus in between
        #: Called as (t_ns, seq of the first key row, mode, known secret) when typing starts.
        self.on_typing: Callable[[int, int, str, bool], None] | None = None
        self.layout = Layout(0)
        #: The last layouts with the time each was known from, oldest first, each with its
        #: hit list once made: a pointer row is judged by the layout of its own time.
        self._layouts: list[_Known] = []
        self.paused = False
        self.pause_reason = "paused"
        self.outside_hours = False
        self.active: dict[str, Any] = {}
        self.active_rule: Rule | None = None
        self.active_secret = False
        #: The browser extension says a secret field (password, card, one-time code) of the
        #: active window has the keyboard focus (set by the recorder).
        self.field_secret = False
        self.active_terminal = False
        self._active_known = False
        self._gap: _Gap | None = None
        self._seq: _Sequence | None = None
        self._held: list[tuple[int, Row]] = []
        self._char_down: set[int] = set()  # key codes pressed as typing characters
        self._hotkey_down: set[int] = set()  # key codes pressed as one of our hotkeys
        self._popups_kept: set[int] = set()
        self._urls_kept: dict[int, str] = {}  # browser window -> the URL last stored
        self._term_line: dict[int, list[str]] = {}
        self._term_secret_lines: dict[int, int] = {}
        self.stats = {"dropped": 0, "gaps": 0, "secret_sequences": 0, "redacted": 0}

    # -- state changes (from the recorder: pause, hours, layout, own windows) --------------------
    def set_layout(self, layout: Layout, t: int | None = None) -> None:
        """A new window layout, known from ``t`` on. Rows of an earlier time are still judged by
        the layout of theirs: a click that opens a popup, or closes a dialog, is judged by the
        windows it was made on, even when the gate sees it after the change. Without ``t`` the
        layout holds for every row, earlier ones too."""
        self.layout = layout
        if t is None:
            self._layouts = [_Known(0, layout)]
        else:
            self._layouts.append(_Known(t, layout))
            if len(self._layouts) > MAX_LAYOUTS:
                del self._layouts[0]

    def set_own_windows(self, windows: frozenset[int]) -> None:
        self.scope.own_windows = windows
        self._forget_hits()

    def browser_changed(self) -> None:
        """What the browser extension says changed (a URL, secret fields): judge again."""
        self._forget_hits()
        if self._active_known:
            self._judge_active()

    def _forget_hits(self) -> None:
        for known in self._layouts:
            known.hits = None

    def _hit_list(self, known: _Known) -> list[tuple[int, int, int, int, int]]:
        """(x0, y0, x1, y1, verdict) top to bottom; verdict 0 neutral, 1 in, 2 out of scope."""
        own = self.scope.own_windows
        layout = known.layout
        hits = []
        for w in reversed(layout.windows):
            if w.frame in own or w.client in own:
                verdict = 0
            else:
                verdict = 1 if self.scope.window_rule(layout, w) is not None else 2
            hits.append((*w.rect, verdict))
        known.hits = hits
        return hits

    def _verdict(self, x: int, y: int, t: int) -> int:
        """Whether the window under (x, y) at time ``t`` is in scope (1), out of it (2), or
        neither (0: the bare desktop, our own windows)."""
        layouts = self._layouts
        if not layouts:
            return 0  # no layout yet: nothing is known to be under the point
        known = layouts[-1]
        if t < known.t:  # a row from before the newest layout: the one of its time (the
            # oldest kept for a row older than all of them)
            known = next((k for k in reversed(layouts) if k.t <= t), layouts[0])
        hits = known.hits
        if hits is None:
            hits = self._hit_list(known)
        for x0, y0, x1, y1, verdict in hits:
            if x0 <= x < x1 and y0 <= y < y1:
                return verdict
        return 0  # the bare desktop: neutral

    def set_paused(self, paused: bool, t: int, reason: str = "paused") -> None:
        """Pause (a ``gap`` opens now, even if nothing happens during it) or resume."""
        if paused and not self.paused:
            self._close_sequence(t)
            if self._gap is not None:
                self._close_gap(t)
            self._gap = _Gap(reason, t, self._next_seq(), t)
        self.paused = paused
        self.pause_reason = reason
        if not paused and self._gap is not None and self._gap.reason in ("paused", "private"):
            self._close_gap(t)

    def set_outside_hours(self, outside: bool, t: int) -> None:
        """Working hours end (an ``hours`` gap opens now, unless paused) or begin."""
        if outside and not self.outside_hours:
            self._close_sequence(t)
            if not self.paused:
                if self._gap is not None:
                    self._close_gap(t)
                self._gap = _Gap("hours", t, self._next_seq(), t)
        self.outside_hours = outside
        if not outside and self._gap is not None and self._gap.reason == "hours":
            self._close_gap(t)

    def state(self) -> str:
        """What the indicator should show: recording, paused, out_of_scope or secret."""
        if self.paused:
            return "paused"
        if self.outside_hours or (self._active_known and self.active_rule is None):
            return "out_of_scope"
        if self.active_secret or self.field_secret:
            return "secret"
        return "recording"

    # -- the stream --------------------------------------------------------------------------
    def feed(self, rows: list[Row]) -> None:
        out: list[tuple[int, Row]] = []
        move = Kind.MOVE
        next_seq = self._next_seq
        for row in rows:
            kind = row[2]
            if kind == move:
                # The common case, kept short: recording, nothing held, no gap open.
                if (
                    self._seq is None
                    and self._gap is None
                    and self._blocked() is None
                    and self._verdict(row[3], row[4], row[0]) != 2  # type: ignore[arg-type]
                ):
                    out.append((next_seq(), row))
                else:
                    self._pointer(row, out, closes=False)
            elif kind == Kind.KEY:
                self._key(row, out)
            elif kind in (Kind.BUTTON, Kind.WHEEL):
                self._pointer(row, out, closes=kind == Kind.WHEEL or bool(row.value))
            elif kind == Kind.TARGET:
                self._pointer(row, out, closes=False)
            elif kind == Kind.FOCUS:
                self._focus(row, out)
            elif kind == Kind.TITLE:
                self._title(row, out)
            elif kind == Kind.POPUP:
                self._popup(row, out)
            elif kind == Kind.BROWSER:
                self._browser(row, out)
            elif kind == Kind.MARKER:
                # the worker's own task marker (already redacted): ends typing, never dropped
                self._close_sequence(row[0], out)
                out.append((self._next_seq(), row))
            else:  # SCREEN: harmless, stored even inside a gap (and does not end it)
                out.append((self._next_seq(), row))
        if out:
            self._emit(out)

    def tick(self, now: int) -> None:
        """Close a typing sequence that has gone idle (called a few times a second)."""
        seq = self._seq
        if seq is not None and now - seq.t_last > SEQUENCE_IDLE_NS:
            out: list[tuple[int, Row]] = []
            self._close_sequence(now, out)
            if out:
                self._emit(out)

    def flush(self, now: int) -> None:
        """Close everything open (at stop): the sequence, then the gap."""
        out: list[tuple[int, Row]] = []
        self._close_sequence(now, out)
        if self._gap is not None:
            self._close_gap(now, out)
        if out:
            self._emit(out)

    # -- decisions ---------------------------------------------------------------------------
    def _blocked(self) -> str | None:
        if self.paused:
            return self.pause_reason
        if self.outside_hours:
            return "hours"
        if self._active_known and self.active_rule is None:
            return "out_of_scope"
        return None

    def _accept(self, row: Row, out: list[tuple[int, Row]], held: bool | None = None) -> None:
        if self._gap is not None:
            self._close_gap(row[0], out)
        seq = self._next_seq()
        if held if held is not None else self._seq is not None:
            self._held.append((seq, row))
            if len(self._held) > MAX_HELD:
                self._close_sequence(row[0], out)
        else:
            out.append((seq, row))

    def _drop(self, row: Row, reason: str, out: list[tuple[int, Row]]) -> None:
        self.stats["dropped"] += 1
        t = row[0]
        gap = self._gap
        if gap is not None and gap.reason == reason:
            gap.t_last = max(gap.t_last, t)
            return
        self._close_sequence(t, out)
        if gap is not None:
            self._close_gap(t, out)
        self._gap = _Gap(reason, t, self._next_seq(), t)

    def _close_gap(self, t: int, out: list[tuple[int, Row]] | None = None) -> None:
        gap, self._gap = self._gap, None
        if gap is None:
            return
        self.stats["gaps"] += 1
        data = {"reason": gap.reason, "duration_ns": max(0, t - gap.t0)}
        row = Row(gap.t0, None, Kind.GAP, data=json.dumps(data, **_COMPACT))
        if out is None:
            self._emit([(gap.seq, row)])
        else:
            out.append((gap.seq, row))

    def _pointer(self, row: Row, out: list[tuple[int, Row]], closes: bool) -> None:
        """Pointer rows need the window under the pointer in scope. Moves also need the active
        window in scope; a click or a scroll is judged by its window alone, so the click that
        brings an in-scope app forward from an out-of-scope one is kept."""
        reason = self._blocked()
        if reason is None or (reason == "out_of_scope" and row[2] != Kind.MOVE):
            verdict = self._verdict(row[3], row[4], row[0])  # type: ignore[arg-type]
            if verdict == 2:
                reason = "out_of_scope"
            elif verdict == 1:
                reason = None  # a click or scroll into an in-scope window
        if reason is not None:
            self._drop(row, reason, out)
            return
        if closes:
            self._close_sequence(row[0], out)
        self._accept(row, out)

    # -- windows -------------------------------------------------------------------------------
    def _focus(self, row: Row, out: list[tuple[int, Row]]) -> None:
        info = json.loads(row.data or "{}")
        self._close_sequence(row[0], out)
        if not info.get("window"):
            # No active window (between two): the scope stays as it was.
            if self._blocked() is None:
                self._accept(row, out)
            return
        self.active = dict(info)
        self._active_known = True
        self._judge_active()
        self._keep_titled(row, info, out)
        self._note_url(row[0], out)

    def _keep_titled(self, row: Row, info: dict[str, Any], out: list[tuple[int, Row]]) -> None:
        """Store a focus or title row, its title redacted, unless recording is blocked."""
        reason = self._blocked()
        if reason is not None:
            self._drop(row, reason, out)
            return
        info["title"] = redact(info.get("title") or "")
        self._accept(row._replace(data=json.dumps(info, **_COMPACT)), out)

    def _judge_active(self) -> None:
        info = self.active
        app, instance = info.get("app") or "", info.get("instance") or ""
        title = info.get("title") or ""
        process = process_name(info.get("pid"))
        self.active_rule = self.scope.rule(app, instance, title, process, info.get("window") or 0)
        self.active_secret = self.scope.is_secret(app, instance, title)
        self.active_terminal = app.lower() in TERMINALS or instance.lower() in TERMINALS

    def _title(self, row: Row, out: list[tuple[int, Row]]) -> None:
        info = json.loads(row.data or "{}")
        if info.get("window") == self.active.get("window"):
            self.active["title"] = info.get("title") or ""
            self._judge_active()
        self._keep_titled(row, info, out)
        self._note_url(row[0], out)

    def _popup(self, row: Row, out: list[tuple[int, Row]]) -> None:
        info = json.loads(row.data or "{}")
        wid = info.get("window")
        if wid in self.scope.own_windows:
            return  # the indicator's own badge
        if row.value:  # mapped: it belongs to the active window's app, or the one it names
            reason = self._blocked()
            if reason is None:
                own, opener = info.get("own_class") or "", int(info.get("opener") or 0)
                owner = popup_owner(self.layout, own, opener)
                if (
                    owner is not None
                    and owner.client != opener
                    and self.scope.window_rule(self.layout, owner) is None
                ):
                    reason = "out_of_scope"
            if reason is not None:
                self._drop(row, reason, out)
                return
            self._popups_kept.add(wid)
            self._accept(row, out)
        elif wid in self._popups_kept:
            self._popups_kept.discard(wid)
            self._accept(row, out)

    # -- the browser extension ------------------------------------------------------------------
    def _note_url(self, t: int, out: list[tuple[int, Row]]) -> None:
        """Store the URL of the active browser window's page once it is known and in scope
        (a new page, or a window brought forward), so the steps there carry it."""
        ctx = self.scope.browser
        window = self.active.get("window") or 0
        if ctx is None or not window or self._blocked() is not None:
            return
        url = ctx.url_of(window, self.active.get("title") or "")
        if not url or self._urls_kept.get(window) == url:
            return
        self._urls_kept[window] = url
        title = ctx.windows[window].title if window in ctx.windows else ""
        data = {"type": "active", "url": redact_url(url), "title": redact(title)}
        self._accept(Row(t, None, Kind.BROWSER, data=json.dumps(data, **_COMPACT)), out)

    def _browser(self, row: Row, out: list[tuple[int, Row]]) -> None:
        """An event of the browser extension (docs/browser.md), already applied to the scope by
        the recorder. Stored only where the page is in scope, with its URL, names and options
        through the redactor (masked, or left out, as the site's keystroke mode says)."""
        event = json.loads(row.data or "{}")
        kind = event.get("type")
        if kind == "active":
            window = self.active.get("window") or 0
            url = event.get("url")
            if not url or not window or self.scope.browser is None:
                return
            if self.scope.browser.url_of(window) != url:
                return  # not the active X window's page (the recorder did not place it there)
            reason = self._blocked()
            if reason is not None:
                self._drop(row, reason, out)  # a page out of scope: a gap, nothing of it
                return
            self._note_url(row[0], out)
            return
        if kind == "page":  # where things are: nothing to store but, perhaps, a URL now known
            self._note_url(row[0], out)
            return
        if kind not in ("pointer", "focus", "keys", "scroll", "change"):
            return
        reason = self._blocked()
        mode = self.active_rule.keystrokes if self.active_rule is not None else "text"
        ctx = self.scope.browser
        window = self.active.get("window") or 0
        then = ctx.url_at(window, row[0]) if ctx is not None else None
        if ctx is not None and then is not None and then != ctx.url_of(window):
            # the page has changed since this event (a click on a link): judge it by its own
            info = self.active
            rule = self.policy.match_window(
                info.get("app"), info.get("instance"), info.get("title"), url=then
            )
            if rule is None:
                return
            mode = rule.keystrokes
            if reason == "out_of_scope":
                reason = None
        else:
            x, y = event.get("x"), event.get("y")
            if x is not None and y is not None and reason in (None, "out_of_scope"):
                verdict = self._verdict(int(x), int(y), row[0])
                if verdict == 2:
                    reason = "out_of_scope"
                elif verdict == 1:
                    reason = None
        if reason is not None:
            return  # what it describes was not recorded either
        self._accept(row._replace(data=json.dumps(_element_event(event, mode), **_COMPACT)), out)

    # -- keys ----------------------------------------------------------------------------------
    def _key(self, row: Row, out: list[tuple[int, Row]]) -> None:
        t, code, state, press, name = row[0], row.code, row.state or 0, row.value, row.name
        if not press and code in self._hotkey_down:
            self._hotkey_down.discard(code)  # its release, whatever modifiers are still held
            return
        if name and press:
            lowered = name.lower()
            held = state & _HOTKEY_MODS
            for key, mask in self.hotkeys:
                if lowered == key and held == mask:  # exactly: the grab is for these modifiers
                    self._hotkey_down.add(code or 0)
                    return  # the recorder's own hotkeys are never recorded
        reason = self._blocked()
        if reason is None and (self.active_secret or self.field_secret):
            reason = "secret"
        if reason is not None:
            self._char_down.discard(code or 0)
            self._drop(row, reason, out)
            return
        mode = self.active_rule.keystrokes if self.active_rule is not None else "text"
        char = keysym_char(name) if not state & _NO_TYPING_MODS else None
        if press:
            if char is not None or (name == BACKSPACE and self._seq is not None):
                seq = self._seq
                opened = seq is None or seq.window != self.active.get("window")
                if opened:
                    self._close_sequence(t, out)
                    seq = self._open_sequence(t, mode)
                assert seq is not None
                seq.t_last = t
                seq.tokens.append(char if char is not None else BACKSPACE)
                if char is not None:
                    seq.chars += 1
                    self._char_down.add(code or 0)
                self._accept(row, out, held=True)
                if opened and self.on_typing is not None and self._held:
                    self.on_typing(t, self._held[-1][0], seq.mode, seq.secret)
                return
            if not _is_modifier(name):
                # Enter, Tab, arrows, shortcuts such as ctrl+c: the sequence ends before this key.
                self._close_sequence(t, out)
                if name in ("Return", "KP_Enter") and self.active_terminal:
                    self._end_terminal_line()
            if self._seq is not None:
                self._seq.t_last = t
            self._accept(row, out)
            return
        # release
        if code in self._char_down:
            self._char_down.discard(code)  # type: ignore[arg-type]
            if self._seq is not None:
                self._seq.t_last = t
                self._accept(row, out, held=True)
            elif mode != "keys":
                self._accept(_strip(row), out)
            return
        if self._seq is not None:
            self._seq.t_last = t
        self._accept(row, out)

    def _open_sequence(self, t: int, mode: str) -> _Sequence:
        window = self.active.get("window") or 0
        secret = False
        if self.active_terminal and self._term_secret_lines.get(window, 0) > 0:
            secret = True
        seq = _Sequence(t, self._next_seq(), window, mode, secret, self.active_terminal, t)
        self._seq = seq
        return seq

    def _close_sequence(self, t: int, out: list[tuple[int, Row]] | None = None) -> None:
        seq, self._seq = self._seq, None
        if seq is None:
            return
        held, self._held = self._held, []
        text = apply_edits(seq.tokens)
        if seq.terminal:
            self._term_line.setdefault(seq.window, []).append(text)
        secret = seq.secret
        if not secret and self.secret_field is not None:
            secret = self.secret_field(seq.t0, max(seq.t_last, t))
        rows: list[tuple[int, Row]] = []
        if secret:
            self.stats["secret_sequences"] += 1
            rows = [(n, r) for n, r in held if r[2] != Kind.KEY]
            data = {"reason": "secret", "duration_ns": max(0, seq.t_last - seq.t0)}
            rows.append((seq.seq, Row(seq.t0, None, Kind.GAP, data=json.dumps(data, **_COMPACT))))
            rows.sort(key=lambda item: item[0])
        else:
            for n, r in held:
                if r[2] == Kind.KEY and _is_typing_row(r):
                    if seq.mode == "keys":
                        continue
                    r = _strip(r)
                elif r[2] == Kind.KEY and r.name == BACKSPACE and seq.mode == "keys":
                    continue
                rows.append((n, r))
            if seq.mode != "keys":
                shown = redact(text) if seq.mode == "text" else mask_text(text)
                if shown != text and seq.mode == "text":
                    self.stats["redacted"] += 1
                data = {
                    "text": shown,
                    "mode": seq.mode,
                    "keys": seq.chars,
                    "t_end_ns": seq.t_last,
                }
                text_row = Row(seq.t0, None, Kind.TEXT, data=json.dumps(data, **_COMPACT))
                rows.append((seq.seq, text_row))
                rows.sort(key=lambda item: item[0])
        if out is None:
            if rows:
                self._emit(rows)
        else:
            out.extend(rows)

    def _end_terminal_line(self) -> None:
        window = self.active.get("window") or 0
        line = "".join(self._term_line.pop(window, []))
        left = self._term_secret_lines.get(window, 0)
        if left > 0:
            self._term_secret_lines[window] = left - 1
        if _PROMPTING.search(line) or _MENTIONS_SECRET.search(line):
            self._term_secret_lines[window] = 3 if re.match(r"\s*(passwd|htpasswd)", line) else 1


def _element_event(event: dict[str, Any], mode: str) -> dict[str, Any]:
    """What is stored of an element event: never a value typed, names through the redactor."""
    out: dict[str, Any] = {"type": event["type"]}
    for key in ("x", "y", "button"):
        if event.get(key) is not None:
            out[key] = event[key]
    target = event.get("target") or {}
    kept: dict[str, Any] = {
        "tag": target.get("tag"),
        "role": target.get("role"),
        "bbox": target.get("bbox"),
        "secret": bool(target.get("secret")),
    }
    for key in ("name", "id"):
        shown = redact_name(target.get(key), mode)
        if shown:
            kept[key] = shown
    for key in ("type", "autocomplete"):
        if target.get(key):
            kept[key] = str(target[key])[:40]
    out["target"] = kept
    option = event.get("option")
    if isinstance(option, dict) and not kept["secret"]:
        text, value = redact_name(option.get("text"), mode), redact_name(option.get("value"), mode)
        if text is not None or value is not None:
            out["option"] = {"text": text, "value": value, "index": option.get("index")}
    return out


def _is_typing_row(row: Row) -> bool:
    return row.name is None or keysym_char(row.name) is not None


def _strip(row: Row) -> Row:
    """A typing key row without what it typed: no key code, no keysym name."""
    return row._replace(code=None, name=None)


_MODIFIERS = frozenset(
    {
        "Shift_L", "Shift_R", "Control_L", "Control_R", "Alt_L", "Alt_R", "Meta_L", "Meta_R",
        "Super_L", "Super_R", "Hyper_L", "Hyper_R", "ISO_Level3_Shift", "Mode_switch",
        "Caps_Lock", "Num_Lock",
    }
)  # fmt: skip


def _is_modifier(name: str | None) -> bool:
    return name in _MODIFIERS
