"""The dataset card: ``README.md`` (a Hugging Face dataset card) and ``plots/*.png``.

:func:`write_card` is called by the builder once the steps and episodes are final. Everything it
states about capture and privacy follows ``docs/privacy.md``; everything it counts is computed
from the tables with ``pyarrow.compute`` (no loop over rows), so a card for 100,000 steps is
aggregated in a few milliseconds and most of the time goes to drawing the four plots.

The output is deterministic: the same tables and ``info`` give the same bytes (the card carries
the ``created`` time from ``info``, never the current time; the plots use Matplotlib's built-in
defaults whatever the local ``matplotlibrc`` says, a fixed size and dpi, and no ``Software``
entry in the PNG).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from demotrace.dataset.schema import (
    ACTION_TYPES,
    FORMAT_NAME,
    FORMAT_VERSION,
    ROW_GROUP,
    SKILLS,
    STEPS_PER_FILE,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["PLOTS", "write_card"]

#: The plots the card embeds, in order: file name under ``plots/`` and its caption.
PLOTS: tuple[tuple[str, str], ...] = (
    ("action_types.png", "Steps per action type"),
    ("apps.png", "Steps per app"),
    ("skills.png", "Steps per skill tag"),
    ("episode_lengths.png", "Episode lengths"),
)

#: Apps shown by name in the card's table and plot; the rest are summed on one line.
TOP_APPS = 20
PLOT_APPS = 15
PERCENTILES: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.9)
PLOT_SIZE = (8.0, 4.5)  # inches
PLOT_DPI = 100
NONE_LABEL = "(none)"

_STEP_DESCRIPTIONS: tuple[tuple[str, str, str], ...] = (
    ("episode_id", "string", "`DEVICE-SESSION-INDEX`, e.g. `local-3-0002`"),
    ("step_index", "int32", "0, 1, ... within the episode"),
    ("action_type", "string", "the action's `type`"),
    ("action", "string", "the canonical action as compact JSON"),
    ("skills", "list of string", ", ".join(f"`{s}`" for s in SKILLS)),
    ("app", "string", "the active app (window class)"),
    ("title", "string", "the active window's title (redacted)"),
    ("url", "string", "the page URL (null outside a browser)"),
    ("screen_w", "int32", "width of the observation in pixels"),
    ("screen_h", "int32", "height of the observation in pixels"),
    ("scale", "float32", "screen pixels per observation pixel (1.0: full size)"),
    ("pointer_x", "float64", "pointer at the action's start, 0-1 of the observation"),
    ("pointer_y", "float64", "pointer at the action's start, 0-1 of the observation"),
    (
        "pointer_path",
        "list of [x, y, t]",
        "the pointer's path since the previous action (at most 64 points), `t` in seconds "
        "relative to the action's start (negative)",
    ),
    ("t_start", "timestamp[ns, UTC]", "the action's first raw event"),
    ("t_end", "timestamp[ns, UTC]", "the action's last raw event"),
    ("device", "string", "where it was recorded (`local` for a local store)"),
    ("session", "int64", "the recording session"),
    ("seq_start", "int64", "first raw event the action was reduced from"),
    ("seq_end", "int64", "last raw event the action was reduced from"),
    ("frame_id", "string", "content hash of the observation (hex); null if no frame"),
    ("frame_age_ms", "float64", "how long before the action's start the observation was grabbed"),
    ("observation", "Image", "the screenshot just before the action (lossless WebP bytes)"),
)

_ACTION_EXAMPLES = """\
{"type": "click", "x": 0.4211, "y": 0.631, "button": "left", "count": 1, "modifiers": ["ctrl"]}
{"type": "drag", "path": [[0.1, 0.2], [0.2, 0.3], [0.3, 0.4]], "button": "left", "modifiers": []}
{"type": "scroll", "x": 0.5, "y": 0.5, "dx": 0, "dy": -3, "modifiers": []}
{"type": "type", "text": "quarterly report"}
{"type": "key", "keys": ["ctrl", "c"]}
{"type": "select_option", "x": 0.42, "y": 0.7, "value": "Germany"}
{"type": "switch_app", "app": "xterm", "via": "keys", "keys": ["alt", "tab"]}
{"type": "wait", "seconds": 4.2}
{"type": "move", "x": 0.3, "y": 0.2}"""

_BOUNDARY_REASONS: tuple[tuple[str, str], ...] = (
    ("session", "the recording session started or ended"),
    ("marker", "the worker marked a task start or end"),
    ("idle", "the worker was idle"),
    ("gap", "a stretch the recorder did not capture (out of scope, paused, outside hours, secret)"),
)


# --------------------------------------------------------------------------------------------
# Aggregation


@dataclass(frozen=True)
class _Stats:
    """Everything the card and the plots show, computed once from the tables."""

    n_steps: int
    n_episodes: int
    seconds: float
    action_types: list[tuple[str, int, int]]  # type, steps, episodes using it
    skills: list[tuple[str, int, int]]  # skill, steps, episodes
    untagged_steps: int
    apps: list[tuple[str, int, int]]  # app, steps, episodes; most steps first
    steps_per_episode: list[float]  # n_steps of each episode
    durations: list[float]  # duration_s of each episode
    length_rows: list[tuple[str, list[float | None]]]  # label, min, percentiles..., max, mean
    sizes: list[tuple[int | None, int | None, float | None, int]]  # w, h, scale, steps
    no_frame: int
    frame_age: tuple[float | None, float | None]  # median, p90 (ms)
    masked_typing: int
    typing: int
    with_url: int
    with_instruction: int
    boundaries: list[tuple[str, int, int]]  # reason, episodes starting, ending
    t_first: str | None
    t_last: str | None


def _column(table: pa.Table, name: str, type_: pa.DataType) -> pa.ChunkedArray:
    """A column, or an all-null one when the table lacks it."""
    if name in table.column_names:
        return table.column(name)
    return pa.chunked_array([pa.nulls(table.num_rows, type_)], type_)


def _counts(values: pa.ChunkedArray | pa.Array) -> dict[str, int]:
    """``value_counts`` as a dict; null becomes :data:`NONE_LABEL`."""
    if len(values) == 0:
        return {}
    vc = pc.value_counts(values)
    keys = vc.field("values").to_pylist()
    counts = vc.field("counts").to_pylist()
    out: dict[str, int] = {}
    for k, c in zip(keys, counts, strict=True):
        label = NONE_LABEL if k is None or k == "" else str(k)
        out[label] = out.get(label, 0) + int(c)
    return out


def _distinct_per_row(table: pa.Table, list_col: str) -> dict[str, int]:
    """How many rows hold each value of a list column (a value twice in a row counts once)."""
    if table.num_rows == 0 or list_col not in table.column_names:
        return {}
    col = table.column(list_col).combine_chunks()
    flat = pc.list_flatten(col)
    if len(flat) == 0:
        return {}
    parents = pc.list_parent_indices(col)
    pairs = pa.table({"row": parents, "value": flat}).group_by(["row", "value"]).aggregate([])
    return _counts(pairs.column("value"))


def _ordered(
    known: Sequence[str], steps: dict[str, int], episodes: dict[str, int]
) -> list[tuple[str, int, int]]:
    """Known names in their order (zeros kept), then any others by count and name."""
    rows = [(k, steps.get(k, 0), episodes.get(k, 0)) for k in known]
    others = sorted(set(steps) - set(known), key=lambda k: (-steps[k], k))
    rows += [(k, steps[k], episodes.get(k, 0)) for k in others]
    return rows


def _quantiles(values: pa.ChunkedArray) -> list[float | None]:
    """min, :data:`PERCENTILES`, max and mean of the non-null values (None when there are none)."""
    values = pc.drop_null(values)
    if len(values) == 0:
        return [None] * (len(PERCENTILES) + 3)
    values = pc.cast(values, pa.float64())
    qs = pc.quantile(values, q=list(PERCENTILES)).to_pylist()
    mm = pc.min_max(values)
    return [mm["min"].as_py(), *qs, mm["max"].as_py(), pc.mean(values).as_py()]


def _iso(value: pa.Scalar) -> str | None:
    v = value.as_py()
    if v is None:
        return None
    return v.strftime("%Y-%m-%d %H:%M UTC")


def _stats(steps: pa.Table, episodes: pa.Table) -> _Stats:
    n_steps, n_episodes = steps.num_rows, episodes.num_rows
    ts = pa.timestamp("ns", tz="UTC")

    action_type = _column(steps, "action_type", pa.string())
    action_types = _ordered(
        ACTION_TYPES, _counts(action_type), _distinct_per_row(episodes, "action_types")
    )

    skills_col = _column(steps, "skills", pa.list_(pa.string()))
    skill_rows = _ordered(
        SKILLS, _distinct_per_row(steps, "skills"), _distinct_per_row(episodes, "skills")
    )
    untagged = 0
    if n_steps:
        lengths = pc.fill_null(pc.list_value_length(skills_col), 0)
        untagged = int(pc.sum(pc.equal(lengths, 0)).as_py() or 0)

    app_steps = _counts(_column(steps, "app", pa.string()))
    app_episodes = _distinct_per_row(episodes, "apps")
    apps = sorted(
        ((a, n, app_episodes.get(a, 0)) for a, n in app_steps.items()),
        key=lambda r: (-r[1], r[0]),
    )

    n_steps_col = _column(episodes, "n_steps", pa.int32())
    duration_col = _column(episodes, "duration_s", pa.float64())
    seconds = float(pc.sum(duration_col).as_py() or 0.0) if n_episodes else 0.0
    length_rows: list[tuple[str, list[float | None]]] = [
        ("steps per episode", _quantiles(n_steps_col)),
        ("duration (s)", _quantiles(duration_col)),
    ]

    sizes: list[tuple[int | None, int | None, float | None, int]] = []
    if n_steps:
        size_table = pa.table(
            {
                "w": _column(steps, "screen_w", pa.int32()),
                "h": _column(steps, "screen_h", pa.int32()),
                "scale": pc.round(pc.cast(_column(steps, "scale", pa.float32()), pa.float64()), 3),
            }
        )
        grouped = size_table.group_by(["w", "h", "scale"]).aggregate([([], "count_all")])
        sizes = sorted(
            zip(
                grouped.column("w").to_pylist(),
                grouped.column("h").to_pylist(),
                grouped.column("scale").to_pylist(),
                grouped.column("count_all").to_pylist(),
                strict=True,
            ),
            key=lambda r: (-r[3], -(r[0] or 0), -(r[1] or 0), r[2] or 0.0),
        )

    frame_id = _column(steps, "frame_id", pa.string())
    no_frame = int(frame_id.null_count)
    age = pc.drop_null(_column(steps, "frame_age_ms", pa.float64()))
    frame_age: tuple[float | None, float | None] = (None, None)
    if len(age):
        q = pc.quantile(age, q=[0.5, 0.9]).to_pylist()
        frame_age = (q[0], q[1])

    typing = 0
    masked = 0
    if n_steps:
        is_type = pc.fill_null(pc.equal(action_type, "type"), False)
        typing = int(pc.sum(is_type).as_py() or 0)
        action = pc.fill_null(_column(steps, "action", pa.string()), "")
        is_masked = pc.and_(is_type, pc.match_substring(action, '"masked":true'))
        masked = int(pc.sum(is_masked).as_py() or 0)

    url = _column(steps, "url", pa.string())
    with_url = n_steps - int(url.null_count) if n_steps else 0

    instruction = _column(episodes, "instruction", pa.string())
    with_instruction = 0
    if n_episodes:
        has = pc.and_(pc.is_valid(instruction), pc.not_equal(pc.fill_null(instruction, ""), ""))
        with_instruction = int(pc.sum(has).as_py() or 0)

    starts = _counts(_column(episodes, "start_reason", pa.string()))
    ends = _counts(_column(episodes, "end_reason", pa.string()))
    known_reasons = [r for r, _ in _BOUNDARY_REASONS]
    boundaries = [(r, starts.get(r, 0), ends.get(r, 0)) for r in known_reasons]
    boundaries += [
        (r, starts.get(r, 0), ends.get(r, 0))
        for r in sorted((set(starts) | set(ends)) - set(known_reasons))
    ]

    t_first = t_last = None
    if n_episodes:
        t_first = _iso(pc.min(pc.cast(_column(episodes, "t_start", ts), ts)))
        t_last = _iso(pc.max(pc.cast(_column(episodes, "t_end", ts), ts)))
    elif n_steps:
        t_first = _iso(pc.min(pc.cast(_column(steps, "t_start", ts), ts)))
        t_last = _iso(pc.max(pc.cast(_column(steps, "t_end", ts), ts)))

    return _Stats(
        n_steps=n_steps,
        n_episodes=n_episodes,
        seconds=seconds,
        action_types=action_types,
        skills=skill_rows,
        untagged_steps=untagged,
        apps=apps,
        steps_per_episode=[float(v) for v in pc.drop_null(n_steps_col).to_pylist()],
        durations=[float(v) for v in pc.drop_null(duration_col).to_pylist()],
        length_rows=length_rows,
        sizes=sizes,
        no_frame=no_frame,
        frame_age=frame_age,
        masked_typing=masked,
        typing=typing,
        with_url=with_url,
        with_instruction=with_instruction,
        boundaries=boundaries,
        t_first=t_first,
        t_last=t_last,
    )


# --------------------------------------------------------------------------------------------
# Formatting

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#$~])")


def _md(text: object) -> str:
    """Text safe inside a Markdown table cell: one line, Markdown and HTML characters escaped."""
    s = " ".join(str(text).split())
    return _MD_SPECIAL.sub(r"\\\1", s) if s else NONE_LABEL


def _code(text: object) -> str:
    """Text as a Markdown code span (backslashes are literal there, so nothing is escaped)."""
    s = " ".join(str(text).split()).replace("`", "'")
    return f"`{s}`" if s else NONE_LABEL


def _yaml_str(text: str) -> str:
    """A double-quoted YAML scalar (JSON's string syntax is a subset of YAML's)."""
    return json.dumps(text, ensure_ascii=False)


def _int(n: int) -> str:
    return f"{n:,}"


def _pct(n: int, total: int) -> str:
    return f"{100.0 * n / total:.1f}%" if total else "-"


def _num(v: float | None, digits: int = 1) -> str:
    if v is None or math.isnan(v):
        return "-"
    if float(v).is_integer():
        return f"{int(v):,}"
    return f"{v:,.{digits}f}"


def _hours(seconds: float) -> str:
    minutes = round(seconds / 60.0)
    return f"{seconds / 3600.0:.2f} h ({minutes // 60} h {minutes % 60:02d} min)"


def _size_category(n: int) -> str:
    for limit, label in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
        (100_000_000, "10M<n<100M"),
        (1_000_000_000, "100M<n<1B"),
    ):
        if n < limit:
            return label
    return "1B<n<10B"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str) -> list[str]:
    """A Markdown table; ``align`` has one letter per column, ``l`` or ``r``."""
    marks = {"l": "---", "r": "---:"}
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks[a] for a in align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _front_matter(stats: _Stats) -> list[str]:
    return [
        "---",
        "pretty_name: " + _yaml_str("demotrace computer-use demonstrations"),
        "license: other",
        "task_categories:",
        "- image-text-to-text",
        "tags:",
        "- computer-use",
        "- gui-agent",
        "- desktop",
        "- screenshots",
        "- human-demonstrations",
        "- x11",
        "- demotrace",
        "size_categories:",
        "- " + _size_category(stats.n_steps),
        "configs:",
        "- config_name: default",
        "  data_files:",
        "  - split: train",
        "    path: data/steps-*.parquet",
        "- config_name: episodes",
        "  data_files:",
        "  - split: train",
        "    path: meta/episodes.parquet",
        "---",
    ]


def _counts_of(info: dict[str, Any]) -> dict[str, int | None]:
    raw = info.get("counts") or {}
    out: dict[str, int | None] = {}
    for key in ("sessions", "devices", "events", "frames"):
        v = raw.get(key)
        out[key] = int(v) if isinstance(v, int | float) else None
    return out


def _opt_int(v: int | None) -> str:
    return "-" if v is None else _int(v)


def _px(v: int | None) -> str:
    return "-" if v is None else str(v)


def _intro(stats: _Stats, info: dict[str, Any]) -> list[str]:
    c = _counts_of(info)
    span = ""
    if stats.t_first and stats.t_last:
        span = f", recorded between {stats.t_first} and {stats.t_last}"
    if stats.n_steps == 0:
        summary = (
            "**This build holds no steps.** The layout and the loading code below apply as they "
            "are; the statistics are empty"
            + (" and the skipped sessions below say why." if info.get("skipped") else ".")
        )
    else:
        summary = (
            f"It holds **{_int(stats.n_steps)} steps** in **{_int(stats.n_episodes)} episodes** "
            f"(**{_hours(stats.seconds)}** of work) from {_opt_int(c['sessions'])} sessions on "
            f"{_opt_int(c['devices'])} devices{span}."
        )
    return [
        "# demotrace computer-use demonstrations",
        "",
        "Recordings of real people doing their own work at a Linux (X11) desktop, turned into "
        "training and evaluation data for agents that operate computers.",
        "",
        "- A **step** is one action (a click, drag, scroll, typed text, key or shortcut, a choice "
        "in a dropdown, an app switch, a wait, a hover) together with the **screenshot taken "
        "just before it**: the observation an agent would have had when it decided to act. "
        "Steps also carry the active app, its window title, the page URL in a browser, the "
        "pointer's path leading up to the action, and the skill tags of the action.",
        "- An **episode** is one task: a run of consecutive steps of one session, cut where the "
        "worker marked a new task, where they were idle, or where recording stopped. When the "
        "worker described the task in their own words (`demotrace task start`), the episode's "
        "`instruction` holds that text.",
        "",
        summary,
        "",
    ]


def _capture(info: dict[str, Any]) -> list[str]:
    lines = [
        "## How it was captured",
        "",
        "The data was recorded with demotrace on X11: every pointer "
        "move, button, wheel notch and key comes from the X RECORD extension on one monotonic "
        "clock; the active window, its title and popups (menus, dropdowns) come from the window "
        "system; screenshots are grabbed when the screen changes, and each action is paired "
        "with the last screenshot grabbed *before* it (`frame_age_ms` says how long before). "
        "The raw events were then reduced to the actions of this dataset"
        + (
            f" (reducer version {_md(info['reducer_version'])})."
            if info.get("reducer_version")
            else "."
        )
        + "",
        "",
        "Privacy is enforced while recording, before anything is written to disk:",
        "",
        "- **Consent.** The recorder refuses to start unless the worker has accepted the exact "
        "version of the policy in force (`demotrace consent --show` prints its plain-language "
        "notice: what is recorded, where, what never is, retention, who sees it); any change "
        "of a policy value needs new consent. Workers can withdraw consent, which "
        "stops the recorder and can delete their local recordings.",
        "- **Scope.** Only windows that the policy's allowlist names (apps, and websites inside "
        "browsers) are recorded. While an out-of-scope window is active, keys, pointer moves and "
        "titles are dropped; each run of dropped events leaves only a gap with its reason "
        "(`out_of_scope`, `paused`, `hours`, `secret`) and duration, nothing about what "
        "happened inside it. In every screenshot, everything outside the in-scope windows "
        "(other apps, the desktop, panels, other monitors), and every in-scope app whose "
        "screenshots the policy turns off, is black: it was blacked out before the pixels were "
        "compared, hashed or encoded.",
        "- **Typing.** Typed text is judged as whole sequences, with backspaces applied. Per "
        "app, the policy keeps it as text passed through a redactor (card numbers, IBANs, "
        "e-mail addresses, phone numbers, national IDs, API keys, JWTs and secret-looking "
        "tokens become `<CARD>`, `<IBAN>`, `<EMAIL>`, `<PHONE>`, `<NATIONAL_ID>`, `<KEY>`, "
        '`<JWT>`, `<SECRET>`), keeps only character classes (`"masked": true` in the action: '
        "every letter `a`, every digit `9`), or keeps no text at all (shortcuts and navigation "
        "keys stay). Window titles pass through the same redactor.",
        "- **Secrets.** Typing into a password field (seen through accessibility), a secure "
        "prompt or password manager, or a terminal password prompt (after `sudo`, `ssh`, "
        "`passwd`, `gpg` and the like) is never stored: it leaves only a `secret` gap.",
        "- **In the worker's control.** A visible indicator shows while recording; a hotkey or "
        "command pauses it; `demotrace forget` deletes recent or chosen recordings; recordings "
        "past the policy's retention are deleted automatically.",
        "",
        "**Limits.** Redaction recognises the shapes listed above and nothing else: in apps "
        "where text is kept, anything else that was typed (names, addresses, a weak password in "
        "a field that exposes no accessibility) is kept as typed, and in-scope windows are "
        "shown as they were. Terminal password prompts are recognised from the command typed "
        "before them, not from the screen. A window mapped above an in-scope window is kept "
        "out of the next screenshot by the recorder waiting for the new layout, not by a "
        "guarantee from the X server. Review the data before sharing it further.",
        "",
    ]
    sources = info.get("sources") or []
    if sources:
        lines += ["Built from: " + ", ".join(_code(s) for s in sources) + ".", ""]
    return lines


def _layout(stats: _Stats, info: dict[str, Any]) -> list[str]:
    fmt = _md(info.get("format", FORMAT_NAME))
    version = _md(info.get("version", FORMAT_VERSION))
    n_files = math.ceil(stats.n_steps / STEPS_PER_FILE)
    files = ""
    if n_files == 1:
        files = " (here 1 file, `steps-00000.parquet`)"
    elif n_files > 1:
        files = (
            f" (here {n_files} files, `steps-00000.parquet` to `steps-{n_files - 1:05d}.parquet`)"
        )
    lines = [
        "## Layout",
        "",
        f"Format `{fmt}`, version {version}.",
        "",
        "```",
        "meta/info.json            format, version, reducer version, counts, screens, sources",
        "meta/episodes.parquet     one row per episode",
        "data/steps-NNNNN.parquet  one row per step",
        "README.md                 this card",
        "plots/*.png               the plots below",
        "```",
        "",
        f"Steps files hold {STEPS_PER_FILE:,} steps each in row groups of {ROW_GROUP}{files}. "
        "Steps are ordered by device, session and time; `episode_id` + `step_index` is unique. "
        "Every Parquet file carries the `huggingface` schema metadata, so `datasets` decodes "
        "`observation` as a PIL image.",
        "",
        "### Step columns",
        "",
    ]
    lines += _table(
        ("column", "type", "meaning"), ((f"`{n}`", t, d) for n, t, d in _STEP_DESCRIPTIONS), "lll"
    )
    lines += [
        "",
        "Action coordinates are fractions of the observation (`round(x * screen_w)` gives the "
        "pixel back), keys use pyautogui's names, and optional keys (`target`, `count` of "
        "`key`, `masked`) appear only where they apply. Examples of `action`:",
        "",
        "```json",
        _ACTION_EXAMPLES,
        "```",
        "",
        "### Episode columns",
        "",
        "`episode_id`, `device`, `session`, `episode_index`, `instruction` (the worker's own "
        "words, else null), `apps`, `skills`, `action_types` (distinct, in first-use order), "
        "`t_start`, `t_end`, `duration_s`, `n_steps`, `n_events` (raw events in the span), "
        "`start_reason` / `end_reason`, `screen_w`, `screen_h`.",
        "",
    ]
    return lines


def _loading() -> list[str]:
    return [
        "## How to load it",
        "",
        "From this folder. On the Hugging Face Hub, the `configs` in this card's header make "
        '`load_dataset(repo_id)` load the steps and `load_dataset(repo_id, "episodes")` the '
        "episodes.",
        "",
        "With 🤗 `datasets` (the `observation` column is decoded as a PIL image):",
        "",
        "```python",
        "import json",
        "from datasets import load_dataset",
        "",
        'steps = load_dataset("parquet", data_files="data/steps-*.parquet", split="train")',
        'episodes = load_dataset("parquet", data_files="meta/episodes.parquet", split="train")',
        "step = steps[0]",
        'action = json.loads(step["action"])',
        'image = step["observation"]  # a PIL image, None where the step has no screenshot',
        "```",
        "",
        "With `pyarrow` (read only the columns you need; the screenshots are the bulk):",
        "",
        "```python",
        "import io",
        "import pyarrow.dataset as ds",
        "import pyarrow.parquet as pq",
        "from PIL import Image",
        "",
        'steps = ds.dataset("data", format="parquet")',
        'actions = steps.to_table(columns=["episode_id", "step_index", "action_type", "action"])',
        'episodes = pq.read_table("meta/episodes.parquet")',
        'obs = steps.head(1, columns=["observation"]).column("observation")[0].as_py()',
        'image = Image.open(io.BytesIO(obs["bytes"])) if obs else None  # None: no screenshot',
        "```",
        "",
        "With `polars`:",
        "",
        "```python",
        "import polars as pl",
        "",
        'steps = pl.scan_parquet("data/steps-*.parquet").drop("observation")',
        'per_app = steps.group_by("app").len().sort("len", descending=True).collect()',
        "```",
        "",
        "With `duckdb`:",
        "",
        "```python",
        "import duckdb",
        "",
        'duckdb.sql("""',
        "    SELECT e.episode_id, e.instruction, count(*) AS steps",
        "    FROM 'data/steps-*.parquet' s JOIN 'meta/episodes.parquet' e USING (episode_id)",
        "    GROUP BY ALL ORDER BY steps DESC",
        '""").show()',
        "```",
        "",
    ]


