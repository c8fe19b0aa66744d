"""The synthetic workday generator of the reducer bench (``bench/workday.py``): schema, order,
the mix of kinds, and the recorder's habits (frames, typed text, targets, popups)."""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from demotrace.dataset.schema import EVENT_SCHEMA
from demotrace.model import Kind, Row
from demotrace.recorder import ActionStarts

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from workday import describe, generate_workday, write_parquet  # noqa: E402  (bench/ is no package)

INPUT_KINDS = (Kind.MOVE, Kind.BUTTON, Kind.WHEEL, Kind.KEY)
FRAME_TARGETS = {"press": Kind.BUTTON, "key": Kind.KEY, "scroll": Kind.WHEEL, "switch": Kind.FOCUS}


@cache
def day(hours: float = 0.05, seed: int = 0) -> pa.Table:
    return generate_workday(hours, seed)


@cache
def others(hours: float = 0.25, seed: int = 1) -> list[dict[str, Any]]:
    """The non-move rows, data decoded, plus ``pointer``: the last move's (x, y) before each."""
    table = day(hours, seed)
    kind = table.column("kind").to_numpy()
    x = table.column("x").to_numpy(zero_copy_only=False)
    y = table.column("y").to_numpy(zero_copy_only=False)
    move = np.flatnonzero(kind == Kind.MOVE)
    rows = table.filter(pa.array(kind != Kind.MOVE)).to_pylist()
    positions = np.flatnonzero(kind != Kind.MOVE)
    last = np.searchsorted(move, positions) - 1
    for row, i in zip(rows, last, strict=True):
        row["data"] = json.loads(row["data"]) if row["data"] else None
        row["pointer"] = (int(x[move[i]]), int(y[move[i]])) if i >= 0 else None
    return rows


def test_schema_and_sequence_numbers() -> None:
    table = day()
    assert table.schema.equals(EVENT_SCHEMA)
    seq = table.column("seq").to_numpy()
    assert seq[0] == 1
    assert np.all(np.diff(seq) == 1)
    first = table.slice(0, 2).to_pylist()
    assert first[0]["kind"] == Kind.SCREEN and (first[0]["x"], first[0]["y"]) == (1920, 1080)
    assert first[1]["kind"] == Kind.FOCUS


def test_input_rows_are_in_time_order() -> None:
    table = day(0.25, 2)
    kind = table.column("kind").to_numpy()
    t = table.column("t_ns").to_numpy()
    t_input = t[np.isin(kind, INPUT_KINDS)]
    assert np.all(np.diff(t_input) >= 0)
    # moves are sampled at 60-125 Hz (jittered) while they last: never two in one 5 ms
    t_move = t[kind == Kind.MOVE]
    assert np.diff(t_move).min() >= 5_000_000


@pytest.mark.parametrize("screen", [(1920, 1080), (1280, 800)])
def test_moves_only_carry_a_position_on_the_screen(screen: tuple[int, int]) -> None:
    table = generate_workday(0.1, 3, screen)
    first = table.slice(0, 1).to_pylist()[0]
    assert (first["kind"], first["x"], first["y"]) == (Kind.SCREEN, *screen)
    moves = table.filter(pc.equal(table.column("kind"), int(Kind.MOVE)))
    for name in ("code", "state", "value", "name", "data"):
        assert moves.column(name).null_count == moves.num_rows
    assert moves.column("x").null_count == 0 and moves.column("y").null_count == 0
    x, y = moves.column("x").to_numpy(), moves.column("y").to_numpy()
    assert x.min() >= 0 and x.max() < screen[0] and y.min() >= 0 and y.max() < screen[1]
    # a still pointer reports nothing: no move repeats the one before it
    assert np.all((np.diff(x) != 0) | (np.diff(y) != 0))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_about_98_percent_moves(seed: int) -> None:
    counts = describe(day(0.5, seed))
    assert 0.96 <= counts["move"] / counts["total"] <= 0.99
    for kind in ("button", "wheel", "key", "target", "frame", "text", "focus", "popup"):
        assert counts.get(kind, 0) > 0, kind


def test_an_hour_is_about_125_thousand_rows() -> None:
    counts = describe(day(1.0, 0))
    assert 100_000 <= counts["total"] <= 170_000
    assert 0.97 <= counts["move"] / counts["total"] <= 0.99


