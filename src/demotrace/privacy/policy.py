"""The policy: which apps and sites are in scope, how keystrokes and screens are kept there, when,
for how long, and who may see it. Loaded from TOML, validated strictly, then immutable.

Pure: no X, no store. :func:`load_policy` reads a file (or the packaged default),
:func:`parse_policy` validates text. Every problem a person can fix raises
:class:`~demotrace.errors.PolicyError` with one paragraph naming the file, the line and the
dotted field path (``policy.toml line 14: apps[2].keystrokes: ...``). Indexes in field paths
count from 1 (``apps[2]`` is the second ``[[apps]]`` entry of the file).

The format is documented in ``docs/policy.md``.
"""

from __future__ import annotations

import datetime as dt
import difflib
import fnmatch
import hashlib
import json
import math
import os
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from demotrace.errors import PolicyError

#: The policy format this module reads. A higher ``format`` needs a newer demotrace.
FORMAT = 1
KEYSTROKE_MODES = ("text", "masked", "keys")
SCREENSHOT_MODES = ("window", "off")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

#: Built-in fallbacks when the policy's ``[defaults]`` leaves a mode out: typed characters are
#: masked unless the admin asks for text (privacy by default).
DEFAULT_KEYSTROKES = "masked"
DEFAULT_SCREENSHOTS = "window"
DEFAULT_HOTKEY = "ctrl+alt+p"
#: Marks where a task starts and ends (``demotrace task start`` / ``task end`` without words).
DEFAULT_TASK_HOTKEY = "ctrl+alt+m"
DEFAULT_RETENTION_DAYS = 30
DEFAULT_RETENTION_GB = 2.0
DEFAULT_REVIEW_HOURS = 24.0
#: Window class or instance names (case-insensitive globs) of web browsers.
DEFAULT_BROWSERS = (
    "chromium",
    "chromium-browser",
    "google-chrome",
    "brave-browser",
    "microsoft-edge",
    "vivaldi-stable",
    "firefox",
    "firefox-esr",
    "navigator",
)

#: Secure prompts and password managers (case-insensitive globs on the window class or instance).
BUILTIN_SECRET_CLASSES = (
    "pinentry*",
    "gcr-prompter",
    "gnome-keyring*",
    "polkit-*-authentication-agent*",
    "polkit-gnome*",
    "polkit-kde*",
    "polkit-mate*",
    "lxpolkit",
    "lxqt-policykit*",
    "xfce-polkit",
    "mate-polkit",
    "*ssh-askpass*",
    "ksshaskpass",
    "keepassxc",
    "keepass",
    "keepass2",
    "1password",
    "bitwarden",
    "seahorse",
    "kwalletd*",
    "kwallet*",
    "enpass",
    "qtpass",
    "org.gnome.world.secrets",
    "secrets",
    "proton-pass",
    "proton pass",
    "nordpass",
    "kleopatra",
    "authy*",
)

_PW = (
    r"(?:password|passphrase|passcode|passwort|kennwort|mot\s+de\s+passe|contrase[ñn]a|senha"
    r"|pin(?:[\s-]?code)?)"
)
#: A title *segment* (the title split at " - ", " | ", ": " ...) that is a prompt. Anchored at
#: both ends, so "Password policy.docx - LibreOffice Writer" is not a secret window while
#: "Password", "Enter your password", "Sign in - Google Accounts", "Login | Acme CRM",
#: "Unlock Keyring" and "Authentication Required" are.
_SECRET_SEGMENT = re.compile(
    r"^(?:"
    rf"(?:enter|type|confirm|re-?enter|repeat|provide|change|reset|set|new|current|old|your)\b"
    rf"[\w\s'-]*?\b{_PW}"
    rf"|{_PW}(?:\s+(?:required|needed|requested|request|prompt|dialog|entry"
    r"|for\b.*|to\b.*|of\b.*))?"
    r"|(?:sign|log)[\s-]?(?:in|on)(?:\s+(?:to|with|for|into|at)\b.*)?"
    r"|login(?:\s+(?:to|with|for|required|needed)\b.*)?"
    r"|unlock\b.*"
    r"|authenticat(?:e|ion)(?:\s+(?:required|needed|to\b.*|for\b.*|as\b.*))?"
    r"|anmelden|anmeldung|connexion|se\s+connecter|iniciar\s+sesi[oó]n"
    r"|(?:two|2)[\s-]?(?:factor|step)\s+(?:authentication|verification)"
    r"|(?:verification|security|one[\s-]time)\s+(?:code|password|pin)"
    r")[\s.:!?…*]*$",
    re.IGNORECASE,
)
#: Phrases that mark a prompt wherever they appear in a title.
_SECRET_ANYWHERE = re.compile(
    r"\b(?:passphrase\s+request|authentication\s+required|password\s+required"
    rf"|(?:enter|type|confirm)\s+(?:(?:your|the|a|new)\s+)*{_PW}\b"
    r"|unlock\s+(?:(?:the|your|login)\s+)*(?:keyring|database|vault|wallet|private\s+key"
    r"|key\s?store))",
    re.IGNORECASE,
)
_TITLE_SEPARATORS = re.compile(r"\s+[-–—|·•]\s+|\s*[|·•—–]\s*|:\s+")
#: Built-in title rules, for reference (see :func:`is_secret_title` for how they apply).
BUILTIN_SECRET_TITLES = (_SECRET_SEGMENT, _SECRET_ANYWHERE)

