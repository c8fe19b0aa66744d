"""What every exporter shares: reading a dataset, coordinates, images, key names, code strings.

A *step* is one row of ``data/*.parquet`` as a dict, with ``action`` parsed from its canonical
JSON (see ``docs/dataset.md``). Converters turn a step into their dialect with ``to_dialect`` and
raise :class:`Skip` when the dialect cannot express it; the exporter counts the reason.
"""

from __future__ import annotations

import ast
import io
import itertools
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from demotrace.dataset import schema
from demotrace.errors import DatasetError

Step = dict[str, Any]
Action = dict[str, Any]
Episode = dict[str, Any]
Progress = Callable[[int, int], None]

#: The resolution of the relative grid that Qwen and UI-TARS use: 0 to 1000 on each axis.
GRID = 1000

_HEX = re.compile(r"[0-9a-f]+")


class Skip(Exception):
    """The dialect cannot express this step; ``reason`` says why (it is counted, not fatal)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Summary:
    """What an export wrote: the dict :func:`demotrace.dataset.formats.export_dataset` returns."""

    format: str
    out: Path
    episodes: int = 0
    steps: int = 0
    files: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "out": str(self.out),
            "episodes": self.episodes,
            "steps": self.steps,
            "files": self.files,
            "skipped": dict(sorted(self.skipped.items())),
        }


# -- reading ---------------------------------------------------------------------------------
class Dataset:
    """A built dataset on disk, checked on open and read a row group at a time."""

    def __init__(self, root: Path) -> None:
        self.root = root
        if not root.is_dir():
            raise DatasetError(
                f"The dataset folder {root} does not exist or is not a folder. Give the folder "
                "`demotrace build` wrote (it holds meta/info.json and data/)."
            )
        self.info = _read_info(root)
        self.data_files = sorted((root / "data").glob("*.parquet"))
        if not self.data_files:
            raise DatasetError(
                f"The dataset {root} has no step files (data/*.parquet). It is incomplete; "
                "build it again with `demotrace build`."
            )
        try:
            self.total_steps = sum(pq.ParquetFile(f).metadata.num_rows for f in self.data_files)
            episodes = pq.read_table(root / "meta" / "episodes.parquet").to_pylist()
        except (OSError, pa.ArrowException) as exc:
            raise _damaged(root, exc) from exc
        self.episodes: dict[str, Episode] = {e["episode_id"]: e for e in episodes}

    def steps(self, progress: Progress | None = None) -> Iterator[Step]:
        """Every step in file order, a row group at a time; ``progress(done, total)`` after each."""
        done = 0
        try:
            for path in self.data_files:
                for batch in pq.ParquetFile(path).iter_batches(batch_size=schema.ROW_GROUP):
                    for row in batch.to_pylist():
                        yield _parse_step(row, path)
                    done += batch.num_rows
                    if progress is not None:
                        progress(done, self.total_steps)
        except (OSError, pa.ArrowException) as exc:
            raise _damaged(self.root, exc) from exc

    def by_episode(
        self, progress: Progress | None = None
    ) -> Iterator[tuple[Episode, Iterator[Step]]]:
        """Each episode with an iterator over its steps, read as they are consumed (consume
        them before asking for the next episode)."""
        seen: set[str] = set()
        for episode_id, steps in itertools.groupby(self.steps(progress), itemgetter("episode_id")):
            if episode_id in seen or episode_id not in self.episodes:
                problem = "is split in two places" if episode_id in seen else "has no episode row"
                raise DatasetError(
                    f"Episode {episode_id} in {self.root} {problem}: the dataset is damaged. "
                    "Build it again with `demotrace build`."
                )
            seen.add(episode_id)
            yield self.episodes[episode_id], steps


def _read_info(root: Path) -> dict[str, Any]:
    path = root / "meta" / "info.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(
            f"{root} is not a demotrace dataset: it has no meta/info.json. Give the folder "
            "`demotrace build` wrote."
        ) from None
    except (OSError, ValueError) as exc:
        raise _damaged(root, exc) from exc
    if not isinstance(info, dict) or info.get("format") != schema.FORMAT_NAME:
        found = info.get("format") if isinstance(info, dict) else None
        raise DatasetError(
            f"{root} is not a demotrace dataset: meta/info.json names the format {found!r}, "
            f"not {schema.FORMAT_NAME!r}. Give the folder `demotrace build` wrote."
        )
    version = info.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise _damaged(root, f"meta/info.json has no integer version ({version!r})")
    if version > schema.FORMAT_VERSION:
        raise DatasetError(
            f"The dataset {root} has format version {version}, newer than this demotrace reads "
            f"(up to {schema.FORMAT_VERSION}). Upgrade demotrace to read it."
        )
    return info


def _damaged(root: Path, exc: object) -> DatasetError:
    return DatasetError(
        f"The dataset {root} cannot be read ({exc}). It is damaged or incomplete; build it "
        "again with `demotrace build`."
    )


def _parse_step(row: dict[str, Any], path: Path) -> Step:
    try:
        row["action"] = json.loads(row["action"])
    except (TypeError, ValueError) as exc:
        where = f"episode {row.get('episode_id')} step {row.get('step_index')} in {path}"
        raise DatasetError(
            f"The action of {where} is not valid JSON ({exc}). The dataset is damaged; build it "
            "again with `demotrace build`."
        ) from exc
    return row


# -- coordinates -----------------------------------------------------------------------------
def size_of(step: Step) -> tuple[int, int]:
    """The observation's pixel size (width, height)."""
    return step["screen_w"], step["screen_h"]