def _statistics(stats: _Stats, info: dict[str, Any]) -> list[str]:
    c = _counts_of(info)
    n, ne = stats.n_steps, stats.n_episodes
    lines = ["## Statistics", ""]
    lines += _table(
        ("", "count"),
        [
            ("steps", _int(n)),
            ("episodes", _int(ne)),
            ("hours of work (sum of episode durations)", _hours(stats.seconds)),
            ("sessions", _opt_int(c["sessions"])),
            ("devices", _opt_int(c["devices"])),
            ("raw events", _opt_int(c["events"])),
            ("screenshots (distinct frames)", _opt_int(c["frames"])),
            ("episodes with an instruction", f"{_int(stats.with_instruction)} of {_int(ne)}"),
            ("steps with a page URL", f"{_int(stats.with_url)} of {_int(n)}"),
        ],
        "lr",
    )
    lines += ["", "### Action types", ""]
    lines += _table(
        ("action type", "steps", "share", "episodes using it"),
        ((_code(t), _int(s), _pct(s, n), _int(e)) for t, s, e in stats.action_types),
        "lrrr",
    )
    if stats.typing:
        lines += [
            "",
            f"{_int(stats.masked_typing)} of the {_int(stats.typing)} `type` steps are masked "
            "(character classes only).",
        ]
    lines += ["", "### Skill tags", "", "A step can carry several tags, or none."]
    lines += [""]
    lines += _table(
        ("skill", "steps", "share", "episodes"),
        [(_code(k), _int(s), _pct(s, n), _int(e)) for k, s, e in stats.skills]
        + [("no tag", _int(stats.untagged_steps), _pct(stats.untagged_steps, n), "")],
        "lrrr",
    )
    lines += ["", "### Apps", ""]
    if stats.apps:
        shown = stats.apps[:TOP_APPS]
        rows = [(_md(a), _int(s), _pct(s, n), _int(e)) for a, s, e in shown]
        rest = stats.apps[TOP_APPS:]
        if rest:
            r = sum(s for _, s, _ in rest)
            rows.append((f"{len(rest)} other apps", _int(r), _pct(r, n), ""))
        lines += _table(("app (window class)", "steps", "share", "episodes"), rows, "lrrr")
    else:
        lines += ["No steps."]
    lines += ["", "### Episode lengths", ""]
    pct_names = [f"p{round(q * 100)}" if q != 0.5 else "median" for q in PERCENTILES]
    lines += _table(
        ("", "min", *pct_names, "max", "mean"),
        ((label, *(_num(v) for v in values)) for label, values in stats.length_rows),
        "l" + "r" * (len(PERCENTILES) + 3),
    )
    lines += ["", "Where episodes start and end:", ""]
    reasons = dict(_BOUNDARY_REASONS)
    lines += _table(
        ("reason", "meaning", "episodes starting", "episodes ending"),
        ((_code(r), reasons.get(r, ""), _int(s), _int(e)) for r, s, e in stats.boundaries),
        "llrr",
    )
    lines += ["", "### Observations", ""]
    if stats.sizes:
        lines += _table(
            ("observation size (px)", "scale", "steps", "share"),
            (
                (
                    f"{_px(w)} × {_px(h)}",
                    "-" if s is None else f"{s:.2f}",
                    _int(k),
                    _pct(k, n),
                )
                for w, h, s, k in stats.sizes
            ),
            "lrrr",
        )
        lines += [""]
    screens = info.get("screens") or []
    if screens:
        listed = ", ".join(f"{_md(s[0])} × {_md(s[1])}" for s in screens if len(s) >= 2)
        lines += [
            f"Screens recorded: {listed}. `scale` is screen pixels per observation pixel.",
            "",
        ]
    med, p90 = stats.frame_age
    text = f"Steps without a screenshot (`frame_id` null): {_int(stats.no_frame)} of {_int(n)}."
    if med is not None:
        text += f" Screenshot age before the action: median {_num(med)} ms, p90 {_num(p90)} ms."
    lines += [text, ""]
    return lines