HOTKEY_MODIFIERS = ("ctrl", "alt", "shift", "super")
#: Hotkey key names (pyautogui style) -> X keysym names.
HOTKEY_KEYS: dict[str, str] = {
    **{c: c for c in "abcdefghijklmnopqrstuvwxyz0123456789"},
    **{f"f{n}": f"F{n}" for n in range(1, 25)},
    "space": "space",
    "tab": "Tab",
    "enter": "Return",
    "esc": "Escape",
    "backspace": "BackSpace",
    "delete": "Delete",
    "insert": "Insert",
    "home": "Home",
    "end": "End",
    "pageup": "Prior",
    "pagedown": "Next",
    "up": "Up",
    "down": "Down",
    "left": "Left",
    "right": "Right",
    "pause": "Pause",
    "printscreen": "Print",
    "scrolllock": "Scroll_Lock",
    "minus": "minus",
    "equal": "equal",
    "comma": "comma",
    "period": "period",
    "slash": "slash",
    "backslash": "backslash",
    "semicolon": "semicolon",
    "apostrophe": "apostrophe",
    "grave": "grave",
    "bracketleft": "bracketleft",
    "bracketright": "bracketright",
}
_KEY_ALIASES = {
    "return": "enter",
    "escape": "esc",
    "page_up": "pageup",
    "prior": "pageup",
    "page_down": "pagedown",
    "next": "pagedown",
    "print": "printscreen",
    "scroll_lock": "scrolllock",
    "del": "delete",
    "ins": "insert",
    "-": "minus",
    "=": "equal",
    ",": "comma",
    ".": "period",
    "/": "slash",
    "\\": "backslash",
    ";": "semicolon",
    "'": "apostrophe",
    "`": "grave",
    "[": "bracketleft",
    "]": "bracketright",
}

_TOP_KEYS = (
    "format",
    "revision",
    "name",
    "purpose",
    "organisation",
    "contact",
    "who_sees",
    "hours",
    "defaults",
    "apps",
    "sites",
    "browsers",
    "retention",
    "review",
    "secrets",
    "controls",
)
_REQUIRED_TEXT = ("name", "purpose", "organisation", "contact", "who_sees")
_APP_KEYS = ("name", "class", "process", "titles", "keystrokes", "screenshots")
_SITE_KEYS = ("name", "domains", "titles", "keystrokes", "screenshots")
_MAX_REPORTED = 5

Path_ = tuple[str | int, ...]


# -- the policy ---------------------------------------------------------------------------------
def _globs(patterns: Iterable[str]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(fnmatch.translate(p), re.IGNORECASE) for p in patterns)


def _any_match(regexes: Sequence[re.Pattern[str]], *names: str | None) -> bool:
    return any(r.match(n) for n in names if n for r in regexes)


@dataclass(frozen=True, slots=True)
class Rule:
    """One ``[[apps]]`` or ``[[sites]]`` entry, with the policy's defaults applied."""

    name: str
    kind: str  # "app" | "site"
    keystrokes: str
    screenshots: str
    index: int = 1  # position among the entries of its kind, from 1 (``apps[index]``)
    classes: tuple[str, ...] = ()  # app: globs on the WM_CLASS class or instance
    processes: tuple[str, ...] = ()  # app: globs on the process name
    titles: tuple[re.Pattern[str], ...] = ()  # app: the title must match one; site: title rule
    domains: tuple[str, ...] = ()  # site: host patterns, lower case, "*." for subdomains
    _class_res: tuple[re.Pattern[str], ...] = field(default=(), repr=False, compare=False)
    _process_res: tuple[re.Pattern[str], ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "domains", tuple(d.lower() for d in self.domains))
        object.__setattr__(self, "_class_res", _globs(self.classes))
        object.__setattr__(self, "_process_res", _globs(self.processes))

    @property
    def path(self) -> str:
        """Where the rule is in the policy file: ``apps[2]`` or ``sites[1]``."""
        return f"{self.kind}s[{self.index}]"

    def matches_app(
        self, app_class: str | None, instance: str | None, title: str | None, process: str | None
    ) -> bool:
        """Class or instance matches ``classes``, or process matches ``processes``; and the
        title matches one of ``titles`` when there are any."""
        if self.kind != "app":
            return False
        if not (
            _any_match(self._class_res, app_class, instance)
            or _any_match(self._process_res, process)
        ):
            return False
        return not self.titles or any(t.search(title or "") for t in self.titles)

    def matches_host(self, host: str) -> bool:
        """The host (lower case, no port) is one of ``domains``; ``*.a.b`` matches ``a.b`` and
        any subdomain of it at any depth."""
        host = host.lower().rstrip(".")
        for domain in self.domains:
            if domain.startswith("*."):
                base = domain[2:]
                if host == base or host.endswith("." + base):
                    return True
            elif host == domain:
                return True
        return False

    def matches_title(self, title: str | None) -> bool:
        """For sites whose URL is not known: the title matches one of ``titles``."""
        return any(t.search(title or "") for t in self.titles)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "keystrokes": self.keystrokes,
            "screenshots": self.screenshots,
        }
        if self.kind == "site":
            out["domains"] = list(self.domains)
        return out


@dataclass(frozen=True, slots=True)
class Hours:
    """Working hours, local time of the computer: ``start <= time < end`` on ``days``."""

    days: tuple[str, ...]  # in week order, from DAYS
    start: str  # "HH:MM"
    end: str  # "HH:MM", "24:00" for midnight at the end of the day

    @property
    def start_minutes(self) -> int:
        return _minutes(self.start)

    @property
    def end_minutes(self) -> int:
        return _minutes(self.end)

    def contains(self, when: dt.datetime) -> bool:
        if when.tzinfo is not None:
            when = when.astimezone()  # the computer's local time
        if DAYS[when.weekday()] not in self.days:
            return False
        minute = when.hour * 60 + when.minute + (when.second + when.microsecond / 1e6) / 60
        return self.start_minutes <= minute < self.end_minutes

    def summary(self) -> dict[str, Any]:
        return {"days": list(self.days), "start": self.start, "end": self.end}