def test_same_seed_same_table_other_seed_other_table() -> None:
    a = generate_workday(0.05, seed=7)
    assert a.equals(generate_workday(0.05, seed=7))
    assert not a.equals(generate_workday(0.05, seed=8))


def test_every_frame_points_at_the_event_it_shows() -> None:
    rows = others()
    by_seq = {r["seq"]: r for r in rows}
    keyframes = 0
    for r in rows:
        if r["kind"] != Kind.FRAME:
            continue
        data = r["data"]
        assert data["region"] == [0, 0, 1920, 1080] and len(data["frame"]) == 32
        assert data["t_grab_ns"] <= data["t_verified_ns"]
        if data["reason"] == "keyframe":
            assert "for_seq" not in data
            keyframes += 1
            continue
        target = by_seq[data["for_seq"]]
        assert target["seq"] < r["seq"]
        assert target["kind"] == FRAME_TARGETS[data["reason"]]
        assert r["t_ns"] == target["t_ns"]
        if target["kind"] in (Kind.BUTTON, Kind.KEY):
            assert target["value"] == 1
        if target["kind"] == Kind.FOCUS:
            assert target["data"]["window"] != 0
    assert keyframes > 0


def test_frames_follow_the_recorders_action_starts() -> None:
    """Feed the rows to the recorder's own ActionStarts: a FRAME for exactly the rows it starts
    (a typed sequence's frame is for its first key instead, as the recorder asks for it; the
    session's first FOCUS row has none: the recorder's frame ring is not up yet)."""
    rows = others()
    starts = ActionStarts()
    wanted: dict[int, str] = {}
    for i, r in enumerate(rows):
        if r["kind"] == Kind.TEXT:
            wanted[rows[i + 1]["seq"]] = "key"
        data = json.dumps(r["data"], separators=(",", ":")) if r["data"] else None
        cols = (r["x"], r["y"], r["code"], r["state"], r["value"], r["name"], data)
        reason = starts.feed(Row(r["t_ns"], None, Kind(r["kind"]), *cols))
        if reason == "key" and r["name"] is None:
            reason = None  # typing: the sequence's frame
        if reason is not None:
            wanted[r["seq"]] = reason
    assert wanted.pop(2) == "switch"
    got = {
        r["data"]["for_seq"]: r["data"]["reason"]
        for r in rows
        if r["kind"] == Kind.FRAME and "for_seq" in r["data"]
    }
    assert got == wanted


def test_a_press_is_followed_by_its_target_where_the_pointer_is() -> None:
    rows = others()
    presses = 0
    for i, r in enumerate(rows):
        if r["kind"] in (Kind.BUTTON, Kind.WHEEL, Kind.KEY) and r["pointer"] is not None:
            assert (r["x"], r["y"]) == r["pointer"]  # the pointer stays where the moves left it
        if r["kind"] == Kind.BUTTON and r["value"] == 1:
            presses += 1
            target = rows[i + 1]
            assert target["kind"] == Kind.TARGET and target["seq"] == r["seq"] + 1
            assert (target["x"], target["y"], target["t_ns"]) == (r["x"], r["y"], r["t_ns"])
            assert target["data"]["window"] and target["data"]["app"]
            assert r["state"] & 0xFF00 == 0  # no button held before the press
        elif r["kind"] == Kind.BUTTON:
            assert r["state"] & {1: 256, 2: 512, 3: 1024}[r["code"]]  # the released button
    assert presses > 10


def test_typed_text_rows() -> None:
    rows = others()
    texts = [i for i, r in enumerate(rows) if r["kind"] == Kind.TEXT]
    assert texts
    for i in texts:
        r = rows[i]
        data = r["data"]
        assert set(data) == {"text", "mode", "keys", "t_end_ns"}
        assert data["mode"] == "text" and data["text"] and data["keys"] >= len(data["text"])
        assert r["x"] is None and r["code"] is None and r["name"] is None
        first = rows[i + 1]
        assert first["kind"] == Kind.KEY and first["value"] == 1
        assert first["seq"] == r["seq"] + 1 and first["t_ns"] == r["t_ns"]
        assert first["code"] is None and first["name"] is None
        assert data["t_end_ns"] > r["t_ns"]
        typed = [
            k
            for k in rows[i + 1 :]
            if k["kind"] == Kind.KEY and k["t_ns"] <= data["t_end_ns"] and k["name"] is None
        ]
        assert sum(k["value"] for k in typed) == data["keys"]
        assert all(k["code"] is None for k in typed)
        named = {
            k["name"]
            for k in rows[i + 1 :]
            if k["kind"] == Kind.KEY and k["t_ns"] <= data["t_end_ns"] and k["name"]
        }
        assert named <= {"Shift_L", "BackSpace"}


