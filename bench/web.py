"""Web pages on a 10,000-step dataset: the replay viewer and the collector's admin pages, each
beside a baseline measured in the same run, through the same app.

    .venv/bin/python bench/web.py                  # 7 rounds x 5 samples (about 40 s)
    .venv/bin/python bench/web.py --rounds 3 --repeat 3
    .venv/bin/python bench/web.py --rounds 9
    .venv/bin/python bench/web.py --regenerate     # write the synthetic dataset again

Input: a synthetic dataset written once into ``bench/out/web-dataset/`` (about 30 s) by the
builder's own writer (``DatasetWriter``: ``data/steps-NNNNN.parquet`` of 2,000 steps in row groups
of 200, zstd, observations stored uncompressed, ``meta/``), and reused while its
``meta/info.json`` names this generator's version: 10,000 steps in 61 episodes, 30 sessions, 20
devices (60 episodes of 3 to 200 steps, and one of 4,000 steps, 3.8 hours of work, spread over
three of the five files), every action type of docs/dataset.md with pointer paths, targets, drag
paths, apps, window titles and URLs, and 300 distinct 1280x800 screenshots with UI-like content
(windows, menus, text, tables, terminals, web pages) stored as lossless WebP with the build's
settings; ``wait`` steps have no frame.

Everything runs in this process through Starlette's ``TestClient`` (entered, so its event loop
stays up as a server's does; no sockets), the same for target and baseline. After one warm-up,
every round measures each pair ``--repeat`` times, target and baseline alternating (which goes
first alternates too):

- viewer start-up: ``create_app(dataset)`` (the index) against reading what it reads with pyarrow
  alone (``meta/info.json``, ``meta/episodes.parquet``, the footers and the ``episode_id`` and
  ``step_index`` columns of every steps file); the same with ``hide_people=True`` (aliases);
- viewer pages (``/``, ``/episode/ID``, ``/api/episode/ID/steps``, 200 steps at the start and deep
  inside the long episode), the same app's answer against a static file of the same bytes that
  the same app serves through ``StaticFiles`` (mounted on it, so the request passes the same
  middleware); the deep steps page also cold: the first request to a viewer just started, whose
  row groups are not cached yet;
- the player's image of a step, ``/raw/ID/N`` (the stored WebP; the player draws the step's
  shapes over it from the steps page), against a static file of the same bytes;
- drawn frames ``/frame/ID/N.png`` (the PNG download with the shapes burnt in by Pillow: a click,
  a drag, typed text) against ``/raw/ID/N`` of the same step; and cold: a drawn frame and the raw
  bytes of another step, each the first request for its row group;
- coverage: ``coverage.aggregate(dataset)`` against ``pq.read_table`` of the columns it reads;
  ``coverage.suppress(raw)`` against ``json.loads`` of the stored coverage (both run per page);
- admin pages of a collector (SQLite in a temporary folder; 500 devices, 2,000 sessions, 20,000
  segments, 40 builds, the done ones with this dataset's coverage, the newest unpacked as this
  dataset): overview, devices, builds, the newest build's coverage page and its viewer (people
  hidden), signed in with a cookie from ``make_cookie``, against ``/v1/health`` of the same app;
  a static file of the coverage page's size behind the sign-in shows what the sign-in costs.

Reported: medians of all samples in ms, the baseline's, their ratio, answer sizes. Prints a
table and writes ``bench/out/web.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import io
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastapi
import PIL
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from fastapi.staticfiles import StaticFiles
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw, ImageFont
from rich.console import Console
from rich.table import Table

from demotrace.collector import db as T
from demotrace.collector.api import create_app as collector_app
from demotrace.collector.builds import work_dir
from demotrace.collector.coverage import aggregate, suppress
from demotrace.collector.service import Config, Service
from demotrace.dataset.build import DatasetWriter, SessionOutput
from demotrace.dataset.reduce import REDUCER_VERSION
from demotrace.dataset.schema import EPISODE_SCHEMA, SKILLS, STEP_SCHEMA
from demotrace.web.admin import COOKIE, make_cookie
from demotrace.web.viewer import create_app as viewer_app

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import rss_peak_mb, save_result  # noqa: E402  (bench/ is not a package)

OUT = HERE / "out" / "web.json"
DATASET = HERE / "out" / "web-dataset"
GENERATOR = 1  # bump when the synthetic dataset changes
SEED = 20261201
PORT = 8765
W, H = 1280, 800
DEVICES = 20
LONG_STEPS = 4000
#: Lengths of the 60 ordinary episodes (6 x 1,000 steps): every bucket of the coverage chart.
LENGTHS = (3, 8, 20, 45, 90, 140, 160, 180, 200, 154) * 6
#: Distinct screenshots per kind of app.
POOLS = {"browser": 110, "editor": 60, "calc": 50, "terminal": 30, "mail": 50}
APPS = {
    "firefox": "browser",
    "code": "editor",
    "gedit": "editor",
    "libreoffice-calc": "calc",
    "xterm": "terminal",
    "thunderbird": "mail",
}
SITES = (
    "crm.example.com",
    "tickets.example.com",
    "wiki.example.org",
    "docs.example.org",
    "mail.example.net",
    "shop.example.com",
    "bank.example.net",
    "hr.example.com",
    "git.example.org",
    "cloud.example.com",
    "calendar.example.net",
    "news.example.org",
    "maps.example.com",
    "forms.example.org",
    "travel.example.com",
    "support.example.net",
)
_TEXT = (
    "the report quarterly invoice total customer order status open close save file edit view "
    "help project budget meeting notes review draft send reply forward settings account profile "
    "search results page next previous data table chart sheet column row value name date amount "
    "ticket priority assign team release deploy branch merge build test contract supplier"
)
WORDS = _TEXT.split()
OPTIONS = ("Germany", "France", "Open", "Closed", "High", "Low", "Monthly", "EUR", "Pending")
KEYS = (
    ["ctrl", "s"],
    ["ctrl", "c"],
    ["ctrl", "v"],
    ["ctrl", "z"],
    ["enter"],
    ["tab"],
    ["down"],
    ["escape"],
    ["ctrl", "shift", "t"],
    ["alt", "f4"],
    ["backspace"],
)
ROLES = ("push button", "link", "menu item", "check box", "tab", "entry")
T0_NS = 1_790_000_000 * 10**9  # 2026-09-21, the first session's start


# ------------------------------------------------------------------------------ screenshots
def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def draw_frame(kind: str, number: int) -> Image.Image:
    """A 1280x800 desktop with one application window of ``kind``, its content from a seed."""
    rng = random.Random(f"{kind}-{number}")
    font = ImageFont.load_default(size=13)
    big = ImageFont.load_default(size=18)
    img = Image.new("RGB", (W, H), (58 + rng.randint(0, 20), 82, 110))
    d = ImageDraw.Draw(img)
    d.rectangle((0, H - 32, W, H), fill=(32, 36, 42))  # taskbar
    for i in range(rng.randint(3, 7)):
        d.rectangle((8 + i * 150, H - 28, 150 + i * 150, H - 4), fill=(60, 66, 76))
        d.text((16 + i * 150, H - 24), _words(rng, 2)[:18], font=font, fill=(220, 220, 220))
    x0, y0 = rng.randint(0, 80), rng.randint(0, 40)
    x1, y1 = W - rng.randint(0, 80), H - 40 - rng.randint(0, 30)
    d.rectangle((x0, y0, x1, y1), fill=(246, 246, 246), outline=(120, 120, 120))
    d.rectangle((x0, y0, x1, y0 + 28), fill=(44, 62, 90))
    d.text((x0 + 10, y0 + 6), f"{_words(rng, 4).title()} - {kind}", font=font, fill="white")
    d.rectangle((x0, y0 + 28, x1, y0 + 52), fill=(232, 232, 232))
    for i, menu in enumerate(("File", "Edit", "View", "Insert", "Format", "Tools", "Help")):
        d.text((x0 + 10 + i * 60, y0 + 33), menu, font=font, fill=(30, 30, 30))
    top = y0 + 60
    if kind == "browser":  # an address bar and a web page
        d.rectangle((x0 + 8, top - 4, x1 - 8, top + 22), fill="white", outline=(170, 170, 170))
        url = f"https://{rng.choice(SITES)}/{_words(rng, 2).replace(' ', '/')}"
        d.text((x0 + 16, top + 2), url, font=font, fill=(40, 40, 40))
        top += 30
        d.rectangle((x0 + 2, top, x1 - 2, top + 56), fill=(rng.randint(20, 200), 90, 160))
        d.text((x0 + 24, top + 18), _words(rng, 3).title(), font=big, fill="white")
        top += 60
    if kind == "terminal":
        d.rectangle((x0 + 2, top, x1 - 2, y1 - 2), fill=(12, 12, 12))
        y = top + 6
        while y < y1 - 20:
            colour = (200, 230, 200) if rng.random() < 0.3 else (220, 220, 220)
            d.text((x0 + 10, y), "$ " + _words(rng, rng.randint(2, 10)), font=font, fill=colour)
            y += 17
        return img
    if kind == "calc":
        cw, ch = 90, 22
        for c in range((x1 - x0) // cw):
            for r in range((y1 - top) // ch):
                cx, cy = x0 + c * cw, top + r * ch
                d.rectangle((cx, cy, cx + cw, cy + ch), outline=(200, 200, 200))
                if r == 0:
                    d.text((cx + 4, cy + 4), chr(65 + c % 26), font=font, fill=(60, 60, 60))
                elif rng.random() < 0.6:
                    text = str(rng.randint(0, 99999)) if c else _words(rng, 1)
                    d.text((cx + 4, cy + 4), text, font=font, fill=(20, 20, 20))
        return img
    d.rectangle((x0 + 2, top, x0 + 200, y1 - 2), fill=(236, 238, 242))  # a side list
    chosen = rng.randint(0, 8)
    for i in range(rng.randint(8, 25)):
        y = top + 8 + i * 22
        if y > y1 - 22:
            break
        if i == chosen:
            d.rectangle((x0 + 4, y - 3, x0 + 198, y + 17), fill=(200, 215, 240))
        d.text((x0 + 12, y), _words(rng, rng.randint(1, 3)), font=font, fill=(40, 40, 40))
    y = top + 12
    d.text((x0 + 220, y), _words(rng, 5).title(), font=big, fill=(20, 20, 20))
    y += 34
    while y < y1 - 40:
        roll = rng.random()
        if roll < 0.12:  # a button
            bx = x0 + 220 + rng.randint(0, 400)
            d.rectangle((bx, y, bx + 110, y + 26), fill=(40, 110, 200))
            d.text((bx + 10, y + 6), _words(rng, 1).title(), font=font, fill="white")
            y += 36
        elif roll < 0.22:  # a form field
            d.rectangle((x0 + 220, y, x0 + 560, y + 24), fill="white", outline=(150, 150, 150))
            d.text((x0 + 226, y + 5), _words(rng, 3), font=font, fill=(60, 60, 60))
            y += 34
        else:
            d.text((x0 + 220, y), _words(rng, rng.randint(4, 16)), font=font, fill=(30, 30, 30))
            y += 18
    return img


def encode_frame(job: tuple[str, int]) -> tuple[str, int, str, bytes]:
    """(kind, number, frame id, lossless WebP bytes) with the build's encoder settings."""
    kind, number = job
    img = draw_frame(kind, number)
    out = io.BytesIO()
    img.save(out, "WEBP", lossless=True, quality=10, method=1)  # as dataset/build.py
    fid = hashlib.blake2b(img.tobytes(), digest_size=16).hexdigest()
    return kind, number, fid, out.getvalue()