def _skipped(info: dict[str, Any]) -> list[str]:
    skipped = info.get("skipped") or []
    lines = ["## Skipped sessions", ""]
    if not skipped:
        return [*lines, "No session was skipped.", ""]
    noun = "session was" if len(skipped) == 1 else "sessions were"
    lines += [f"{len(skipped)} {noun} left out of this dataset:", ""]
    rows = []
    for item in skipped:
        if isinstance(item, dict):
            rows.append((_md(item.get("session", "")), _md(item.get("reason", ""))))
        else:
            rows.append((_md(item), ""))
    return [*lines, *_table(("session", "reason"), rows, "ll"), ""]


def _plots_section() -> list[str]:
    lines = ["## Plots", ""]
    for name, caption in PLOTS:
        lines += [f"![{caption}](plots/{name})", ""]
    return lines


def _footer(info: dict[str, Any]) -> list[str]:
    created = info.get("created")
    lines = ["## Licence", ""]
    lines += [
        "`license: other`: the terms are set by the organisation that collected these "
        "recordings under its consent policy; the notice that policy generates names who "
        "collects, why, who sees the data and whom to contact.",
        "",
    ]
    if created:
        lines += [f"Built {_md(created)}.", ""]
    return lines


def _render(stats: _Stats, info: dict[str, Any]) -> str:
    parts = [
        _front_matter(stats),
        [""],
        _intro(stats, info),
        _capture(info),
        _layout(stats, info),
        _loading(),
        _statistics(stats, info),
        _skipped(info),
        _plots_section(),
        _footer(info),
    ]
    text = "\n".join(line for part in parts for line in part)
    return text.rstrip("\n") + "\n"