def test_chords_and_named_keys() -> None:
    rows = others(1.0, 0)
    keys = [r for r in rows if r["kind"] == Kind.KEY and r["name"]]
    held = 0
    bits = {"Shift_L": 1, "Control_L": 4, "Alt_L": 8, "Super_L": 64}
    chords = 0
    for k in keys:
        assert k["code"] is not None
        assert k["state"] & 0xFF == held, k  # the modifiers held before the event
        if k["name"] in bits:
            held = held | bits[k["name"]] if k["value"] else held & ~bits[k["name"]]
        elif k["state"] & 4 and k["value"]:
            chords += 1
    assert chords > 0 and held == 0


def test_popups_map_then_unmap() -> None:
    rows = others(1.0, 0)
    open_: dict[int, dict[str, Any]] = {}
    types = set()
    for r in rows:
        if r["kind"] != Kind.POPUP:
            continue
        data = r["data"]
        assert set(data) >= {"window", "type", "geometry", "app", "opener"}
        assert len(data["geometry"]) == 4
        types.add(data["type"])
        x, y, w, h = data["geometry"]
        assert 0 <= x <= x + w <= 1920 and 0 <= y <= y + h <= 1080  # toolkits keep them on
        if r["value"] == 1:
            assert data["window"] not in open_
            open_[data["window"]] = data
        else:
            assert open_.pop(data["window"]) == data
    assert not open_
    assert {"COMBO", "POPUP_MENU", "TOOLTIP"} <= types


def test_a_day_holds_every_kind_of_popup_and_gap() -> None:
    table = day(3.0, 0)
    rows = table.filter(pc.is_in(table.column("kind"), pa.array([Kind.POPUP, Kind.GAP], pa.int8())))
    data = [json.loads(d) for d in rows.column("data").to_pylist()]
    assert {d["type"] for d in data if "type" in d} >= {
        "COMBO",
        "POPUP_MENU",
        "TOOLTIP",
        "MENU",
        "DROPDOWN_MENU",
    }
    gaps = [d for d in data if "reason" in d]
    assert {d["reason"] for d in gaps} >= {"out_of_scope", "secret"}
    assert all(d["duration_ns"] > 0 for d in gaps)


def test_a_click_in_a_popup_lands_inside_it() -> None:
    rows = others(1.0, 0)
    open_: dict[int, list[int]] = {}
    chosen = 0
    for r in rows:
        if r["kind"] == Kind.POPUP:
            if r["value"]:
                open_[r["data"]["window"]] = r["data"]["geometry"]
            else:
                del open_[r["data"]["window"]]
        elif r["kind"] == Kind.TARGET and "popup" in r["data"]:
            x, y, w, h = open_[r["data"]["window"]]
            assert x <= r["x"] < x + w and y <= r["y"] < y + h
            chosen += 1
    assert chosen > 2


def test_wheel_rows_are_one_per_notch() -> None:
    rows = others()
    wheels = [r for r in rows if r["kind"] == Kind.WHEEL]
    assert wheels
    assert all(r["code"] in (4, 5, 6, 7) and r["value"] == 1 for r in wheels)


def test_focus_rows() -> None:
    rows = others(1.0, 0)
    focus = [r["data"] for r in rows if r["kind"] == Kind.FOCUS]
    assert len(focus) > 3
    for data in focus:
        assert set(data) >= {"window", "app", "instance", "title", "pid"}
        if data["window"]:
            assert len(data["geometry"]) == 4


def test_write_parquet_round_trip(tmp_path: Path) -> None:
    table = day()
    path = write_parquet(table, tmp_path / "sub" / "events.parquet")
    assert pq.read_table(path).equals(table)