# ---------------------------------------------------------------------------------- steps
def _xy(rng: random.Random) -> tuple[float, float]:
    return round(rng.uniform(0.03, 0.97), 6), round(rng.uniform(0.05, 0.93), 6)


def _path(rng: random.Random, end: tuple[float, float], n: int) -> list[list[float]]:
    """A pointer path of ``n`` points ending at ``end``: [x, y, seconds before the action]."""
    sx, sy = _xy(rng)
    out = []
    for i in range(n):
        f = (i + 1) / n
        x = sx + (end[0] - sx) * f + (rng.uniform(-0.004, 0.004) if i < n - 1 else 0)
        y = sy + (end[1] - sy) * f + (rng.uniform(-0.004, 0.004) if i < n - 1 else 0)
        out.append([round(x, 6), round(y, 6), round(-(n - 1 - i) * 0.016, 4)])
    return out


def _target(rng: random.Random, xy: tuple[float, float], role: str, name: str) -> dict[str, Any]:
    x, y = xy
    w, h = rng.uniform(0.02, 0.08), rng.uniform(0.012, 0.03)
    bbox = [round(x - w / 2, 6), round(y - h / 2, 6), round(x + w / 2, 6), round(y + h / 2, 6)]
    return {"role": role, "name": name, "bbox": bbox, "source": rng.choice(("atspi", "dom"))}


