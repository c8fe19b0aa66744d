"""Static description of the workbench app: widget names, choices and menus.

Shared by the Tk app (which builds itself from it) and by scenario validation (which must work
without a display), so this module imports nothing from X or Tk.
"""

from __future__ import annotations

COUNTRIES: tuple[str, ...] = (
    "Argentina",
    "Australia",
    "Brazil",
    "Canada",
    "France",
    "Germany",
    "India",
    "Italy",
    "Japan",
    "Kenya",
    "Spain",
    "United Kingdom",
)

PRIORITIES: tuple[str, ...] = ("Low", "Medium", "High", "Urgent")

_STEMS = ("report", "invoice", "budget", "notes", "draft")
_EXTS = ("csv", "pdf", "txt", "json", "xlsx")

#: The 40 entries of the ``files`` listbox, in order.
FILES: tuple[str, ...] = tuple(
    f"{_STEMS[i % len(_STEMS)]}_{i + 1:02d}.{_EXTS[(i // 5) % len(_EXTS)]}" for i in range(40)
)

#: Menubar: (label, entries); an entry is a label, ``None`` for a separator, or a nested
#: (label, entries) tuple for a cascade.
MenuEntries = tuple["str | tuple[str, MenuEntries] | None", ...]

MENUBAR: tuple[tuple[str, MenuEntries], ...] = (
    ("File", ("New", "Open", "Save", None, ("Export", ("CSV", "JSON", "PDF")), None, "Close")),
    ("Edit", ("Undo", None, "Cut", "Copy", "Paste", None, "Select All")),
)

#: Right-click menu on ``notes``.
CONTEXT_MENU: tuple[str, ...] = ("Cut", "Copy", "Paste")

#: Named widgets and their kind. Every one appears in the layout file under ``widgets``.
WIDGETS: dict[str, str] = {
    "menubar": "menubar",
    "name": "entry",
    "email": "entry",
    "password": "entry",
    "country": "combobox",
    "priority": "optionmenu",
    "agree": "checkbutton",
    "newsletter": "checkbutton",
    "files": "listbox",
    "files_scrollbar": "scrollbar",
    "notes": "text",
    "submit": "button",
    "status": "label",
}

#: Widgets whose typed text the ground truth must not keep.
SECRET_WIDGETS = frozenset({"password"})

#: Keys of the layout file's ``state`` (the password is never among them).
STATE_KEYS: tuple[str, ...] = (
    "name",
    "email",
    "password_set",
    "country",
    "priority",
    "agree",
    "newsletter",
    "files_selection",
    "notes",
    "notes_selection",
    "status",
    "invoked",
    "focus",
)


def menu_path_exists(path: list[str] | tuple[str, ...]) -> bool:
    """True when ``path`` (e.g. ``["File", "Export", "PDF"]``) names a menubar command."""
    level: MenuEntries = tuple((label, entries) for label, entries in MENUBAR)
    for depth, label in enumerate(path):
        found: str | tuple[str, MenuEntries] | None = None
        for entry in level:
            name = entry if isinstance(entry, str) else entry[0] if entry else None
            if name == label:
                found = entry
                break
        if found is None:
            return False
        last = depth == len(path) - 1
        if isinstance(found, str):
            return last
        if last:
            return False
        level = found[1]
    return False