@dataclass(frozen=True)
class Policy:
    """A validated policy. Build it with :func:`load_policy` or :func:`parse_policy`."""

    format: int
    revision: int
    name: str
    purpose: str
    organisation: str
    contact: str
    who_sees: str
    apps: tuple[Rule, ...]
    sites: tuple[Rule, ...]
    retention_days: int
    retention_gb: float
    review_hours: float
    hotkey: str  # canonical: modifiers in ctrl, alt, shift, super order, then the key
    secret_classes: tuple[str, ...]  # the policy's [secrets] classes (added to the built-ins)
    secret_titles: tuple[re.Pattern[str], ...]  # the policy's [secrets] titles (case-insensitive)
    browsers: tuple[str, ...]
    source: str  # the file path, or "<default policy>"
    digest: str  # sha256 of the canonical JSON of the parsed TOML
    hours: Hours | None
    defaults: tuple[str, str] = (DEFAULT_KEYSTROKES, DEFAULT_SCREENSHOTS)  # keystrokes, screens
    task_hotkey: str = DEFAULT_TASK_HOTKEY  # canonical, like ``hotkey``
    text: str = field(default="", repr=False, compare=False)  # the TOML source as read
    _browser_res: tuple[re.Pattern[str], ...] = field(default=(), repr=False, compare=False)
    _secret_class_res: tuple[re.Pattern[str], ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_browser_res", _globs(self.browsers))
        object.__setattr__(
            self, "_secret_class_res", _globs((*BUILTIN_SECRET_CLASSES, *self.secret_classes))
        )

    @property
    def version(self) -> str:
        """What consent binds to: the admin's revision and the content digest. Any change of a
        value in the policy changes it; comments and layout do not."""
        return f"{self.revision}-{self.digest[:12]}"

    @property
    def hotkey_keys(self) -> Hotkey:
        return parse_hotkey(self.hotkey)

    @property
    def task_hotkey_keys(self) -> Hotkey:
        return parse_hotkey(self.task_hotkey)

    def is_browser(self, app_class: str | None, instance: str | None) -> bool:
        return _any_match(self._browser_res, app_class, instance)

    def match_window(
        self,
        app_class: str | None,
        instance: str | None,
        title: str | None,
        process: str | None = None,
        url: str | None = None,
    ) -> Rule | None:
        """The rule that puts this window in scope, or None (out of scope). Browsers (class or
        instance in ``browsers``): app rules first; then site rules: by host of ``url`` when
        given (only http and https URLs can match), else by the sites' title regexes.
        Non-browsers: app rules only (class OR instance OR process matches, and the title
        regexes if any). Check :meth:`is_secret_window` first: a secret window is never
        captured, whatever rule matches it."""
        for rule in self.apps:
            if rule.matches_app(app_class, instance, title, process):
                return rule
        if not self.sites or not self.is_browser(app_class, instance):
            return None
        if url:
            host = url_host(url)
            if host is None:
                return None
            return next((r for r in self.sites if r.matches_host(host)), None)
        return next((r for r in self.sites if r.matches_title(title)), None)

    def within_hours(self, when: dt.datetime) -> bool:
        """True when ``when`` is inside the working hours (always, when the policy sets none).
        Naive datetimes are taken as local time; aware ones are converted to local time."""
        return self.hours is None or self.hours.contains(when)

    def is_secret_window(
        self, app_class: str | None, instance: str | None, title: str | None
    ) -> bool:
        """Secure prompts and password managers, by class or instance (the built-in
        :data:`BUILTIN_SECRET_CLASSES` plus the policy's ``[secrets] classes``) or by title
        (:func:`is_secret_title` plus the policy's ``[secrets] titles``)."""
        if _any_match(self._secret_class_res, app_class, instance):
            return True
        return is_secret_title(title or "", self.secret_titles)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (for ``--json`` output)."""
        return {
            "name": self.name,
            "revision": self.revision,
            "version": self.version,
            "digest": self.digest,
            "source": self.source,
            "organisation": self.organisation,
            "contact": self.contact,
            "apps": [r.summary() for r in self.apps],
            "sites": [r.summary() for r in self.sites],
            "hours": self.hours.summary() if self.hours else None,
            "retention": {"days": self.retention_days, "max_gb": self.retention_gb},
            "review": {"hours": self.review_hours},
            "hotkey": self.hotkey,
        }


def is_secret_title(title: str, extra: Iterable[re.Pattern[str]] = ()) -> bool:
    """Whether a window title is a password or sign-in prompt. The title is split into segments
    at separators (" - ", " | ", " — ", ": "); a segment that *is* a prompt ("Password",
    "Enter passphrase", "Sign in", "Login", "Unlock Keyring", "Authentication Required") makes
    the window secret, as do a few phrases anywhere ("Passphrase request", "Enter your
    password"). A document named "Password policy.docx" is not a prompt. ``extra`` patterns
    are searched in the whole title."""
    if not title:
        return False
    if _SECRET_ANYWHERE.search(title) or any(p.search(title) for p in extra):
        return True
    return any(_SECRET_SEGMENT.match(s.strip()) for s in _TITLE_SEPARATORS.split(title))


def url_host(url: str) -> str | None:
    """The host of an http(s) URL, lower case, without port or trailing dot, IDNA-encoded; None
    for other schemes (about:, file:, chrome:, data: ...) or when there is no host. A URL
    without a scheme ("crm.acme.example/x") is read as http."""
    u = url.strip()
    if "://" not in u:
        if re.match(r"^[a-z][a-z0-9+.-]*:(?!\d)", u, re.IGNORECASE):
            return None  # about:blank, mailto:, javascript: ...
        u = "http://" + u
    try:
        parts = urlsplit(u)
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    host = host.rstrip(".")
    try:
        return host.encode("idna").decode("ascii").lower() if not host.isascii() else host
    except UnicodeError:
        return None


# -- hotkey -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Hotkey:
    modifiers: tuple[str, ...]  # in HOTKEY_MODIFIERS order
    key: str  # a name from HOTKEY_KEYS

    @property
    def keysym(self) -> str:
        """The X keysym name of the key (``p``, ``F9``, ``Pause``, ``Escape``)."""
        return HOTKEY_KEYS[self.key]

    def __str__(self) -> str:
        """Canonical: modifiers in ctrl, alt, shift, super order, then the keysym name
        (``ctrl+alt+p``, ``super+Escape``, ``shift+super+F12``)."""
        return "+".join((*self.modifiers, self.keysym))

    def label(self) -> str:
        """For people: ``Ctrl+Alt+P``."""
        names = {"ctrl": "Ctrl", "alt": "Alt", "shift": "Shift", "super": "Super"}
        key = self.key.upper() if len(self.key) == 1 else self.key.capitalize()
        return "+".join((*(names[m] for m in self.modifiers), key))


_MODIFIER_ALIASES = {"control": "ctrl", "win": "super"}
#: Keys that type nothing, so they may be a hotkey without ctrl, alt or super.
_BARE_KEYS = frozenset({"pause", "scrolllock", *(f"f{n}" for n in range(1, 25))})
_BY_KEYSYM = {keysym.lower(): name for name, keysym in HOTKEY_KEYS.items()}


def parse_hotkey(text: str) -> Hotkey:
    """``"ctrl+alt+p"`` -> :class:`Hotkey`. Case-insensitive. Modifiers: ctrl (control), alt,
    shift, super (win); the key: a letter, a digit, f1-f24, a name of :data:`HOTKEY_KEYS`
    (pyautogui style: esc, enter, pageup) or its X keysym name (Escape, Return, Prior). A key
    that types something needs ctrl, alt or super; F-keys, pause and scrolllock may stand
    alone. Raises ValueError with the reason."""
    parts = [p.strip().lower() for p in text.split("+")]
    if any(not p for p in parts):
        raise ValueError("write modifiers and one key joined by +, for example ctrl+alt+p")
    *given, key = parts
    mods = [_MODIFIER_ALIASES.get(m, m) for m in given]
    for m, raw in zip(mods, given, strict=True):
        if m not in HOTKEY_MODIFIERS:
            raise ValueError(f'"{raw}" is not a modifier; use {", ".join(HOTKEY_MODIFIERS)}')
    if len(set(mods)) != len(mods):
        raise ValueError("a modifier is given twice")
    name = _KEY_ALIASES.get(key, key)
    name = name if name in HOTKEY_KEYS else _BY_KEYSYM.get(name, "")
    if not name:
        what = "a modifier" if _MODIFIER_ALIASES.get(key, key) in HOTKEY_MODIFIERS else "not a key"
        raise ValueError(
            f'"{parts[-1]}" is {what}; end with one key: a letter, a digit, f1-f24, or one of '
            "space, tab, enter, esc, pause, insert, delete, home, end, pageup, pagedown"
        )
    if name not in _BARE_KEYS and not set(mods) & {"ctrl", "alt", "super"}:
        raise ValueError("needs ctrl, alt or super, or it would catch ordinary typing")
    return Hotkey(tuple(m for m in HOTKEY_MODIFIERS if m in mods), name)


# -- loading ------------------------------------------------------------------------------------
_POLICIES = "policies"


def _packaged(name: str) -> Path:
    return Path(str(resources.files("demotrace.privacy").joinpath(_POLICIES, name)))


def default_policy_path() -> Path:
    """The packaged conservative office policy (what ``record`` uses without ``--policy``)."""
    return _packaged("default.toml")


def demo_policy_path() -> Path:
    """The packaged policy for ``demotrace demo`` and the tests on the virtual desktop."""
    return _packaged("demo.toml")


def load_policy(path: str | os.PathLike[str] | None = None) -> Policy:
    """Read and validate a policy file; ``None`` loads the packaged default policy."""
    if path is None:
        file, source = default_policy_path(), "<default policy>"
    else:
        file, source = Path(path), os.fspath(path)
    if not source:
        raise PolicyError("No policy file was given (the path is empty). Name a policy file.")
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise PolicyError(
            f"The policy file {source} does not exist. Check the path given (--policy or "
            "$DEMOTRACE_POLICY), or leave it out to use the default policy."
        ) from None
    except IsADirectoryError:
        raise PolicyError(
            f"{source} is a folder, not a policy file. Name the .toml file inside it."
        ) from None
    except PermissionError:
        raise PolicyError(
            f"The policy file {source} cannot be read (permission denied). Ask whoever manages "
            "this computer to make it readable, or use another copy."
        ) from None
    except OSError as e:
        raise PolicyError(
            f"The policy file {source} cannot be read ({e.strerror or e}). Check the path."
        ) from None
    try:
        text = data.decode("utf-8-sig")  # a byte order mark (Windows editors) is dropped
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise PolicyError(
            f"{source} line {line}: the policy file is not UTF-8 text. Save it as UTF-8 (TOML "
            "files must be UTF-8) and try again."
        ) from None
    return parse_policy(text, source)


def parse_policy(text: str, source: str = "<string>") -> Policy:
    """Validate policy TOML text. ``source`` names it in error messages and on the policy."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = re.search(r"\(at line (\d+), column \d+\)", msg)
        line = int(m.group(1)) if m else text.count("\n") + 1
        raise PolicyError(
            f"{source} line {line}: this is not valid TOML ({msg}). Fix the syntax (quotes around "
            "text, [brackets] around lists, one key = value per line) and try again."
        ) from None
    checker = _Checker()
    policy = _build(checker, data, text, source)
    if checker.errors or policy is None:
        raise PolicyError(_message(checker.errors, text, source, checker.advice))
    return policy


def canonical_digest(data: Mapping[str, Any]) -> str:
    """sha256 hex of the canonical JSON (sorted keys, compact, UTF-8) of parsed policy TOML."""
    blob = json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


# -- validation ---------------------------------------------------------------------------------
def _path_str(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else json.dumps(part)
            out += ("." if out else "") + name
    return out or "(top level)"


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        s = json.dumps(value, ensure_ascii=False)
        return s if len(s) <= 60 else s[:56] + '..."'
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return str(value)


class _Checker:
    def __init__(self) -> None:
        self.errors: list[tuple[Path_, str]] = []
        self.advice = "Fix the policy file and try again."

    def err(self, path: Path_, msg: str) -> None:
        self.errors.append((path, msg))

    def table(self, value: Any, path: Path_, example: str) -> dict[str, Any] | None:
        if isinstance(value, dict):
            return value
        self.err(path, f"must be a table ({example}), not {_show(value)}")
        return None

    def keys(self, table: Mapping[str, Any], path: Path_, allowed: Sequence[str]) -> None:
        for key in table:
            if key in allowed:
                continue
            msg = f'unknown key "{key}"'
            close = difflib.get_close_matches(key, allowed, n=1)
            if close:
                msg += f' (did you mean "{close[0]}"?)'
            elif path and key in _TOP_KEYS:
                msg += (
                    f"; {key} belongs at the top level: every key after a [table] header "
                    "belongs to that table, so move it above the first [table] header"
                )
            else:
                msg += f"; known keys here: {', '.join(allowed)}"
            self.err((*path, key), msg)

    def text(self, table: Mapping[str, Any], key: str, path: Path_, required: bool) -> str | None:
        if key not in table:
            if required:
                self.err((*path, key), f'is missing; add {key} = "..."')
            return None
        value = table[key]
        if not isinstance(value, str):
            self.err((*path, key), f"must be text in quotes, not {_show(value)}")
            return None
        if not value.strip():
            self.err((*path, key), "must not be empty")
            return None
        return value.strip()

    def integer(self, table: Mapping[str, Any], key: str, path: Path_, minimum: int) -> int | None:
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, int):
            self.err((*path, key), f"must be a whole number, not {_show(value)}")
            return None
        if value < minimum:
            self.err((*path, key), f"must be {minimum} or more, not {value}")
            return None
        return value

    def number(
        self, table: Mapping[str, Any], key: str, path: Path_, minimum: float, strict: bool
    ) -> float | None:
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.err((*path, key), f"must be a number, not {_show(value)}")
            return None
        if not math.isfinite(value):
            self.err((*path, key), f"must be a finite number, not {value}")
            return None
        if value < minimum or (strict and value == minimum):
            rel = "more than" if strict else "at least"
            self.err((*path, key), f"must be {rel} {minimum:g}, not {value:g}")
            return None
        return float(value)

    def choice(
        self, table: Mapping[str, Any], key: str, path: Path_, options: Sequence[str]
    ) -> str | None:
        value = table[key]
        if not isinstance(value, str) or value not in options:
            self.err((*path, key), f"{_show(value)} is not one of {', '.join(options)}")
            return None
        return value

    def strings(self, table: Mapping[str, Any], key: str, path: Path_) -> list[tuple[Path_, str]]:
        """A list of strings: [(path of item, item)] for the valid items."""
        if key not in table:
            return []
        value = table[key]
        example = f'{key} = ["..."]'
        if not isinstance(value, list):
            self.err(
                (*path, key), f"must be a list of text in quotes ({example}), not {_show(value)}"
            )
            return []
        out = []
        for i, item in enumerate(value, 1):
            if isinstance(item, str):
                out.append(((*path, key, i), item))
            else:
                self.err((*path, key, i), f"must be text in quotes, not {_show(item)}")
        return out

    def regexes(
        self, table: Mapping[str, Any], key: str, path: Path_, flags: int = 0
    ) -> list[re.Pattern[str]]:
        out = []
        for p, item in self.strings(table, key, path):
            try:
                out.append(re.compile(item, flags))
            except re.error as e:
                self.err(p, f"{_show(item)} is not a valid regular expression ({e})")
        return out

    def globs(self, table: Mapping[str, Any], key: str, path: Path_, catch_all: bool) -> list[str]:
        out = []
        for p, item in self.strings(table, key, path):
            reason = _glob_problem(item, catch_all)
            if reason:
                self.err(p, f"{_show(item)} {reason}")
            else:
                out.append(item)
        return out


def _glob_problem(pattern: str, catch_all: bool) -> str | None:
    if not pattern.strip():
        return "is empty"
    if pattern != pattern.strip():
        return "has spaces at the start or end"
    if any(not c.isprintable() for c in pattern):
        return "contains control characters"
    i = 0
    while i < len(pattern):
        if pattern[i] == "[":
            close = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "]") else i + 1)
            if close < 0:
                return "has a [ without a matching ] (write [[] for a literal [)"
            i = close
        i += 1
    if not catch_all and set(pattern) <= {"*", "?"}:
        return "matches every window; name the programs instead"
    return None