def make_action(
    rng: random.Random, kind: str, app: str, apps: list[str]
) -> tuple[dict[str, Any], list[str], list[list[float]] | None]:
    """One action in the canonical shape of docs/dataset.md, its skills and pointer path."""
    weights = {
        "click": 40,
        "type": 14 if kind != "terminal" else 40,
        "key": 12,
        "scroll": 12 if kind != "terminal" else 4,
        "drag": 5,
        "select_option": 5 if kind in ("browser", "calc", "mail") else 0,
        "switch_app": 5 if len(apps) > 1 else 0,
        "wait": 3,
        "move": 3,
    }
    kind_of = rng.choices(list(weights), weights=list(weights.values()))[0]
    xy = _xy(rng)
    path = None
    skills: list[str] = []
    if kind_of == "click":
        action: dict[str, Any] = {"type": "click", "x": xy[0], "y": xy[1]}
        action["button"] = rng.choices(("left", "right", "middle"), (90, 7, 3))[0]
        action["count"] = rng.choices((1, 2, 3), (85, 12, 3))[0]
        action["modifiers"] = rng.choices(([], ["ctrl"], ["shift"]), (92, 5, 3))[0]
        if rng.random() < 0.3:
            role = rng.choice(ROLES)
            action["target"] = _target(rng, xy, role, _words(rng, 2).title())
            if role == "menu item":
                skills.append("menu")
        path = _path(rng, xy, rng.randint(4, 40))
    elif kind_of == "select_option":
        value = rng.choice(OPTIONS)
        action = {"type": "select_option", "x": xy[0], "y": xy[1], "value": value}
        action["target"] = _target(rng, xy, "option", value)
        skills.append("dropdown")
        path = _path(rng, xy, rng.randint(4, 30))
    elif kind_of == "type":
        action = {"type": "type", "text": _words(rng, rng.randint(1, 9))}
        if rng.random() < 0.05:
            action = {"type": "type", "text": "aaaa aaaaaa 9999", "masked": True}
        skills.append("typing")
    elif kind_of == "key":
        keys = list(rng.choice(KEYS))
        action = {"type": "key", "keys": keys}
        if keys[0] in ("down", "tab", "backspace") and rng.random() < 0.5:
            action["count"] = rng.randint(2, 6)
        if len(keys) > 1:
            skills.append("shortcut")
    elif kind_of == "scroll":
        dy = rng.choice((-5, -3, -2, -1, 1, 2, 3))
        dx = rng.choice((0, 0, 0, 0, -2, 2))
        action = {"type": "scroll", "x": xy[0], "y": xy[1], "dx": dx, "dy": dy, "modifiers": []}
        skills.append("scroll")
        path = _path(rng, xy, rng.randint(2, 12))
    elif kind_of == "drag":
        drag = _path(rng, xy, rng.randint(8, 32))
        action = {"type": "drag", "path": [p[:2] for p in drag], "button": "left", "modifiers": []}
        skills.append("drag")
        path = _path(rng, tuple(drag[0][:2]), rng.randint(3, 20))  # type: ignore[arg-type]
    elif kind_of == "switch_app":
        other = rng.choice([a for a in apps if a != app])
        via = rng.choice(("keys", "click", "launcher"))
        action = {"type": "switch_app", "app": other, "via": via}
        if via == "keys":
            action["keys"] = ["alt", "tab"]
        elif via == "click":
            action |= {"x": xy[0], "y": xy[1], "button": "left"}
            path = _path(rng, xy, rng.randint(4, 20))
        skills.append("app_switch")
    elif kind_of == "wait":
        action = {"type": "wait", "seconds": round(rng.uniform(3, 25), 1)}
    else:
        action = {"type": "move", "x": xy[0], "y": xy[1]}
        skills.append("menu")
        path = _path(rng, xy, rng.randint(4, 20))
    return action, [s for s in SKILLS if s in skills], path