# --------------------------------------------------------------------------------------------
# Plots


def _figure(nrows: int = 1, ncols: int = 1) -> tuple[Figure, list[Axes]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=PLOT_SIZE, dpi=PLOT_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, [ax for row in axes for ax in row]


def _no_data(ax: Axes, title: str) -> None:
    ax.set_title(title)
    ax.text(0.5, 0.5, "no data", ha="center", va="center", fontsize=16, color="0.4")
    ax.set_axis_off()


def _bars(ax: Axes, labels: Sequence[str], values: Sequence[int], title: str, unit: str) -> None:
    from matplotlib.ticker import MaxNLocator

    if not labels or sum(values) == 0:
        _no_data(ax, title)
        return
    ys = list(range(len(labels)))
    ax.barh(ys, values, color="#4C72B0")
    # labels are app names: no mathtext, whatever characters they hold
    ax.set_yticks(ys, [_short(lab) for lab in labels], parse_math=False)
    ax.invert_yaxis()
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(unit)
    ax.set_title(title)
    top = max(values)
    ax.set_xlim(0, top * 1.15)
    for y, v in zip(ys, values, strict=True):
        ax.text(v + top * 0.01, y, f"{v:,}", va="center", fontsize=8)


def _short(label: str, width: int = 28) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def _hist(
    ax: Axes, values: Sequence[float], title: str, xlabel: str, integer: bool = False
) -> None:
    from matplotlib.ticker import MaxNLocator

    if not values:
        _no_data(ax, title)
        return
    lo, hi = min(values), max(values)
    bins: int | list[float] = 20
    if lo == hi:
        bins = [lo - 0.5, hi + 0.5]
    ax.hist(values, bins=bins, color="#4C72B0", edgecolor="white")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("episodes")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if integer:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, format="png", dpi=PLOT_DPI, metadata={"Software": None})
    return path


