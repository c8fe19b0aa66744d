"""``demotrace build``: recordings -> the versioned dataset layout (docs/dataset.md).

One session at a time: read its raw events, reduce them, cut episodes, pair each step with its
observation (encoded once per distinct frame), and hand the rows to :class:`DatasetWriter`, which
writes steps in order into fixed-size Parquet files. The local engine runs sessions in a loop;
the Ray engine (``ray_engine.py``) runs :func:`build_session` on Ray Data and feeds the same
writer in the same order, so both write the same bytes.

A session that cannot be built right (recorded by a newer demotrace, frames missing from the
store, no events) is skipped and reported in ``meta/info.json``, on the card and by the command;
a session the recorder did not end (it crashed) is built from what was stored and reported as
partial.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import os
import shutil
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from demotrace.dataset.episodes import Episode, EpisodeConfig, split_episodes
from demotrace.dataset.reduce import REDUCER_VERSION, Action, ReduceConfig, canonical
from demotrace.dataset.reduce import reduce_events as _reduce
from demotrace.dataset.schema import (
    EPISODE_SCHEMA,
    FORMAT_NAME,
    FORMAT_VERSION,
    ROW_GROUP,
    SKILLS,
    STEP_SCHEMA,
    STEPS_PER_FILE,
)
from demotrace.dataset.sources import LocalStoreSource, Source, open_source, session_problem
from demotrace.errors import DatasetError

_PNG_CACHE = 48


@dataclass(frozen=True)
class BuildConfig:
    reduce: ReduceConfig = field(default_factory=ReduceConfig)
    episodes: EpisodeConfig = field(default_factory=EpisodeConfig)


@dataclass
class SessionOutput:
    """One session's part of the dataset, or why it was skipped."""

    ref: dict[str, Any]
    steps: pa.Table | None = None
    episodes: pa.Table | None = None
    skipped: str | None = None
    partial: bool = False
    events: int = 0
    frames: int = 0
    screens: list[list[int]] = field(default_factory=list)


def reduce_config(base: ReduceConfig, ref: dict[str, Any]) -> ReduceConfig:
    """The reducer's thresholds for one session: the desktop's double-click time and distance
    where the recorder found them (XSETTINGS), else ``base``."""
    found = ref.get("input") or {}
    changes: dict[str, Any] = {}
    if "double_click_ms" in found:
        changes["double_click_s"] = found["double_click_ms"] / 1000
    if "double_click_px" in found:
        changes["double_click_px"] = int(found["double_click_px"])
    return dataclasses.replace(base, **changes) if changes else base