@dataclass
class Frames:
    """The distinct screenshots, by kind: (frame id, WebP bytes)."""

    by_kind: dict[str, list[tuple[str, bytes]]] = field(default_factory=dict)


@dataclass
class SessionPlan:
    device: str
    session: int
    start_ns: int
    lengths: list[int]


def episode_steps(
    rng: random.Random,
    frames: Frames,
    cols: dict[str, list[Any]],
    plan: SessionPlan,
    index: int,
    n: int,
    t_ns: int,
    seq: int,
) -> tuple[dict[str, Any], int, int]:
    """Appends one episode's ``n`` steps to ``cols``; its episodes row, the clock and the seq."""
    eid = f"{plan.device}-{plan.session}-{index:04d}"
    apps = rng.sample(list(APPS), rng.randint(1, 3))
    app = apps[0]
    first_seq = seq
    frame: tuple[str, bytes] | None = None
    ep_apps: dict[str, None] = {}
    ep_skills: set[str] = set()
    ep_types: dict[str, None] = {}
    doc = _words(rng, 2).title()
    site = rng.choice(SITES)
    for i in range(n):
        kind = APPS[app]
        action, skills, path = make_action(rng, kind, app, apps)
        t_ns += int(rng.uniform(0.4, 5.5) * 1e9)
        span = int(rng.uniform(0.05, 2.5 if action["type"] == "type" else 0.6) * 1e9)
        seq += rng.randint(3, 60)  # the pointer moves between actions
        seq_end = seq + rng.randint(1, 40)
        if frame is None or rng.random() < 0.55:
            frame = rng.choice(frames.by_kind[kind])
        if rng.random() < 0.05:
            doc = _words(rng, 2).title()
        if kind == "browser" and rng.random() < 0.1:
            site = rng.choice(SITES)
        has_frame = action["type"] != "wait"
        px, py = (path[-1][0], path[-1][1]) if path else _xy(rng)
        cols["episode_id"].append(eid)
        cols["step_index"].append(i)
        cols["action_type"].append(action["type"])
        cols["action"].append(json.dumps(action, separators=(",", ":"), ensure_ascii=False))
        cols["skills"].append(skills)
        cols["app"].append(app)
        cols["title"].append(f"{doc} - {app}")
        cols["url"].append(
            f"https://{site}/{doc.lower().replace(' ', '/')}" if kind == "browser" else None
        )
        cols["screen_w"].append(W)
        cols["screen_h"].append(H)
        cols["scale"].append(1.0)
        cols["pointer_x"].append(px)
        cols["pointer_y"].append(py)
        cols["pointer_path"].append(path)
        cols["t_start"].append(t_ns)
        cols["t_end"].append(t_ns + span)
        cols["device"].append(plan.device)
        cols["session"].append(plan.session)
        cols["seq_start"].append(seq)
        cols["seq_end"].append(seq_end)
        cols["frame_id"].append(frame[0] if has_frame else None)
        cols["frame_age_ms"].append(round(rng.uniform(0, 300), 3) if has_frame else None)
        cols["observation"].append(
            {"bytes": frame[1], "path": f"{frame[0]}.webp"} if has_frame else None
        )
        ep_apps.setdefault(app, None)
        ep_skills.update(skills)
        ep_types.setdefault(action["type"], None)
        if action["type"] == "switch_app":
            app = action["app"]
        t_ns += span
        seq = seq_end
    row = {
        "episode_id": eid,
        "device": plan.device,
        "session": plan.session,
        "episode_index": index,
        "instruction": (
            f"{rng.choice(('Update', 'Check', 'File', 'Answer'))} the {_words(rng, 2)}"
            if rng.random() < 0.6
            else None
        ),
        "apps": list(ep_apps),
        "skills": [s for s in SKILLS if s in ep_skills],
        "action_types": list(ep_types),
        "t_start": cols["t_start"][-n],
        "t_end": t_ns,
        "duration_s": round((t_ns - cols["t_start"][-n]) / 1e9, 3),
        "n_steps": n,
        "n_events": seq - first_seq,
        "start_reason": "session" if index == 0 else rng.choice(("marker", "idle", "gap")),
        "end_reason": rng.choice(("marker", "idle", "session")),
        "screen_w": W,
        "screen_h": H,
    }
    return row, t_ns + int(rng.uniform(60, 900) * 1e9), seq


def plan_sessions(rng: random.Random) -> list[SessionPlan]:
    """20 devices, one or two sessions each; the long episode alone in the 3rd device's 2nd."""
    devices = [f"d-{rng.getrandbits(48):012x}" for _ in range(DEVICES)]
    lengths = list(LENGTHS)
    rng.shuffle(lengths)
    plans: list[SessionPlan] = []
    for d, device in enumerate(devices):
        own = lengths[d * 3 : d * 3 + 3]
        start = T0_NS + d * 86_400 * 10**9
        if rng.random() < 0.5:
            plans.append(SessionPlan(device, 1, start, own))
        else:
            plans.append(SessionPlan(device, 1, start, own[:1]))
            plans.append(SessionPlan(device, 2, start + 5 * 3600 * 10**9, own[1:]))
        if d == 2:
            plans.append(SessionPlan(device, 7, start + 26 * 3600 * 10**9, [LONG_STEPS]))
    return plans