_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


def _domain_problem(pattern: str) -> tuple[str | None, str]:
    """(problem, normalised pattern)."""
    p = pattern
    if not p.strip():
        return "is empty", p
    if p != p.strip():
        return "has spaces at the start or end", p
    if "://" in p:
        bare = p.split("://", 1)[1].split("/", 1)[0]
        return f'must be a host name without a scheme: write "{bare}"', p
    if "/" in p:
        return f'must be a host name without a path: write "{p.split("/", 1)[0]}"', p
    if ":" in p:
        return "must be a host name without a port", p
    wildcard = p.startswith("*.")
    base = p[2:] if wildcard else p
    if p == "*" or "*" in base:
        return 'may use * only as the whole first label, as in "*.acme.example"', p
    base = base.rstrip(".").lower()
    if not base.isascii():
        try:
            base = base.encode("idna").decode("ascii")
        except UnicodeError:
            return "is not a valid host name", p
    labels = base.split(".")
    if len(base) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return "is not a valid host name (letters, digits and - between the dots)", p
    if wildcard and len(labels) < 2:
        return f"is too broad: *.{base} would match every site under .{base}", p
    return None, ("*." if wildcard else "") + base


_TIME = re.compile(r"([01]\d|2[0-3]):([0-5]\d)|24:00")


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def _time(c: _Checker, table: Mapping[str, Any], key: str, path: Path_) -> str | None:
    if key not in table:
        c.err((*path, key), f'is missing; add {key} = "HH:MM"')
        return None
    value = table[key]
    if isinstance(value, dt.time):  # a TOML local time: start = 08:00:00
        return f"{value.hour:02d}:{value.minute:02d}"
    if not isinstance(value, str) or not _TIME.fullmatch(value):
        c.err((*path, key), f'{_show(value)} is not a time; write "HH:MM", 24-hour, like "08:30"')
        return None
    if value == "24:00" and key == "start":
        c.err((*path, key), '"24:00" can only be an end time')
        return None
    return value