def to_px(value: float, size: int) -> int:
    """A 0-1 coordinate as a pixel, as ``docs/dataset.md`` defines: ``round(x * screen_w)``."""
    return round(value * size)


def from_px(pixel: float, size: int) -> float:
    """A pixel as a canonical 0-1 coordinate (6 decimals)."""
    return round(pixel / size, 6)


def point_px(x: float, y: float, size: tuple[int, int]) -> tuple[int, int]:
    return to_px(x, size[0]), to_px(y, size[1])


def point_from_px(px: float, py: float, size: tuple[int, int]) -> tuple[float, float]:
    return from_px(px, size[0]), from_px(py, size[1])


def snap(value: float, size: int) -> float:
    """A coordinate from a coarser space (0-1 with few decimals, a 0-1000 grid) moved to the
    nearest observation pixel, so it is a valid canonical coordinate again."""
    return from_px(round(value * size), size)


# -- images ----------------------------------------------------------------------------------
class Images:
    """Writes each observation once per ``frame_id`` as ``<folder>/<frame_id>.png``, optionally
    scaled down to fit inside ``fit`` (aspect kept, never scaled up)."""

    def __init__(self, folder: Path, fit: tuple[int, int] | None = None) -> None:
        self.folder = folder
        self.fit = fit
        self.written: set[str] = set()

    def write(self, step: Step) -> str | None:
        """The image's file name (written now if new), or None when the step has no frame."""
        frame_id = step.get("frame_id")
        observation = step.get("observation") or {}
        if frame_id is None or observation.get("bytes") is None:
            return None
        if not _HEX.fullmatch(frame_id):
            raise DatasetError(
                f"Episode {step['episode_id']} step {step['step_index']} has the frame id "
                f"{frame_id!r}, which is not a hex hash. The dataset is damaged; build it again."
            )
        name = f"{frame_id}.png"
        if frame_id not in self.written:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / name).write_bytes(self._encode(observation["bytes"]))
            self.written.add(frame_id)
        return name

    def _encode(self, data: bytes) -> bytes:
        """PNG bytes of the observation (datasets store lossless WebP), scaled to ``fit``."""
        is_png = data.startswith(b"\x89PNG\r\n\x1a\n")
        if self.fit is None and is_png:
            return data
        try:
            image = Image.open(io.BytesIO(data))
            size = fit_within(image.size, self.fit) if self.fit is not None else image.size
            if size == image.size and is_png:
                return data
            if size != image.size:
                image = image.resize(size, Image.Resampling.LANCZOS)
        except (OSError, ValueError) as exc:  # not an image, or a truncated one
            raise DatasetError(
                f"An observation cannot be decoded ({exc}). The dataset is damaged; build it "
                "again with `demotrace build`."
            ) from exc
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()