def _plots(stats: _Stats, plots: Path) -> list[Path]:
    import matplotlib

    written: list[Path] = []
    # Matplotlib's own defaults, whatever the local matplotlibrc or an earlier style says;
    # rc_context restores the caller's settings afterwards.
    with matplotlib.rc_context():
        matplotlib.rcdefaults()

        fig, (ax,) = _figure()
        rows = [r for r in stats.action_types if r[1] or r[0] in ACTION_TYPES]
        _bars(ax, [r[0] for r in rows], [r[1] for r in rows], PLOTS[0][1], "steps")
        written.append(_save(fig, plots / PLOTS[0][0]))

        fig, (ax,) = _figure()
        apps = stats.apps[:PLOT_APPS]
        labels = [a for a, _, _ in apps]
        values = [s for _, s, _ in apps]
        rest = stats.apps[PLOT_APPS:]
        if rest:
            labels.append(f"{len(rest)} other apps")
            values.append(sum(s for _, s, _ in rest))
        _bars(ax, labels, values, PLOTS[1][1], "steps")
        written.append(_save(fig, plots / PLOTS[1][0]))

        fig, (ax,) = _figure()
        skills = [*stats.skills, ("no tag", stats.untagged_steps, 0)]
        _bars(ax, [k for k, _, _ in skills], [s for _, s, _ in skills], PLOTS[2][1], "steps")
        written.append(_save(fig, plots / PLOTS[2][0]))

        fig, (left, right) = _figure(1, 2)
        fig.suptitle(PLOTS[3][1])
        _hist(left, stats.steps_per_episode, "Steps per episode", "steps", integer=True)
        _hist(right, [d / 60.0 for d in stats.durations], "Duration", "minutes")
        written.append(_save(fig, plots / PLOTS[3][0]))
    return written


# --------------------------------------------------------------------------------------------


def write_card(out: Path, steps: pa.Table, episodes: pa.Table, info: dict[str, Any]) -> list[Path]:
    """Write the dataset card ``out/README.md`` and its plots ``out/plots/*.png``.

    ``steps`` has the step columns (``observation`` is not needed and may be absent),
    ``episodes`` the episode columns, ``info`` what goes into ``meta/info.json``. Returns the
    paths written: the card first, then the plots in :data:`PLOTS` order. An empty dataset gives
    a card with zero counts and plots that say "no data".
    """
    out = Path(out)
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    stats = _stats(steps, episodes)
    card = out / "README.md"
    card.write_text(_render(stats, info), encoding="utf-8")
    return [card, *_plots(stats, plots)]
