"""The dataset card: front matter, exact statistics, valid deterministic plots, empty datasets."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import matplotlib
import pyarrow as pa
import pytest
from PIL import Image

from demotrace.dataset.card import PLOT_DPI, PLOT_SIZE, PLOTS, write_card
from demotrace.dataset.schema import EPISODE_SCHEMA, STEP_SCHEMA

T0 = datetime(2025, 3, 4, 9, 0, tzinfo=UTC)
STEP_COLUMNS = pa.schema([f for f in STEP_SCHEMA if f.name != "observation"])
PNG_SIZE = (round(PLOT_SIZE[0] * PLOT_DPI), round(PLOT_SIZE[1] * PLOT_DPI))

A, B = "local-1-0000", "local-1-0001"
WB = "Workbench"
#: Each episode's observation size and scale.
SCREENS = {A: (1920, 1080, 1.0), B: (1280, 720, 1.5)}
# (episode, canonical action, skills, app, url); the wait step has no screenshot
STEPS: list[tuple[str, str, list[str], str | None, str | None]] = [
    (A, '{"type":"click"}', ["dropdown"], WB, None),
    (A, '{"type":"type","text":"aaaa","masked":true}', ["typing"], WB, None),
    (A, '{"type":"key","keys":["ctrl","s"]}', ["shortcut"], "xterm", None),
    (A, '{"type":"click"}', ["menu"], WB, None),
    (B, '{"type":"scroll"}', ["scroll"], "firefox", "https://example.org/"),
    (B, '{"type":"switch_app"}', ["app_switch"], "xterm", None),
    (B, '{"type":"drag"}', ["drag", "dropdown"], WB, None),
    (B, '{"type":"wait","seconds":4.0}', [], None, None),
]
DURATIONS = {A: 90.0, B: 1710.0}  # 1,800 s: half an hour


def _steps(rows: list[tuple[str, str, list[str], str | None, str | None]]) -> pa.Table:
    per_episode: dict[str, int] = {}
    cols: dict[str, list[Any]] = {f.name: [] for f in STEP_COLUMNS}
    for i, (ep, action, skills, app, url) in enumerate(rows):
        kind = json.loads(action)["type"]
        w, h, scale = SCREENS[ep]
        frame = None if kind == "wait" else f"{i:064x}"
        index = per_episode.get(ep, 0)
        per_episode[ep] = index + 1
        values = {
            "episode_id": ep,
            "step_index": index,
            "action_type": kind,
            "action": action,
            "skills": skills,
            "app": app,
            "title": f"{app} window" if app else None,
            "url": url,
            "screen_w": w,
            "screen_h": h,
            "scale": scale,
            "pointer_x": 0.5,
            "pointer_y": 0.25,
            "pointer_path": [[0.4, 0.2, -0.1], [0.5, 0.25, 0.0]],
            "t_start": T0 + timedelta(seconds=10 * i),
            "t_end": T0 + timedelta(seconds=10 * i + 1),
            "device": "local",
            "session": 1,
            "seq_start": 100 * i,
            "seq_end": 100 * i + 5,
            "frame_id": frame,
            "frame_age_ms": 10.0 * (i + 1) if frame else None,
        }
        for name, value in values.items():
            cols[name].append(value)
    return pa.table(cols, schema=STEP_COLUMNS)


def _episodes(steps: pa.Table) -> pa.Table:
    rows = steps.to_pylist()
    ids = list(dict.fromkeys(r["episode_id"] for r in rows))
    cols: dict[str, list[Any]] = {f.name: [] for f in EPISODE_SCHEMA}
    for index, ep in enumerate(ids):
        mine = [r for r in rows if r["episode_id"] == ep]
        first = mine[0]["t_start"]
        values = {
            "episode_id": ep,
            "device": "local",
            "session": 1,
            "episode_index": index,
            "instruction": "Fill in the order form" if index == 0 else None,
            "apps": list(dict.fromkeys(r["app"] for r in mine if r["app"])),
            "skills": list(dict.fromkeys(s for r in mine for s in r["skills"])),
            "action_types": list(dict.fromkeys(r["action_type"] for r in mine)),
            "t_start": first,
            "t_end": first + timedelta(seconds=DURATIONS[ep]),
            "duration_s": DURATIONS[ep],
            "n_steps": len(mine),
            "n_events": 6 * len(mine),
            "start_reason": "session" if index == 0 else "marker",
            "end_reason": "marker" if index == 0 else "session",
            "screen_w": mine[0]["screen_w"],
            "screen_h": mine[0]["screen_h"],
        }
        for name, value in values.items():
            cols[name].append(value)
    return pa.table(cols, schema=EPISODE_SCHEMA)


def _info(n_steps: int, n_episodes: int, skipped: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "format": "demotrace-dataset",
        "version": 1,
        "reducer_version": 2,
        "created": "2025-03-05T08:00:00+00:00",
        "counts": {
            "steps": n_steps,
            "episodes": n_episodes,
            "sessions": 1,
            "devices": 1,
            "events": 4321,
            "frames": 7,
        },
        "screens": [[1920, 1080], [1920, 1080]],
        "sources": ["local"],
        "skipped": skipped,
    }


SKIPPED = [{"session": 2, "reason": "no events after the gate | out of scope"}]


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("card")
    steps = _steps(STEPS)
    paths = write_card(out, steps, _episodes(steps), _info(8, 2, SKIPPED))
    return out, paths


def _front_matter(text: str) -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    assert text.startswith("---\n")
    head, sep, _ = text[4:].partition("\n---\n")
    assert sep
    return yaml.safe_load(head)


def _row(text: str, first_cell: str, section: str = "## Statistics") -> list[str]:
    """The cells of the first Markdown table row under ``section`` whose first cell is
    ``first_cell``."""
    for line in text[text.index(section) :].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if line.startswith("|") and cells[0] == first_cell:
            return cells[1:]
    raise AssertionError(f"no table row {first_cell!r}")


def _digest(paths: list[Path]) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def test_paths_written(card: tuple[Path, list[Path]]) -> None:
    out, paths = card
    assert paths == [out / "README.md", *(out / "plots" / name for name, _ in PLOTS)]
    assert [name for name, _ in PLOTS] == [
        "action_types.png",
        "apps.png",
        "skills.png",
        "episode_lengths.png",
    ]
    assert all(p.is_file() for p in paths)


def test_front_matter(card: tuple[Path, list[Path]]) -> None:
    out, _ = card
    meta = _front_matter((out / "README.md").read_text(encoding="utf-8"))
    assert meta["license"] == "other"
    assert meta["task_categories"]
    assert {"computer-use", "gui-agent"} <= set(meta["tags"])
    assert meta["size_categories"] == ["n<1K"]
    configs = {c["config_name"]: c["data_files"] for c in meta["configs"]}
    assert configs["default"] == [{"split": "train", "path": "data/steps-*.parquet"}]
    assert configs["episodes"] == [{"split": "train", "path": "meta/episodes.parquet"}]


def test_counts(card: tuple[Path, list[Path]]) -> None:
    out, _ = card
    text = (out / "README.md").read_text(encoding="utf-8")
    assert "**8 steps** in **2 episodes**" in text
    assert _row(text, "steps") == ["8"]
    assert _row(text, "episodes") == ["2"]
    assert _row(text, "hours of work (sum of episode durations)") == ["0.50 h (0 h 30 min)"]
    assert _row(text, "raw events") == ["4,321"]
    assert _row(text, "episodes with an instruction") == ["1 of 2"]
    assert _row(text, "steps with a page URL") == ["1 of 8"]

    # action type: steps, share, episodes using it
    assert _row(text, "`click`") == ["2", "25.0%", "1"]
    assert _row(text, "`type`") == ["1", "12.5%", "1"]
    assert _row(text, "`switch_app`") == ["1", "12.5%", "1"]
    assert _row(text, "`select_option`") == ["0", "0.0%", "0"]
    assert "1 of the 1 `type` steps are masked" in text

    # skills: a step with two tags counts for both; one step has none
    assert _row(text, "`dropdown`") == ["2", "25.0%", "2"]
    assert _row(text, "`menu`") == ["1", "12.5%", "1"]
    assert _row(text, "no tag") == ["1", "12.5%", ""]

    # apps, most steps first; the step without an app is "(none)"
    assert _row(text, "Workbench") == ["4", "50.0%", "2"]
    assert _row(text, "xterm") == ["2", "25.0%", "2"]
    assert _row(text, "firefox") == ["1", "12.5%", "1"]
    assert _row(text, "(none)") == ["1", "12.5%", "0"]
    assert text.index("| Workbench |") < text.index("| xterm |") < text.index("| firefox |")

    # episode lengths: min, p10, p25, median, p75, p90, max, mean
    assert _row(text, "steps per episode") == ["4"] * 8
    assert _row(text, "duration (s)") == [
        "90",
        "252",
        "495",
        "900",
        "1,305",
        "1,548",
        "1,710",
        "900",
    ]
    assert _row(text, "`session`")[-2:] == ["1", "1"]
    assert _row(text, "`marker`")[-2:] == ["1", "1"]

    # observations: size, scale, steps, share
    assert _row(text, "1920 × 1080") == ["1.00", "4", "50.0%"]
    assert _row(text, "1280 × 720") == ["1.50", "4", "50.0%"]
    assert "(`frame_id` null): 1 of 8." in text


def test_sections_and_skipped(card: tuple[Path, list[Path]]) -> None:
    out, _ = card
    text = (out / "README.md").read_text(encoding="utf-8")
    for heading in (
        "## How it was captured",
        "## Layout",
        "## How to load it",
        "## Statistics",
        "## Skipped sessions",
        "## Plots",
    ):
        assert heading in text
    for snippet in ("load_dataset(", "pyarrow", "pl.scan_parquet(", "duckdb.sql("):
        assert snippet in text
    assert "consent" in text and "secret" in text
    assert "1 session was left out" in text
    # the pipe inside the reason is escaped, so the row still has two cells
    assert _row(text, "2", "## Skipped sessions") == ["no events after the gate \\| out of scope"]
    for name, caption in PLOTS:
        assert f"![{caption}](plots/{name})" in text
    assert "Built 2025-03-05T08:00:00+00:00." in text


def test_plots_are_pngs(card: tuple[Path, list[Path]]) -> None:
    _, paths = card
    for path in paths[1:]:
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            assert im.format == "PNG"
            assert im.size == PNG_SIZE
            assert "Software" not in im.info


def test_deterministic(card: tuple[Path, list[Path]], tmp_path: Path) -> None:
    _, first = card
    steps = _steps(STEPS)
    # a caller's own Matplotlib style neither changes the output nor is changed by it
    with matplotlib.rc_context({"axes.facecolor": "red", "font.size": 20.0}):
        again = write_card(tmp_path, steps, _episodes(steps), _info(8, 2, SKIPPED))
        assert matplotlib.rcParams["axes.facecolor"] == "red"
    assert _digest(again) == _digest(first)


def test_observation_column_is_optional(card: tuple[Path, list[Path]], tmp_path: Path) -> None:
    _, first = card
    steps = _steps(STEPS)
    images = pa.nulls(steps.num_rows, STEP_SCHEMA.field("observation").type)
    with_images = steps.append_column(STEP_SCHEMA.field("observation"), images)
    again = write_card(tmp_path, with_images, _episodes(steps), _info(8, 2, SKIPPED))
    assert _digest(again) == _digest(first)


def test_empty_dataset(tmp_path: Path) -> None:
    steps = STEP_COLUMNS.empty_table()
    episodes = EPISODE_SCHEMA.empty_table()
    paths = write_card(tmp_path, steps, episodes, _info(0, 0, []))
    text = paths[0].read_text(encoding="utf-8")
    assert text.startswith("---\n") and "\nlicense: other\n" in text.split("\n---\n")[0]
    assert "This build holds no steps" in text
    assert _row(text, "steps") == ["0"]
    assert _row(text, "episodes") == ["0"]
    assert _row(text, "hours of work (sum of episode durations)") == ["0.00 h (0 h 00 min)"]
    assert _row(text, "`click`") == ["0", "-", "0"]
    assert "No session was skipped." in text
    for path in paths[1:]:
        with Image.open(path) as im:
            assert im.format == "PNG"
            assert im.size == PNG_SIZE
    again = write_card(tmp_path / "again", steps, episodes, _info(0, 0, []))
    assert _digest(again) == _digest(paths)