def fit_within(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """``size`` scaled down to fit inside ``box``, aspect kept; unchanged if it already fits."""
    factor = min(box[0] / size[0], box[1] / size[1], 1.0)
    return round(size[0] * factor), round(size[1] * factor)


# -- writing ---------------------------------------------------------------------------------
def prepare_out(out: Path, dataset: Path) -> None:
    """Create ``out`` (it must be new or empty, and outside the dataset)."""
    if out.resolve().is_relative_to(dataset.resolve()):
        raise DatasetError(
            f"The output folder {out} is inside the dataset {dataset}. Choose a folder outside it."
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DatasetError(
            f"The output {out} already exists and is not an empty folder. Choose a new folder, "
            "or remove this one first; nothing was written."
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise unwritable(out, exc) from exc


def unwritable(out: Path, exc: OSError) -> DatasetError:
    return DatasetError(
        f"Cannot write the export to {out} ({exc.strerror or exc}). Choose a folder you can "
        "write to, with free space."
    )


def json_line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


StepRecord = Callable[[Step, list[Any], str | None], dict[str, Any]]
EpisodeRecord = Callable[[Episode, list[dict[str, Any]]], dict[str, Any]]


def step_fields(step: Step, image: str | None) -> dict[str, Any]:
    """What every per-step record of the JSONL exports starts with: its index and image path."""
    return {"step_index": step["step_index"], "image": image and f"images/{image}"}


def step_record(key: str) -> StepRecord:
    """A per-step record: :func:`step_fields` plus the dialect's items under ``key``."""

    def record(step: Step, items: list[Any], image: str | None) -> dict[str, Any]:
        return {**step_fields(step, image), key: items}

    return record


def export_jsonl(
    dataset: Dataset,
    out: Path,
    fmt: str,
    converter: Callable[[Step], list[Any]],
    step_record: StepRecord,
    episode_record: EpisodeRecord,
    *,
    fit: tuple[int, int] | None = None,
    progress: Progress | None = None,
) -> Summary:
    """The usual export: ``OUT/<fmt>.jsonl`` with one line per episode that kept a step, and
    the observations of the written steps under ``OUT/images`` (scaled to ``fit``)."""
    summary = Summary(fmt, out)
    images = Images(out / "images", fit=fit)
    path = summary.out / f"{summary.format}.jsonl"
    try:
        with path.open("w", encoding="utf-8") as fh:
            for episode, steps in dataset.by_episode(progress):
                records = []
                for step in steps:
                    try:
                        items = converter(step)
                    except Skip as skip:
                        summary.skipped[skip.reason] += 1
                        continue
                    records.append(step_record(step, items, images.write(step)))
                if records:
                    fh.write(json_line(episode_record(episode, records)))
                    summary.episodes += 1
                    summary.steps += len(records)
    except OSError as exc:
        raise unwritable(summary.out, exc) from exc
    summary.files += 1 + len(images.written)
    return summary


# -- key names -------------------------------------------------------------------------------
# Canonical actions name keys as pyautogui does (``ctrl``, ``enter``, ``pagedown``, ``f5``, ``a``).
# These tables give the names other dialects use; a name not listed is spelled the same (xdotool)
# or upper-cased (OpenAI).

#: pyautogui key name -> xdotool keysym (Anthropic's ``key`` and ``text``).
XDOTOOL_KEYS: dict[str, str] = {
    "win": "super",
    "enter": "Return",
    "esc": "Escape",
    "tab": "Tab",
    "backspace": "BackSpace",
    "delete": "Delete",
    "insert": "Insert",
    "home": "Home",
    "end": "End",
    "pageup": "Page_Up",
    "pagedown": "Page_Down",
    "up": "Up",
    "down": "Down",
    "left": "Left",
    "right": "Right",
    "capslock": "Caps_Lock",
    "numlock": "Num_Lock",
    "scrolllock": "Scroll_Lock",
    "printscreen": "Print",
    "pause": "Pause",
    "apps": "Menu",
    "ctrlleft": "Control_L",
    "ctrlright": "Control_R",
    "shiftleft": "Shift_L",
    "shiftright": "Shift_R",
    "altleft": "Alt_L",
    "altright": "Alt_R",
    "winleft": "Super_L",
    "winright": "Super_R",
    "space": "space",
    "+": "plus",
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
    **{f"f{n}": f"F{n}" for n in range(1, 25)},
}
_FROM_XDOTOOL = {xdo: name for name, xdo in XDOTOOL_KEYS.items()}

#: pyautogui key name -> the OpenAI computer-use name (others are upper-cased: ``CTRL``, ``F5``).
OPENAI_KEYS: dict[str, str] = {
    "win": "META",
    "up": "ARROWUP",
    "down": "ARROWDOWN",
    "left": "ARROWLEFT",
    "right": "ARROWRIGHT",
}
_FROM_OPENAI = {name: key for key, name in OPENAI_KEYS.items()}


def xdotool_chord(keys: Sequence[str]) -> str:
    """``['ctrl', 'enter']`` -> ``ctrl+Return``."""
    return "+".join(XDOTOOL_KEYS.get(k, k) for k in keys)


def keys_of_xdotool(chord: str) -> list[str]:
    """``ctrl+Return`` -> ``['ctrl', 'enter']``."""
    return [_FROM_XDOTOOL.get(k, k) for k in chord.split("+")]


def openai_keys(keys: Sequence[str]) -> list[str]:
    """``['ctrl', 'down']`` -> ``['CTRL', 'ARROWDOWN']``."""
    return [OPENAI_KEYS.get(k, k.upper()) for k in keys]


def keys_of_openai(names: Sequence[str]) -> list[str]:
    """``['CTRL', 'ARROWDOWN']`` -> ``['ctrl', 'down']``."""
    return [_FROM_OPENAI.get(n, n.lower()) for n in names]


# -- python-call strings (pyautogui code, UI-TARS actions) ------------------------------------
def quote(text: str) -> str:
    """``text`` as a single-quoted Python literal (``\\'``, ``\\n`` and ``\\\\`` escaped)."""
    quoted = repr(text)
    if quoted.startswith('"'):  # repr chose double quotes: the text has ' and no "
        quoted = "'" + quoted[1:-1].replace("'", "\\'") + "'"
    return quoted


def literal(value: Any) -> str:
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    return repr(value)


def call(func: str, *args: Any, **kwargs: Any) -> str:
    """``func(arg, key=value)`` with Python literals, e.g. ``pyautogui.click(x=5, y=6)``."""
    parts = [literal(a) for a in args] + [f"{k}={literal(v)}" for k, v in kwargs.items()]
    return f"{func}({', '.join(parts)})"


def parse_call(code: str) -> tuple[str, list[Any], dict[str, Any]]:
    """The inverse of :func:`call`: the dotted name, positional and keyword literals."""
    node = ast.parse(code.strip(), mode="eval").body
    if not isinstance(node, ast.Call):
        raise ValueError(f"not a call: {code!r}")
    args = [ast.literal_eval(a) for a in node.args]
    kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg is not None}
    return ast.unparse(node.func), args, kwargs


# -- reading dialects back -------------------------------------------------------------------
def runs(items: Sequence[Any]) -> int:
    """How many times the first item repeats (all items must be equal); a key pressed ``count``
    times or a click repeated is written as that many equal items."""
    if not items or any(item != items[0] for item in items):
        raise ValueError(f"expected repeats of one item: {items!r}")
    return len(items)


def key_action(keys: list[str], count: int) -> Action:
    action: Action = {"type": "key", "keys": keys}
    if count > 1:
        action["count"] = count
    return action


def click_action(
    x: float, y: float, button: str, count: int = 1, modifiers: Sequence[str] = ()
) -> Action:
    return {
        "type": "click",
        "x": x,
        "y": y,
        "button": button,
        "count": count,
        "modifiers": list(modifiers),
    }


def scroll_action(x: float, y: float, dx: int, dy: int, modifiers: Sequence[str] = ()) -> Action:
    return {"type": "scroll", "x": x, "y": y, "dx": dx, "dy": dy, "modifiers": list(modifiers)}


def drag_action(
    path: list[list[float]], button: str = "left", modifiers: Sequence[str] = ()
) -> Action:
    return {"type": "drag", "path": path, "button": button, "modifiers": list(modifiers)}


# -- shared answers to what dialects lack ----------------------------------------------------
#: Mouse buttons 8 and 9 act as Back and Forward; dialects without them press these keys.
HISTORY_KEYS: dict[str, list[str]] = {"back": ["alt", "left"], "forward": ["alt", "right"]}


def launcher_skip(action: Action) -> None:
    """A switch through a launcher or taskbar has nothing recorded to replay."""
    if action["type"] == "switch_app" and action["via"] == "launcher":
        raise Skip("switch_app via launcher (nothing recorded to replay)")


def as_plain(action: Action, buttons: Sequence[str] = ("left", "middle", "right")) -> Action:
    """The action a pointer-and-keys dialect replays for what it has no word for: ``switch_app``
    by keys as that key chord, by click as that click, ``select_option`` as a click on the option
    (the value is then only in the image), and a click of a button not in ``buttons`` (back,
    forward) as its key chord (alt+left, alt+right). Other actions come back as they are; a
    switch through a launcher raises :class:`Skip`."""
    launcher_skip(action)
    kind = action["type"]
    if kind == "switch_app" and action["via"] == "keys":
        return key_action(list(action["keys"]), 1)
    if kind == "switch_app":
        return as_plain(click_action(action["x"], action["y"], action["button"]), buttons)
    if kind == "select_option":
        return click_action(action["x"], action["y"], "left")
    if kind == "click" and action["button"] not in buttons:
        return key_action(HISTORY_KEYS[action["button"]], action["count"])
    return action


# -- pyautogui code (OSWorld and AgentNet) ---------------------------------------------------
def hold(modifiers: Sequence[str], calls: list[str]) -> list[str]:
    """``calls`` with the modifiers pressed before and released after (keyDown ... keyUp)."""
    down = [call("pyautogui.keyDown", m) for m in modifiers]
    up = [call("pyautogui.keyUp", m) for m in reversed(modifiers)]
    return down + calls + up


Parsed = tuple[str, list[Any], dict[str, Any]]


def unhold(calls: list[Parsed]) -> tuple[list[str], list[Parsed]]:
    """The inverse of :func:`hold`: the held modifiers and the calls between."""
    modifiers = []
    while calls and calls[0][0] == "pyautogui.keyDown":
        modifiers.append(calls[0][1][0])
        calls = calls[1:]
    inner = calls[: len(calls) - len(modifiers)]
    ups = [c[1][0] for c in calls[len(inner) :] if c[0] == "pyautogui.keyUp"]
    if ups != modifiers[::-1]:
        raise ValueError(f"keys pressed and released do not match: {modifiers} vs {ups}")
    return modifiers, inner