def item_box(img: Image.Image, popup: list[int], x: int, y: int) -> list[int]:
    """The box of the item under (x, y) in an open popup, found in its pixels: the run of rows
    around y whose colour, just inside the popup's left edge, is the one at y (the highlighted
    item); a fixed band when no such run of plausible height exists."""
    gx, gy, gw, gh = popup
    x0, x1 = max(gx, 0), min(gx + gw, img.width)
    y0, y1 = max(gy, 0), min(gy + gh, img.height)
    if not (x0 <= x < x1 and y0 <= y < y1):
        return [x - 8, y - 8, x + 8, y + 8]
    column = np.asarray(img.crop((x0, y0, x1, y1)).convert("RGB"), dtype=np.int16)
    probe = min(x0 + 4, x1 - 1) - x0  # inside the border, left of most text
    ref = column[y - y0, probe]
    same = np.all(np.abs(column[:, probe] - ref) <= 6, axis=1)
    top = bot = y - y0
    while top > 0 and same[top - 1]:
        top -= 1
    while bot + 1 < len(same) and same[bot + 1]:
        bot += 1
    height = bot - top + 1
    if height < 6 or height > max(40, (y1 - y0) // 2):
        return [x0, max(y - 10, y0), x1, min(y + 10, y1)]
    return [x0, y0 + top, x1, y0 + bot + 1]


class _Observations:
    """Encodes each distinct frame of a session once, as lossless WebP (a small cache: steps come
    in time order)."""

    def __init__(self, source: Source, ref: dict[str, Any]) -> None:
        self.source, self.ref = source, ref
        self._cache: OrderedDict[str, tuple[bytes, int, int, Image.Image]] = OrderedDict()

    def get(self, frame: str) -> tuple[bytes, int, int, Image.Image]:
        hit = self._cache.get(frame)
        if hit is not None:
            self._cache.move_to_end(frame)
            return hit
        img = self.source.frame(self.ref, frame)
        out = io.BytesIO()
        # lossless WebP: as fast to write as PNG at its fastest level, and a quarter of the size
        img.save(out, "WEBP", lossless=True, quality=10, method=1)
        hit = (out.getvalue(), img.width, img.height, img)
        self._cache[frame] = hit
        if len(self._cache) > _PNG_CACHE:
            self._cache.popitem(last=False)
        return hit


def _wall(ref: dict[str, Any], t: int) -> int:
    return int(ref["started_wall_ns"]) + (t - int(ref["started_mono_ns"]))


def _ordered(values: Iterable[str | None], order: tuple[str, ...] | None = None) -> list[str]:
    seen: dict[str, None] = {}
    for v in values:
        if v:
            seen.setdefault(v, None)
    out = list(seen)
    if order is not None:
        out.sort(key=lambda s: order.index(s) if s in order else len(order))
    return out


def build_session(source: Source, ref: dict[str, Any], cfg: BuildConfig) -> SessionOutput:
    """One session -> its steps and episodes tables (or the reason it is skipped)."""
    out = SessionOutput(ref)
    problem = session_problem(ref)
    if problem:
        out.skipped = problem
        return out
    events = source.events(ref)
    out.events = events.num_rows
    if not events.num_rows:
        out.skipped = "no events were recorded"
        return out
    out.partial = ref.get("status") not in ("stopped", "ended")
    screen = tuple(ref.get("screen") or (0, 0))
    try:
        red = _reduce(events, screen, reduce_config(cfg.reduce, ref))  # type: ignore[arg-type]
        episodes = split_episodes(red, cfg.episodes)
    except (ValueError, TypeError, KeyError, AttributeError, pa.ArrowException) as exc:
        # a row whose details are damaged (bad JSON, wrong types): skip it loudly, never guess
        out.skipped = f"its events are damaged and cannot be reduced ({type(exc).__name__}: {exc})"
        return out
    wanted = {a.frame for e in episodes for a in e.actions if a.frame}
    missing = source.missing_frames(ref, wanted)
    if missing:
        out.skipped = (
            f"{len(missing)} of its {len(wanted)} screenshots are missing from the store "
            "(damaged or deleted); its steps would lack their observations"
        )
        return out
    out.frames = len(wanted)
    t_sorted = np.sort(events.column("t_ns").to_numpy())
    obs = _Observations(source, ref)
    cols: dict[str, list[Any]] = {f.name: [] for f in STEP_SCHEMA}
    ep_rows: list[dict[str, Any]] = []
    device, session = str(ref["device"]), int(ref["session"])
    screens: set[tuple[int, int]] = set()
    for ep in episodes:
        eid = f"{device}-{session}-{ep.index:04d}"
        for i, a in enumerate(ep.actions):
            _step_row(cols, a, eid, i, ref, red, obs, screens)
        ep_rows.append(_episode_row(ep, eid, ref, t_sorted, cols))
    out.steps = pa.Table.from_pydict(cols, schema=STEP_SCHEMA)
    out.episodes = pa.Table.from_pylist(ep_rows, schema=EPISODE_SCHEMA)
    out.screens = sorted([list(s) for s in screens])
    return out


def _step_row(
    cols: dict[str, list[Any]],
    a: Action,
    eid: str,
    index: int,
    ref: dict[str, Any],
    red: Any,
    obs: _Observations,
    screens: set[tuple[int, int]],
) -> None:
    box = None
    if a.frame:
        image, w, h, img = obs.get(a.frame)
        if a.popup is not None and "x" in a.fields:
            box = item_box(img, a.popup[1], a.fields["x"], a.fields["y"])
        observation: dict[str, Any] | None = {"bytes": image, "path": f"{a.frame}.webp"}
        age = round(max(0, a.t_start - (a.frame_t or a.t_start)) / 1e6, 3)
    else:
        w, h = red.screen_at(a.seq_start)
        observation, age = None, None
    screens.add((w, h))
    action = canonical(a, w, h, box)
    px, py = a.pointer if a.pointer is not None else (None, None)
    path = None
    if a.path is not None and w and h:
        p = a.path
        path = [
            [round(float(x) / w, 6), round(float(y) / h, 6), round(float(t) / 1e9, 4)]
            for x, y, t in p.tolist()
        ]
    cols["episode_id"].append(eid)
    cols["step_index"].append(index)
    cols["action_type"].append(a.type)
    cols["action"].append(json.dumps(action, separators=(",", ":"), ensure_ascii=False))
    cols["skills"].append(_ordered(a.skills, SKILLS))
    cols["app"].append(a.app)
    cols["title"].append(a.title)
    cols["url"].append(a.url)
    cols["screen_w"].append(w)
    cols["screen_h"].append(h)
    cols["scale"].append(1.0)
    cols["pointer_x"].append(round(px / w, 6) if px is not None and w else None)
    cols["pointer_y"].append(round(py / h, 6) if py is not None and h else None)
    cols["pointer_path"].append(path)
    cols["t_start"].append(_wall(ref, a.t_start))
    cols["t_end"].append(_wall(ref, a.t_end))
    cols["device"].append(str(ref["device"]))
    cols["session"].append(int(ref["session"]))
    cols["seq_start"].append(a.seq_start)
    cols["seq_end"].append(a.seq_end)
    cols["frame_id"].append(a.frame)
    cols["frame_age_ms"].append(age)
    cols["observation"].append(observation)


def _episode_row(
    ep: Episode, eid: str, ref: dict[str, Any], t_sorted: np.ndarray, cols: dict[str, list[Any]]
) -> dict[str, Any]:
    t0, t1 = ep.actions[0].t_start, max(a.t_end for a in ep.actions)
    n_events = int(np.searchsorted(t_sorted, t1, "right") - np.searchsorted(t_sorted, t0, "left"))
    n = len(ep.actions)
    return {
        "episode_id": eid,
        "device": str(ref["device"]),
        "session": int(ref["session"]),
        "episode_index": ep.index,
        "instruction": ep.instruction,
        "apps": _ordered(a.app for a in ep.actions),
        "skills": _ordered((s for a in ep.actions for s in a.skills), SKILLS),
        "action_types": _ordered(a.type for a in ep.actions),
        "t_start": _wall(ref, t0),
        "t_end": _wall(ref, t1),
        "duration_s": round((t1 - t0) / 1e9, 3),
        "n_steps": n,
        "n_events": n_events,
        "start_reason": ep.start_reason,
        "end_reason": ep.end_reason,
        "screen_w": cols["screen_w"][-n] if n else None,
        "screen_h": cols["screen_h"][-n] if n else None,
    }


class DatasetWriter:
    """Writes sessions' rows, in the order given, into the dataset layout under ``out``.

    Everything goes to a temporary folder beside ``out`` that replaces it only when the dataset is
    complete: an interrupted build never leaves a half-written dataset behind.
    """

    def __init__(self, out: Path, overwrite: bool = False) -> None:
        self.out = Path(out)
        if self.out.exists() and any(self.out.iterdir()):
            is_dataset = (self.out / "meta" / "info.json").exists()
            if not (overwrite and is_dataset):
                what = "a dataset" if is_dataset else "not empty and not a dataset"
                hint = "add --overwrite to replace it" if is_dataset else "choose another folder"
                raise DatasetError(f"The output folder {self.out} is {what}; {hint}.")
        self.tmp = self.out.with_name(f".{self.out.name}.building-{os.getpid()}")
        shutil.rmtree(self.tmp, ignore_errors=True)
        try:
            (self.tmp / "data").mkdir(parents=True)
            (self.tmp / "meta").mkdir()
        except OSError as exc:
            raise DatasetError(f"Cannot write the dataset at {self.out}: {exc}.") from None
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._files = 0
        self.episodes: list[pa.Table] = []
        self.light: list[pa.Table] = []  # steps without observations, for the card
        self.sessions: list[SessionOutput] = []

    def add(self, result: SessionOutput) -> None:
        result_steps, result_eps = result.steps, result.episodes
        self.sessions.append(result)
        result.steps = result.episodes = None  # the writer keeps them from here
        if result_steps is None or result_eps is None:
            return
        self.episodes.append(result_eps)
        self.light.append(result_steps.drop_columns(["observation", "pointer_path"]))
        self._pending.append(result_steps)
        self._pending_rows += result_steps.num_rows
        while self._pending_rows >= STEPS_PER_FILE:
            self._write_file(STEPS_PER_FILE)

    def _write_file(self, rows: int) -> None:
        # an empty dataset still has one (empty) steps file, so that every reader finds it
        table = pa.concat_tables(self._pending) if self._pending else STEP_SCHEMA.empty_table()
        head, rest = table.slice(0, rows), table.slice(rows)
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows
        path = self.tmp / "data" / f"steps-{self._files:05d}.parquet"
        self._files += 1
        _write_parquet(head, path)

    def close(self, info_extra: dict[str, Any], card: bool = True) -> dict[str, Any]:
        if self._pending_rows or not self._files:
            self._write_file(self._pending_rows)
        episodes = (
            pa.concat_tables(self.episodes) if self.episodes else EPISODE_SCHEMA.empty_table()
        )
        _write_parquet(episodes, self.tmp / "meta" / "episodes.parquet")
        steps_light = (
            pa.concat_tables(self.light)
            if self.light
            else STEP_SCHEMA.empty_table().drop_columns(["observation", "pointer_path"])
        )
        built = [s for s in self.sessions if s.skipped is None]
        screens = sorted({tuple(x) for s in built for x in s.screens})
        info = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "reducer_version": REDUCER_VERSION,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "counts": {
                "steps": steps_light.num_rows,
                "episodes": episodes.num_rows,
                "sessions": len(built),
                "devices": len({s.ref["device"] for s in built}),
                "events": sum(s.events for s in built),
                "frames": sum(s.frames for s in built),
                "files": self._files,
            },
            "screens": [list(s) for s in screens],
            "skipped": [
                {"device": s.ref["device"], "session": s.ref["session"], "reason": s.skipped}
                for s in self.sessions
                if s.skipped
            ],
            "partial": [
                {"device": s.ref["device"], "session": s.ref["session"]} for s in built if s.partial
            ],
        } | info_extra
        (self.tmp / "meta" / "info.json").write_text(json.dumps(info, indent=2) + "\n")
        if card:
            from demotrace.dataset.card import write_card

            write_card(self.tmp, steps_light, episodes, info)
        if self.out.exists():
            shutil.rmtree(self.out)
        self.tmp.rename(self.out)
        return info

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def _write_parquet(table: pa.Table, path: Path) -> None:
    codecs = {name: "zstd" for name in table.column_names}
    if "observation" in codecs:
        codecs["observation"] = "none"  # WebP bytes do not compress further
    pq.write_table(
        table,
        path,
        row_group_size=ROW_GROUP,
        compression=codecs,
        use_dictionary=["episode_id", "action_type", "app", "title", "url", "device"],
    )