def generate(out: Path, console: Console) -> dict[str, Any]:
    """Write the synthetic dataset into ``out`` with the builder's writer; meta/info.json."""
    t0 = time.perf_counter()
    jobs = [(kind, i) for kind, count in POOLS.items() for i in range(count)]
    frames = Frames({kind: [] for kind in POOLS})
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for kind, _, fid, data in pool.map(encode_frame, jobs, chunksize=4):
            frames.by_kind[kind].append((fid, data))
    drawn = time.perf_counter() - t0
    console.print(f"  {len(jobs)} screenshots drawn and encoded in {drawn:.1f} s")
    rng = random.Random(SEED)
    if out.exists():
        shutil.rmtree(out)
    writer = DatasetWriter(out)
    try:
        for plan in plan_sessions(rng):
            cols: dict[str, list[Any]] = {f.name: [] for f in STEP_SCHEMA}
            rows = []
            t_ns, seq = plan.start_ns, 1000
            for index, n in enumerate(plan.lengths):
                row, t_ns, seq = episode_steps(rng, frames, cols, plan, index, n, t_ns, seq)
                rows.append(row)
            used = {f for f in cols["frame_id"] if f}
            writer.add(
                SessionOutput(
                    ref={"device": plan.device, "session": plan.session},
                    steps=pa.Table.from_pydict(cols, schema=STEP_SCHEMA),
                    episodes=pa.Table.from_pylist(rows, schema=EPISODE_SCHEMA),
                    events=seq,
                    frames=len(used),
                    screens=[[W, H]],
                )
            )
        extra = {
            "engine": "local",
            "sources": ["bench/web.py"],
            "bench": {"generator": GENERATOR, "seed": SEED},
        }
        info = writer.close(extra, card=False)
    except BaseException:
        writer.abort()
        raise
    console.print(f"  dataset written, {time.perf_counter() - t0:.1f} s in all")
    return info


def dataset_info(path: Path) -> dict[str, Any] | None:
    try:
        info = json.loads((path / "meta" / "info.json").read_text())
    except (OSError, ValueError):
        return None
    bench = info.get("bench") or {}
    if bench.get("generator") != GENERATOR or bench.get("seed") != SEED:
        return None
    return info


# ----------------------------------------------------------------------------- measuring
@dataclass
class Pair:
    """A measured answer and its baseline, each a zero-argument call that returns the answer's
    size in bytes (for calls that are not HTTP requests, any count, not reported)."""

    name: str
    what: str
    baseline_what: str
    target: Callable[[], int]
    baseline: Callable[[], int]
    target_ms: list[float] = field(default_factory=list)
    baseline_ms: list[float] = field(default_factory=list)
    target_bytes: int = 0
    baseline_bytes: int = 0
    http: bool = True

    def sample(self, is_target: bool, call: Callable[[], int] | None = None) -> None:
        """Time one call of the target or the baseline (or ``call`` in its place)."""
        call = call or (self.target if is_target else self.baseline)
        t0 = time.perf_counter()
        size = call()
        ms = (time.perf_counter() - t0) * 1000
        if is_target:
            self.target_ms.append(ms)
            self.target_bytes = size
        else:
            self.baseline_ms.append(ms)
            self.baseline_bytes = size

    def run(self, repeat: int, first_target: bool) -> None:
        for r in range(repeat):
            target_first = (r % 2 == 0) == first_target
            for is_target in (target_first, not target_first):
                self.sample(is_target)

    def result(self) -> dict[str, Any]:
        t, b = statistics.median(self.target_ms), statistics.median(self.baseline_ms)
        return {
            "name": self.name,
            "what": self.what,
            "baseline": self.baseline_what,
            "median_ms": t,
            "p90_ms": _p90(self.target_ms),
            "baseline_median_ms": b,
            "ratio": t / b if b else None,
            "bytes": self.target_bytes if self.http else None,
            "baseline_bytes": self.baseline_bytes if self.http else None,
            "samples_ms": [round(v, 3) for v in self.target_ms],
            "baseline_samples_ms": [round(v, 3) for v in self.baseline_ms],
        }


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def getter(client: TestClient, url: str) -> Callable[[], int]:
    def call() -> int:
        response = client.get(url)
        if response.status_code != 200:
            raise SystemExit(f"bench/web.py: GET {url} answered {response.status_code}")
        return len(response.content)

    return call


def static_twin(client: TestClient, url: str, folder: Path, prefix: str, name: str) -> str:
    """Write ``url``'s answer as a file ``name`` in ``folder`` (served at ``prefix``); its URL."""
    response = client.get(url)
    if response.status_code != 200:
        raise SystemExit(f"bench/web.py: GET {url} answered {response.status_code}")
    (folder / name).write_bytes(response.content)
    return f"{prefix}/{name}"


def index_baseline(dataset: Path) -> Callable[[], int]:
    """What the viewer's index reads, read by pyarrow alone."""

    def call() -> int:
        info = json.loads((dataset / "meta" / "info.json").read_text())
        episodes = pq.read_table(dataset / "meta" / "episodes.parquet")
        rows = 0
        for path in sorted((dataset / "data").glob("*.parquet")):
            parquet = pq.ParquetFile(path)
            rows += parquet.metadata.num_rows
            parquet.read(columns=["episode_id", "step_index"])
        return len(info) + episodes.num_rows + rows

    return call


def startup(dataset: Path, hide: bool) -> Callable[[], int]:
    def call() -> int:
        app = viewer_app(dataset, PORT, hide_people=hide)
        return len(app.routes)

    return call


COVERAGE_COLUMNS = ["episode_id", "step_index", "action_type", "skills", "app", "url"]
COVERAGE_COLUMNS += ["t_start", "t_end", "device"]


def coverage_baseline(dataset: Path) -> Callable[[], int]:
    def call() -> int:
        files = sorted((dataset / "data").glob("steps-*.parquet"))
        steps = pa.concat_tables([pq.read_table(f, columns=COVERAGE_COLUMNS) for f in files])
        episodes = pq.read_table(
            dataset / "meta" / "episodes.parquet", columns=["device", "n_steps"]
        )
        return steps.num_rows + episodes.num_rows

    return call