def _hours(c: _Checker, value: Any) -> Hours | None:
    path: Path_ = ("hours",)
    table = c.table(value, path, "[hours] with days, start and end")
    if table is None:
        return None
    c.keys(table, path, ("days", "start", "end"))
    days: list[str] = []
    if "days" in table:
        items = c.strings(table, "days", path)
        for p, day in items:
            if day.lower() in DAYS:
                days.append(day.lower())
            else:
                c.err(p, f"{_show(day)} is not a day; use {', '.join(DAYS)}")
        if isinstance(table["days"], list) and not table["days"]:
            c.err((*path, "days"), "is empty, so nothing could ever be recorded; name the days")
    else:
        days = list(DAYS)
    start, end = _time(c, table, "start", path), _time(c, table, "end", path)
    if start is None or end is None:
        return None
    if _minutes(end) <= _minutes(start):
        c.err(
            (*path, "end"),
            f'"{end}" must be after start "{start}" (hours cannot run past midnight; '
            'use end = "24:00" for the end of the day)',
        )
        return None
    return Hours(tuple(d for d in DAYS if d in days), start, end)


def _mode(
    c: _Checker,
    table: Mapping[str, Any],
    key: str,
    path: Path_,
    options: Sequence[str],
    fallback: str,
) -> str:
    if key not in table:
        return fallback
    return c.choice(table, key, path, options) or fallback


