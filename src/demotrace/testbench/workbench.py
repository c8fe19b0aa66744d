"""The workbench: a small Tk app with the widgets a computer-use agent meets in real work.

Run as ``python -m demotrace.testbench.workbench --layout FILE [--geometry WxH+X+Y]``. The app
keeps FILE up to date with every named widget's screen bounding box, any open popup (combobox
list, menus) with its items, and the current form values (never the password); see
:mod:`demotrace.testbench.layout_tk`.
"""

from __future__ import annotations

import argparse
import tkinter as tk
from pathlib import Path
from tkinter import ttk

from demotrace.testbench import spec
from demotrace.testbench.layout_tk import LayoutWriter

DEFAULT_GEOMETRY = "640x760+0+0"
_MAX_STATUS_LINES = 50


class Workbench:
    """Builds the widgets from :mod:`spec` and keeps their values."""

    def __init__(self, root: tk.Tk) -> None:
        self.root = root
        self.widgets: dict[str, tk.Misc] = {}
        #: menu widget path (or name suffix of Tk's menubar clones) -> (owner widget, label path)
        self.menu_owners: dict[str, tuple[str, tuple[str, ...]]] = {}
        self.invoked: list[str] = []
        self.status_lines: list[str] = []
        self.name = tk.StringVar(root, name="v_name")
        self.email = tk.StringVar(root, name="v_email")
        self.password = tk.StringVar(root, name="v_password")
        self.country = tk.StringVar(root, name="v_country")
        self.priority = tk.StringVar(root, value=spec.PRIORITIES[0], name="v_priority")
        self.agree = tk.BooleanVar(root, value=False, name="v_agree")
        self.newsletter = tk.BooleanVar(root, value=False, name="v_newsletter")
        self.status_text = tk.StringVar(root, value="Ready.", name="v_status")
        root.title("Workbench")
        self._build_menubar()
        self._build_form()
        self._bind_editing_keys()

    # ----------------------------------------------------------------------------- menus
    def _build_menubar(self) -> None:
        menubar = tk.Menu(self.root, name="menubar", tearoff=0)
        for label, entries in spec.MENUBAR:
            menubar.add_cascade(label=label, menu=self._build_menu(menubar, (label,), entries))
        self.root.configure(menu=menubar)
        self.widgets["menubar"] = menubar

    def _build_menu(
        self, parent: tk.Menu, path: tuple[str, ...], entries: spec.MenuEntries
    ) -> tk.Menu:
        suffix = "mb_" + "_".join(p.lower().replace(" ", "") for p in path)
        menu = tk.Menu(parent, name=suffix, tearoff=0)
        self.menu_owners[suffix] = ("menubar", path)
        for entry in entries:
            if entry is None:
                menu.add_separator()
            elif isinstance(entry, str):
                menu.add_command(label=entry, command=lambda p=(*path, entry): self._menu(p))
            else:
                sub_label, sub_entries = entry
                sub = self._build_menu(menu, (*path, sub_label), sub_entries)
                menu.add_cascade(label=sub_label, menu=sub)
        return menu

    def _menu(self, path: tuple[str, ...]) -> None:
        self._log("menu:" + ">".join(path))
        focus = self.root.focus_get()
        virtual = {
            "Undo": "<<Undo>>",
            "Cut": "<<Cut>>",
            "Copy": "<<Copy>>",
            "Paste": "<<Paste>>",
            "Select All": "<<SelectAll>>",
        }
        if path == ("Edit", "Select All") and focus is self.notes:
            self.notes.tag_add("sel", "1.0", "end-1c")
        elif path[0] == "Edit" and focus is not None and path[-1] in virtual:
            focus.event_generate(virtual[path[-1]])
        elif path == ("File", "New"):
            self.notes.delete("1.0", "end")

    def _log(self, what: str) -> None:
        self.invoked.append(what)
        del self.invoked[:-_MAX_STATUS_LINES]

    # ------------------------------------------------------------------------------ form
    def _build_form(self) -> None:
        frame = ttk.Frame(self.root, name="form", padding=10)
        frame.pack(fill="both", expand=True)
        frame.columnconfigure(1, weight=1)
        row = 0
        for name, label, var, show in (
            ("name", "Name", self.name, ""),
            ("email", "Email", self.email, ""),
            ("password", "Password", self.password, "*"),
        ):
            ttk.Label(frame, text=label).grid(row=row, column=0, sticky="w", pady=3)
            entry = tk.Entry(frame, name=name, textvariable=var, show=show, width=40)
            entry.grid(row=row, column=1, sticky="we", pady=3)
            self.widgets[name] = entry
            row += 1
        ttk.Label(frame, text="Country").grid(row=row, column=0, sticky="w", pady=3)
        combo = ttk.Combobox(
            frame,
            name="country",
            textvariable=self.country,
            values=spec.COUNTRIES,
            state="readonly",
            height=len(spec.COUNTRIES),
        )
        combo.grid(row=row, column=1, sticky="w", pady=3)
        self.widgets["country"] = combo
        row += 1
        ttk.Label(frame, text="Priority").grid(row=row, column=0, sticky="w", pady=3)
        option = tk.OptionMenu(frame, self.priority, *spec.PRIORITIES)
        option.configure(width=10)
        option.grid(row=row, column=1, sticky="w", pady=3)
        self.widgets["priority"] = option
        self.menu_owners[str(option["menu"])] = ("priority", ())
        row += 1
        for name, label, var in (
            ("agree", "I agree to the terms", self.agree),
            ("newsletter", "Send me the newsletter", self.newsletter),
        ):
            check = tk.Checkbutton(frame, name=name, text=label, variable=var)
            check.grid(row=row, column=1, sticky="w")
            self.widgets[name] = check
            row += 1
        row = self._build_lists(frame, row)
        submit = ttk.Button(frame, name="submit", text="Submit", command=self._submit)
        submit.grid(row=row, column=1, sticky="w", pady=6)
        self.widgets["submit"] = submit
        status = ttk.Label(
            frame, name="status", textvariable=self.status_text, justify="left", anchor="nw"
        )
        status.grid(row=row + 1, column=0, columnspan=2, sticky="nwe")
        self.widgets["status"] = status
        frame.rowconfigure(row + 1, weight=1)

    def _build_lists(self, frame: ttk.Frame, row: int) -> int:
        ttk.Label(frame, text="Files").grid(row=row, column=0, sticky="nw", pady=3)
        box = ttk.Frame(frame, name="files_box")
        box.grid(row=row, column=1, sticky="we", pady=3)
        files = tk.Listbox(
            box, name="files", height=8, exportselection=False, selectmode="extended"
        )
        scroll = ttk.Scrollbar(box, name="files_scrollbar", command=files.yview)
        files.configure(yscrollcommand=scroll.set)
        files.insert("end", *spec.FILES)
        files.pack(side="left", fill="both", expand=True)
        scroll.pack(side="right", fill="y")
        self.widgets["files"] = files
        self.widgets["files_scrollbar"] = scroll
        row += 1
        ttk.Label(frame, text="Notes").grid(row=row, column=0, sticky="nw", pady=3)
        notes = tk.Text(frame, name="notes", height=8, width=50, undo=True, wrap="word")
        notes.grid(row=row, column=1, sticky="we", pady=3)
        self.notes = notes
        self.widgets["notes"] = notes
        context = tk.Menu(notes, name="notes_menu", tearoff=0)
        for label in spec.CONTEXT_MENU:
            context.add_command(label=label, command=lambda lb=label: self._context(lb))
        self.menu_owners[str(context)] = ("notes", ())
        notes.bind("<Button-3>", lambda e: context.tk_popup(e.x_root, e.y_root))
        return row + 1

    def _context(self, label: str) -> None:
        self._log("context:" + label)
        self.notes.focus_set()
        self.notes.event_generate(f"<<{label}>>")

    def _submit(self) -> None:
        self._log("submit")
        line = (
            f"Submitted: {self.name.get()} <{self.email.get()}> {self.country.get() or '-'}"
            f" {self.priority.get()} agree={int(self.agree.get())}"
            f" newsletter={int(self.newsletter.get())}"
        )
        self.status_lines.append(line)
        del self.status_lines[:-_MAX_STATUS_LINES]
        self.status_text.set("\n".join(self.status_lines[-3:]))

    def _bind_editing_keys(self) -> None:
        """Ctrl+A selects all in entries and the Text (Tk's X11 default is line start)."""

        def entry_select_all(event: tk.Event) -> str:
            widget = event.widget
            widget.select_range(0, "end")
            widget.icursor("end")
            return "break"

        def text_select_all(event: tk.Event) -> str:
            event.widget.tag_add("sel", "1.0", "end-1c")
            return "break"

        for name in ("name", "email", "password"):
            self.widgets[name].bind("<Control-a>", entry_select_all)
        self.notes.bind("<Control-a>", text_select_all)
        self.notes.bind("<<SelectAll>>", text_select_all)

    def state(self) -> dict[str, object]:
        """Current values, for the layout file. Never includes the password itself."""
        files = self.widgets["files"]
        assert isinstance(files, tk.Listbox)
        focus = str(self.root.tk.call("focus"))
        by_path = {str(w): n for n, w in self.widgets.items()}
        return {
            "name": self.name.get(),
            "email": self.email.get(),
            "password_set": bool(self.password.get()),
            "country": self.country.get(),
            "priority": self.priority.get(),
            "agree": bool(self.agree.get()),
            "newsletter": bool(self.newsletter.get()),
            "files_selection": [files.get(i) for i in files.curselection()],
            "notes": self.notes.get("1.0", "end-1c"),
            "notes_selection": self.notes.get(*sel)
            if (sel := self.notes.tag_ranges("sel"))
            else "",
            "status": list(self.status_lines),
            "invoked": list(self.invoked),
            "focus": by_path.get(focus, focus or None),
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m demotrace.testbench.workbench")
    parser.add_argument("--layout", required=True, type=Path, help="layout JSON file to keep")
    parser.add_argument("--geometry", default=DEFAULT_GEOMETRY, help="WxH+X+Y")
    args = parser.parse_args(argv)
    root = tk.Tk(className="Workbench")
    root.geometry(args.geometry)
    bench = Workbench(root)
    LayoutWriter(bench, args.layout).start()
    root.mainloop()


if __name__ == "__main__":
    main()