@dataclass
class Long:
    """The long episode: id, and steps chosen by action type."""

    episode: str
    steps: int
    click: int
    drag: int
    typed: int
    cold: list[int]


def find_long(dataset: Path) -> Long:
    episodes = pq.read_table(dataset / "meta" / "episodes.parquet").to_pylist()
    longest = max(episodes, key=lambda e: e["n_steps"])
    eid = longest["episode_id"]
    types: list[tuple[int, str]] = []
    for path in sorted((dataset / "data").glob("*.parquet")):
        t = pq.read_table(path, columns=["episode_id", "step_index", "action_type"])
        for e, i, a in zip(*(t.column(c).to_pylist() for c in t.column_names), strict=True):
            if e == eid:
                types.append((i, a))

    def first(kind: str, after: int) -> int:
        return next(i for i, a in types if a == kind and i >= after)

    # steps for cold frames: one per row group, far from the warm ones, never a wait
    cold = [first("click", s) for s in range(400, 2800, 200)]
    return Long(
        eid,
        longest["n_steps"],
        first("click", 3100),
        first("drag", 3100),
        first("type", 3100),
        cold,
    )


# ------------------------------------------------------------------------------ the admin side
def admin_world(folder: Path, dataset: Path, raw: dict[str, Any]) -> tuple[Service, str]:
    """A collector with 500 devices, sessions, segments and 40 builds, one done over
    ``dataset`` (its coverage ``raw``, its unpacked copy where the viewer looks); its id."""
    service = Service(Config.in_folder(folder))
    service.ensure_admin()
    rng = random.Random(SEED + 1)
    now = time.time_ns()
    devices = [f"d-{i:012x}" for i in range(1, 501)]
    with service._write() as conn:
        conn.execute(
            T.devices.insert(),
            [
                {
                    "id": d,
                    "token_hash": hashlib.sha256(d.encode()).hexdigest(),
                    "label": f"laptop {i}" if i % 3 else None,
                    "created_ns": now - (500 - i) * 3_600 * 10**9,
                    "revoked_ns": now if i % 40 == 0 else None,
                    "last_seen_ns": now,
                }
                for i, d in enumerate(devices)
            ],
        )
        conn.execute(
            T.sessions.insert(),
            [
                {
                    "device": devices[i % 500],
                    "session": i,
                    "date": "2026-11-20",
                    "started_wall_ns": now,
                    "started_mono_ns": 1,
                    "meta": "{}",
                    "updated_ns": now,
                }
                for i in range(2000)
            ],
        )
        conn.execute(
            T.segments.insert(),
            [
                {
                    "device": devices[i % 500],
                    "session": i % 2000,
                    "first_seq": i * 1000,
                    "last_seq": i * 1000 + 999,
                    "rows": 1000,
                    "bytes": 14_000,
                    "digest": f"{i:064x}",
                    "key": f"events/{i}.parquet",
                    "created_ns": now,
                }
                for i in range(20_000)
            ],
        )
        builds = []
        for i in range(40):
            state = rng.choice(("done", "done", "failed", "withdrawn"))
            builds.append(
                {
                    "id": f"b-{rng.getrandbits(48):012x}",
                    "state": state,
                    "engine": "local",
                    "note": f"weekly build {i}",
                    "created_ns": now - (40 - i) * 86_400 * 10**9,
                    "started_ns": now - (40 - i) * 86_400 * 10**9,
                    "finished_ns": now - (40 - i) * 86_400 * 10**9 + 600 * 10**9,
                    "heartbeat_ns": now,
                    "done_sessions": 30,
                    "total_sessions": 30,
                    "episodes": 61,
                    "steps": 10_000,
                    "bytes": 400_000_000,
                    "error": "a device deleted data" if state != "done" else None,
                    "coverage": json.dumps(raw) if state == "done" else None,
                }
            )
        target = builds[-1]
        target.update(state="done", error=None, coverage=json.dumps(raw))
        conn.execute(T.builds.insert(), builds)
    unpacked = work_dir(service.config) / "datasets" / target["id"]
    unpacked.parent.mkdir(parents=True, exist_ok=True)
    unpacked.symlink_to(dataset.resolve(), target_is_directory=True)
    return service, target["id"]