def _entries(c: _Checker, data: Mapping[str, Any], key: str) -> list[tuple[Path_, dict]]:
    if key not in data:
        return []
    value = data[key]
    example = f"[[{key}]] entries"
    if not isinstance(value, list):
        c.err((key,), f"must be a list of tables ({example}), not {_show(value)}")
        return []
    out = []
    for i, entry in enumerate(value, 1):
        table = c.table(entry, (key, i), example)
        if table is not None:
            out.append(((key, i), table))
    return out


def _rules(
    c: _Checker, data: Mapping[str, Any], defaults: tuple[str, str]
) -> tuple[list[Rule], list[Rule]]:
    apps: list[Rule] = []
    for path, table in _entries(c, data, "apps"):
        c.keys(table, path, _APP_KEYS)
        name = c.text(table, "name", path, required=True)
        classes = c.globs(table, "class", path, catch_all=False)
        processes = c.globs(table, "process", path, catch_all=False)
        titles = c.regexes(table, "titles", path)
        if not table.get("class") and not table.get("process"):
            c.err(path, 'needs class = ["..."] or process = ["..."] to say which windows it means')
        keys = _mode(c, table, "keystrokes", path, KEYSTROKE_MODES, defaults[0])
        shots = _mode(c, table, "screenshots", path, SCREENSHOT_MODES, defaults[1])
        if name:
            apps.append(
                Rule(
                    name,
                    "app",
                    keys,
                    shots,
                    index=int(path[1]),
                    classes=tuple(classes),
                    processes=tuple(processes),
                    titles=tuple(titles),
                )
            )
    sites: list[Rule] = []
    for path, table in _entries(c, data, "sites"):
        c.keys(table, path, _SITE_KEYS)
        name = c.text(table, "name", path, required=True)
        domains = []
        for p, item in c.strings(table, "domains", path):
            problem, normal = _domain_problem(item)
            if problem:
                c.err(p, f"{_show(item)} {problem}")
            else:
                domains.append(normal)
        if not table.get("domains"):
            c.err((*path, "domains"), 'is missing or empty; add domains = ["crm.example.com"]')
        titles = []
        for p, item in c.strings(table, "titles", path):
            try:
                regex = re.compile(item)
            except re.error as e:
                c.err(p, f"{_show(item)} is not a valid regular expression ({e})")
                continue
            if regex.search("") and regex.search("Unrelated page - Browser"):
                c.err(p, f"{_show(item)} would match every browser window; make it specific")
                continue
            titles.append(regex)
        keys = _mode(c, table, "keystrokes", path, KEYSTROKE_MODES, defaults[0])
        shots = _mode(c, table, "screenshots", path, SCREENSHOT_MODES, defaults[1])
        if name:
            sites.append(
                Rule(
                    name,
                    "site",
                    keys,
                    shots,
                    index=int(path[1]),
                    titles=tuple(titles),
                    domains=tuple(domains),
                )
            )
    seen: dict[str, Rule] = {}
    for rule in (*apps, *sites):
        first = seen.setdefault(rule.name.casefold(), rule)
        if first is not rule:
            c.err(
                (f"{rule.kind}s", rule.index, "name"),
                f'"{rule.name}" is already the name of {first.path}; give each entry its own name',
            )
    return apps, sites