def source_label(source: Source) -> str:
    """How the dataset names where it came from: never a local path (it names its owner's home),
    never credentials: ``a local store``, ``a lake``, or a lake URI without user info or query."""
    if isinstance(source, LocalStoreSource):
        return "a local store"
    spec = str(source.spec)
    if "://" not in spec:
        return "a lake"
    scheme, _, rest = spec.partition("://")
    rest = rest.split("?", 1)[0].split("#", 1)[0]
    return f"{scheme}://{rest.rpartition('@')[2]}"


def sessions_of(source: Source, only: list[int] | None = None) -> list[dict[str, Any]]:
    refs = source.sessions()
    if only:
        known = {r["session"] for r in refs}
        unknown = sorted(set(only) - known)
        if unknown:
            raise DatasetError(
                f"Session {', '.join(map(str, unknown))} is not in {source.spec}; "
                "`demotrace sessions` lists them."
            )
        refs = [r for r in refs if r["session"] in set(only)]
    return refs


def build(
    source_spec: str | Path,
    out: Path,
    engine: str = "local",
    cfg: BuildConfig | None = None,
    sessions: list[int] | None = None,
    overwrite: bool = False,
    progress: Callable[[SessionOutput, int, int], None] | None = None,
    ray_address: str | None = None,
) -> dict[str, Any]:
    """Build a dataset from ``source_spec`` into ``out``; returns meta/info.json's content."""
    cfg = cfg or BuildConfig()
    if engine not in ("local", "ray"):
        raise DatasetError(f"Unknown engine {engine!r}; use local or ray.")
    source = open_source(source_spec)
    try:
        refs = sessions_of(source, sessions)
        writer = DatasetWriter(out, overwrite=overwrite)
        try:
            results: Iterator[SessionOutput]
            if engine == "ray":
                from demotrace.dataset.ray_engine import run_sessions

                results = run_sessions(refs, cfg, address=ray_address)
            else:
                results = (build_session(source, ref, cfg) for ref in refs)
            for i, result in enumerate(results):
                writer.add(result)
                if progress is not None:
                    progress(result, i + 1, len(refs))
            return writer.close({"engine": engine, "sources": [source_label(source)]})
        except BaseException:
            writer.abort()
            raise
    finally:
        source.close()