# ----------------------------------------------------------------------------------- running
def measure(dataset: Path, rounds: int, repeat: int, console: Console) -> dict[str, Any]:
    long = find_long(dataset)
    deep = (3000 // 200) * 200
    tmp = Path(tempfile.mkdtemp(prefix="demotrace-web-bench-"))
    results: dict[str, Any] = {"long_episode": long.episode, "long_steps": long.steps}
    # clients are entered (as in a `with`): their event loop stays up between requests, as a
    # server's does; without it every request would start one
    stack = contextlib.ExitStack()
    try:
        static = tmp / "static"
        static.mkdir()
        base = f"http://127.0.0.1:{PORT}"

        # --- the viewer, warm: one app for all rounds
        app = viewer_app(dataset, PORT)
        app.mount("/bench-static", StaticFiles(directory=static), name="bench-static")
        hidden = viewer_app(dataset, PORT, hide_people=True)
        hidden.mount("/bench-static", StaticFiles(directory=static), name="bench-static")
        viewer = stack.enter_context(TestClient(app, base_url=base))
        hidden_client = stack.enter_context(TestClient(hidden, base_url=base))
        ep = long.episode
        pages = [
            ("list", "episode list `/` (61 episodes)", viewer, "/"),
            ("list_hidden", "episode list, people hidden (aliases)", hidden_client, "/"),
            ("player", "player `/episode/ID` at step 0", viewer, f"/episode/{ep}"),
            ("player_deep", f"player at step {deep}", viewer, f"/episode/{ep}?step={deep}"),
            ("steps", "steps API, 200 steps from 0", viewer, f"/api/episode/{ep}/steps"),
            (
                "steps_deep",
                f"steps API, 200 steps from {deep}",
                viewer,
                f"/api/episode/{ep}/steps?offset={deep}",
            ),
        ]
        pairs: list[Pair] = [
            Pair(
                "startup",
                "viewer start-up: `create_app` (index of 10,000 steps)",
                "pyarrow reads the same columns, footers and meta/",
                startup(dataset, False),
                index_baseline(dataset),
                http=False,
            ),
            Pair(
                "startup_hidden",
                "viewer start-up, people hidden (aliases)",
                "pyarrow reads the same columns, footers and meta/",
                startup(dataset, True),
                index_baseline(dataset),
                http=False,
            ),
        ]
        for name, what, client, url in pages:
            twin = static_twin(client, url, static, "/bench-static", f"{name}.bin")
            pairs.append(
                Pair(
                    name,
                    what,
                    "static file, same bytes, same app",
                    getter(client, url),
                    getter(client, twin),
                )
            )
        # what the player loads to show a step: the stored observation (its shapes come with
        # the steps page, one request per 200 steps)
        raw_url = f"/raw/{ep}/{long.click}"
        twin = static_twin(viewer, raw_url, static, "/bench-static", "raw_click.bin")
        pairs.append(
            Pair(
                "raw_click",
                f"player's image of a step `/raw/ID/{long.click}` (stored WebP)",
                "static file, same bytes, same app",
                getter(viewer, raw_url),
                getter(viewer, twin),
            )
        )
        for name, step, label in (
            ("frame_click", long.click, "click"),
            ("frame_drag", long.drag, "drag"),
            ("frame_type", long.typed, "type (caption)"),
        ):
            pairs.append(
                Pair(
                    name,
                    f"drawn frame PNG `/frame/ID/{step}.png` (download), {label}",
                    "`/raw/` of the same step (stored WebP)",
                    getter(viewer, f"/frame/{ep}/{step}.png"),
                    getter(viewer, f"/raw/{ep}/{step}"),
                )
            )

        # --- coverage
        raw = aggregate(dataset)
        stored = json.dumps(raw)
        pairs.append(
            Pair(
                "aggregate",
                "coverage `aggregate()` over 10,000 steps",
                "pq.read_table of the same columns",
                lambda: len(aggregate(dataset)["charts"]),
                coverage_baseline(dataset),
                http=False,
            )
        )
        pairs.append(
            Pair(
                "suppress",
                "coverage `suppress(raw, 5)`",
                "json.loads of the stored coverage",
                lambda: len(suppress(json.loads(stored), 5)["charts"]),
                lambda: len(json.loads(stored)),
                http=False,
            )
        )

        # --- the admin pages
        service, build_id = admin_world(tmp / "collector", dataset, raw)
        collector = collector_app(service)
        collector.mount("/admin/bench-static", StaticFiles(directory=static), name="bench-admin")
        admin = stack.enter_context(TestClient(collector))  # its lifespan: warm_up, as serve
        stack.callback(service.close)
        admin.cookies.set(COOKIE, make_cookie(service))
        health = getter(admin, "/v1/health")
        admin_pages = [
            ("admin_overview", "admin overview `/admin/`", "/admin/"),
            ("admin_devices", "admin devices (500)", "/admin/devices"),
            ("admin_builds", "admin builds (40)", "/admin/builds"),
            (
                "admin_coverage",
                "admin coverage page of the done build",
                f"/admin/builds/{build_id}/coverage",
            ),
            (
                "admin_viewer",
                "admin viewer list (people hidden)",
                f"/admin/builds/{build_id}/view/",
            ),
        ]
        first_view_ms = None
        for name, what, url in admin_pages:
            t0 = time.perf_counter()
            getter(admin, url)()  # the first: the viewer mount makes its app here
            if name == "admin_viewer":
                first_view_ms = (time.perf_counter() - t0) * 1000
            pairs.append(Pair(name, what, "`/v1/health`, same app", getter(admin, url), health))
        twin = static_twin(
            admin,
            f"/admin/builds/{build_id}/coverage",
            static,
            "/admin/bench-static",
            "admin_coverage.bin",
        )
        pairs.append(
            Pair(
                "admin_static",
                "static file of the coverage page's size, behind the sign-in",
                "`/v1/health`, same app",
                getter(admin, twin),
                health,
            )
        )

        # --- cold: a viewer just started, nothing of the long episode read yet
        cold_steps = Pair(
            "steps_cold",
            f"steps API from {deep}, first request to a new viewer",
            "static file, same bytes, same app",
            lambda: 0,
            getter(viewer, "/bench-static/steps_deep.bin"),
        )
        cold_frame = Pair(
            "frame_cold",
            "drawn frame (click), first request to a new viewer",
            "`/raw/` of another step, also first (new viewer)",
            lambda: 0,
            lambda: 0,
        )

        for pair in pairs:  # warm-up
            pair.target()
            pair.baseline()
        console.print(f"  measuring {len(pairs) + 2} pairs, {rounds} rounds x {repeat} ...")
        cold = 0
        for r in range(rounds):
            gc.collect()
            for pair in pairs:
                pair.run(repeat, first_target=r % 2 == 0)
            for k in range(repeat):
                with TestClient(viewer_app(dataset, PORT), base_url=base) as fresh:
                    first = (r + k) % 2 == 0
                    steps_url = f"/api/episode/{ep}/steps?offset={deep}"
                    for is_target in (first, not first):
                        cold_steps.sample(
                            is_target, getter(fresh, steps_url) if is_target else None
                        )
                    # two steps of other row groups, 1,000 steps apart: neither read yet
                    frame_step = long.cold[cold % len(long.cold)]
                    raw_step = long.cold[(cold + 5) % len(long.cold)]
                    cold += 1
                    for is_target in (first, not first):
                        url = (
                            f"/frame/{ep}/{frame_step}.png"
                            if is_target
                            else f"/raw/{ep}/{raw_step}"
                        )
                        cold_frame.sample(is_target, getter(fresh, url))
        pairs += [cold_steps, cold_frame]
        results["pairs"] = [p.result() for p in pairs]
        results["admin_viewer_first_ms"] = first_view_ms
        results["coverage_groups"] = {k: len(v) for k, v in raw["charts"].items()}
        results["coverage_devices"] = raw["devices"]
    finally:
        stack.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return results


# ------------------------------------------------------------------------------------ report
ORDER = (
    "startup",
    "startup_hidden",
    "list",
    "list_hidden",
    "player",
    "player_deep",
    "steps",
    "steps_deep",
    "steps_cold",
    "raw_click",
    "frame_click",
    "frame_drag",
    "frame_type",
    "frame_cold",
    "aggregate",
    "suppress",
    "admin_overview",
    "admin_devices",
    "admin_builds",
    "admin_coverage",
    "admin_viewer",
    "admin_static",
)


def dataset_sizes(dataset: Path) -> dict[str, int]:
    data = sum(p.stat().st_size for p in (dataset / "data").glob("*.parquet"))
    meta = sum(p.stat().st_size for p in (dataset / "meta").rglob("*") if p.is_file())
    return {"data_bytes": data, "meta_bytes": meta}


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(HERE.parent))
    except ValueError:
        return str(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=5, help="samples of each pair per round")
    ap.add_argument("--regenerate", action="store_true", help="write the dataset again")
    ap.add_argument("--dataset", type=Path, default=DATASET)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if args.rounds < 1 or args.repeat < 1:
        ap.error("--rounds and --repeat must be at least 1")

    console = Console()
    if not console.is_terminal:
        console = Console(width=140)  # logs and pipes: one line per row
    started = time.perf_counter()
    load = os.getloadavg()[0]
    info = None if args.regenerate else dataset_info(args.dataset)
    generated_s = None
    if info is None:
        console.print(f"writing the synthetic dataset into {args.dataset} ...")
        t0 = time.perf_counter()
        info = generate(args.dataset, console)
        generated_s = time.perf_counter() - t0
    counts = info["counts"]
    found = measure(args.dataset, args.rounds, args.repeat, console)
    by_name = {p["name"]: p for p in found["pairs"]}
    pairs = [by_name[n] for n in ORDER]
    sizes = dataset_sizes(args.dataset)
    result: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_at_start": load,
        "pyarrow": pa.__version__,
        "pillow": PIL.__version__,
        "fastapi": fastapi.__version__,
        "sqlalchemy": sa.__version__,
        "reducer_version": REDUCER_VERSION,
        "input": {
            "dataset": _shown(args.dataset),
            "generator": GENERATOR,
            "seed": SEED,
            "steps": counts["steps"],
            "episodes": counts["episodes"],
            "devices": counts["devices"],
            "files": counts["files"],
            "distinct_frames": sum(POOLS.values()),
            "sessions": counts["sessions"],
            "long_episode": found["long_episode"],
            "long_episode_steps": found["long_steps"],
            **sizes,
            "generated_s": generated_s,
        },
        "rounds": args.rounds,
        "repeat": args.repeat,
        "pairs": pairs,
        "admin_viewer_first_ms": found["admin_viewer_first_ms"],
        "coverage_groups": found["coverage_groups"],
        "wall_s": time.perf_counter() - started,
        "rss_peak_mb": rss_peak_mb(os.getpid()),
    }

    title = (
        f"Web pages on {counts['steps']:,} steps ({counts['episodes']} episodes, one of "
        f"{found['long_steps']:,} steps; {counts['devices']} devices; "
        f"{(sizes['data_bytes'] + sizes['meta_bytes']) / 1e6:.0f} MB): medians of "
        f"{args.rounds} rounds x {args.repeat}, ms"
    )
    tab = Table(title=title)
    tab.add_column("measure")
    tab.add_column("bytes", justify="right")
    tab.add_column("median", justify="right")
    tab.add_column("p90", justify="right")
    tab.add_column("baseline (same run)")
    tab.add_column("base bytes", justify="right")
    tab.add_column("median", justify="right")
    tab.add_column("ratio", justify="right")
    for p in pairs:
        tab.add_row(
            p["what"],
            f"{p['bytes']:,}" if p["bytes"] else "",
            f"{p['median_ms']:.1f}",
            f"{p['p90_ms']:.1f}",
            p["baseline"],
            f"{p['baseline_bytes']:,}" if p["baseline_bytes"] else "",
            f"{p['baseline_median_ms']:.2f}",
            f"[bold]{p['ratio']:.1f}x[/bold]",
        )
    console.print(tab)
    console.print(
        f"admin viewer, first request (makes the build's viewer app): "
        f"{found['admin_viewer_first_ms']:.0f} ms; coverage groups {found['coverage_groups']}"
    )
    made = f", generated in {generated_s:.0f} s" if generated_s is not None else " (reused)"
    console.print(
        f"input {result['input']['dataset']}{made}; load average {load:.1f} at the start; "
        f"{result['wall_s']:.0f} s in all; "
        f"peak RSS {result['rss_peak_mb']:.0f} MB"
    )
    save_result(result, args.out, console)


if __name__ == "__main__":
    main()