def _build(c: _Checker, data: dict[str, Any], text: str, source: str) -> Policy | None:
    # The format first: a newer format may use anything, so report only that.
    if "format" not in data:
        c.err(("format",), "is missing; the first line of a policy is format = 1")
        return None
    fmt = data["format"]
    if isinstance(fmt, bool) or not isinstance(fmt, int) or fmt < 1:
        c.err(("format",), f"must be a whole number (format = 1), not {_show(fmt)}")
        return None
    if fmt > FORMAT:
        c.err(
            ("format",),
            f"this policy is written in policy format {fmt}, but this demotrace reads format "
            f"{FORMAT} only",
        )
        c.advice = (
            f"A newer demotrace is needed: upgrade demotrace, or ask whoever wrote the policy "
            f"for a format {FORMAT} version of it."
        )
        return None

    c.keys(data, (), _TOP_KEYS)
    revision = None
    if "revision" not in data:
        c.err(("revision",), "is missing; add revision = 1 and raise it with every change")
    else:
        revision = c.integer(data, "revision", (), 1)
    texts = {key: c.text(data, key, (), required=True) for key in _REQUIRED_TEXT}

    hours = _hours(c, data["hours"]) if "hours" in data else None

    defaults = (DEFAULT_KEYSTROKES, DEFAULT_SCREENSHOTS)
    if "defaults" in data:
        table = c.table(data["defaults"], ("defaults",), "[defaults]")
        if table is not None:
            c.keys(table, ("defaults",), ("keystrokes", "screenshots"))
            defaults = (
                _mode(c, table, "keystrokes", ("defaults",), KEYSTROKE_MODES, defaults[0]),
                _mode(c, table, "screenshots", ("defaults",), SCREENSHOT_MODES, defaults[1]),
            )
    apps, sites = _rules(c, data, defaults)

    browsers = list(DEFAULT_BROWSERS)
    if "browsers" in data:
        browsers = c.globs(data, "browsers", (), catch_all=False)
        if isinstance(data["browsers"], list) and not data["browsers"] and sites:
            c.err(("browsers",), "is empty, so none of the [[sites]] could ever be in scope")

    retention_days, retention_gb = DEFAULT_RETENTION_DAYS, DEFAULT_RETENTION_GB
    if "retention" in data:
        table = c.table(data["retention"], ("retention",), "[retention] with days and max_gb")
        if table is not None:
            c.keys(table, ("retention",), ("days", "max_gb"))
            if "days" in table:
                retention_days = c.integer(table, "days", ("retention",), 1) or retention_days
            if "max_gb" in table:
                gb = c.number(table, "max_gb", ("retention",), 0, strict=True)
                retention_gb = gb if gb is not None else retention_gb

    review_hours = DEFAULT_REVIEW_HOURS
    if "review" in data:
        table = c.table(data["review"], ("review",), "[review] with hours")
        if table is not None:
            c.keys(table, ("review",), ("hours",))
            if "hours" in table:
                h = c.number(table, "hours", ("review",), 0, strict=False)
                review_hours = h if h is not None else review_hours

    secret_classes: list[str] = []
    secret_titles: list[re.Pattern[str]] = []
    if "secrets" in data:
        table = c.table(data["secrets"], ("secrets",), "[secrets] with classes and titles")
        if table is not None:
            c.keys(table, ("secrets",), ("classes", "titles"))
            secret_classes = c.globs(table, "classes", ("secrets",), catch_all=True)
            secret_titles = c.regexes(table, "titles", ("secrets",), re.IGNORECASE)

    keys = {"hotkey": DEFAULT_HOTKEY, "task_hotkey": DEFAULT_TASK_HOTKEY}
    if "controls" in data:
        table = c.table(data["controls"], ("controls",), "[controls] with hotkey")
        if table is not None:
            c.keys(table, ("controls",), ("hotkey", "task_hotkey"))
            for key, example in (("hotkey", "ctrl+alt+p"), ("task_hotkey", "ctrl+alt+m")):
                if key not in table:
                    continue
                value = table[key]
                path: Path_ = ("controls", key)
                if not isinstance(value, str):
                    c.err(path, f'must be text in quotes ({key} = "{example}"), not {_show(value)}')
                else:
                    try:
                        keys[key] = str(parse_hotkey(value))
                    except ValueError as e:
                        c.err(path, f"{_show(value)} is not a hotkey: {e}")
            if keys["hotkey"] == keys["task_hotkey"]:
                c.err(("controls", "task_hotkey"), "must differ from the pause hotkey")
    hotkey = keys["hotkey"]

    if c.errors or revision is None or any(v is None for v in texts.values()):
        return None
    return Policy(
        format=fmt,
        revision=revision,
        name=texts["name"] or "",
        purpose=texts["purpose"] or "",
        organisation=texts["organisation"] or "",
        contact=texts["contact"] or "",
        who_sees=texts["who_sees"] or "",
        apps=tuple(apps),
        sites=tuple(sites),
        retention_days=retention_days,
        retention_gb=retention_gb,
        review_hours=review_hours,
        hotkey=hotkey,
        task_hotkey=keys["task_hotkey"],
        secret_classes=tuple(secret_classes),
        secret_titles=tuple(secret_titles),
        browsers=tuple(browsers),
        source=source,
        digest=canonical_digest(data),
        hours=hours,
        defaults=defaults,
        text=text,
    )


def _message(errors: list[tuple[Path_, str]], text: str, source: str, advice: str) -> str:
    where = _Locator(text)
    located = sorted(
        ((where.line(path), i, path, msg) for i, (path, msg) in enumerate(errors)),
        key=lambda e: (e[0], e[1]),
    )
    items = [f"{source} line {line}: {_path_str(path)}: {msg}" for line, _, path, msg in located]
    if len(items) == 1:
        return f"{items[0]}. {advice}"
    shown = "; ".join(items[:_MAX_REPORTED])
    more = len(items) - _MAX_REPORTED
    tail = f"; and {more} more" if more > 0 else ""
    return f"The policy {source} has {len(items)} problems: {shown}{tail}. {advice}"


# -- line numbers for field paths ---------------------------------------------------------------
_KEYPART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\\n]|\\.)*"|'[^'\n]*')"""
_KEY_LINE = re.compile(rf"\s*({_KEYPART}(?:\s*\.\s*{_KEYPART})*)\s*=")
_ARRAY_HEADER = re.compile(rf"\s*\[\[\s*({_KEYPART}(?:\s*\.\s*{_KEYPART})*)\s*\]\]")
_TABLE_HEADER = re.compile(rf"\s*\[\s*({_KEYPART}(?:\s*\.\s*{_KEYPART})*)\s*\]")


def _key_parts(dotted: str) -> tuple[str, ...]:
    parts = []
    for raw in re.findall(_KEYPART, dotted):
        if raw[0] in "\"'":
            raw = tomllib.loads(f"k = {raw}")["k"]
        parts.append(raw)
    return tuple(parts)


class _Locator:
    """Maps field paths (``("apps", 2, "keystrokes")``) to line numbers in valid TOML text:
    tracks ``[table]`` and ``[[array]]`` headers (with each array's entry count) and the
    ``key =`` lines in each section, skipping multi-line strings and multi-line values."""

    def __init__(self, text: str) -> None:
        self.lines: dict[Path_, int] = {}
        counts: dict[tuple[str, ...], int] = {}
        section: Path_ = ()
        in_string: str | None = None  # the closing delimiter of an open multi-line string
        depth = 0  # open [ and { in a value
        for n, line in enumerate(text.split("\n"), 1):
            rest = line
            if in_string is None and depth == 0:
                if m := _ARRAY_HEADER.match(line):
                    names = _key_parts(m.group(1))
                    counts[names] = counts.get(names, 0) + 1
                    section = (*self._resolve(names[:-1], counts), names[-1], counts[names])
                    self.lines.setdefault(section, n)
                    rest = line[m.end() :]
                elif m := _TABLE_HEADER.match(line):
                    section = self._resolve(_key_parts(m.group(1)), counts)
                    self.lines.setdefault(section, n)
                    rest = line[m.end() :]
                elif m := _KEY_LINE.match(line):
                    self.lines.setdefault((*section, *_key_parts(m.group(1))), n)
                    rest = line[m.end() :]
            in_string, depth = self._scan(rest, in_string, depth)

    @staticmethod
    def _resolve(names: tuple[str, ...], counts: Mapping[tuple[str, ...], int]) -> Path_:
        out: list[str | int] = []
        for i, name in enumerate(names):
            out.append(name)
            if names[: i + 1] in counts:
                out.append(counts[names[: i + 1]])
        return tuple(out)

    @staticmethod
    def _scan(s: str, in_string: str | None, depth: int) -> tuple[str | None, int]:
        i = 0
        while i < len(s):
            if in_string is not None:
                if in_string == '"""' and s[i] == "\\":
                    i += 2
                    continue
                if s.startswith(in_string, i):
                    i += 3
                    in_string = None
                    continue
                i += 1
                continue
            c = s[i]
            if c == "#":
                break
            if s.startswith('"""', i) or s.startswith("'''", i):
                in_string = s[i : i + 3]
                i += 3
                continue
            if c == '"':
                i += 1
                while i < len(s) and s[i] != '"':
                    i += 2 if s[i] == "\\" else 1
            elif c == "'":
                close = s.find("'", i + 1)
                i = len(s) if close < 0 else close
            elif c in "[{":
                depth += 1
            elif c in "]}":
                depth = max(0, depth - 1)
            i += 1
        return in_string, depth

    def line(self, path: Path_) -> int:
        """The line of the field, else of the nearest enclosing key or header, else 1."""
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return 1
