"""Coverage of a built dataset, in aggregate only: hours in scope by app and by site, steps by
action type and by skill, episodes by length.

Every figure is a group (an app, a site, an action type...) with its value and the number of
distinct devices behind it. :func:`aggregate` computes them from a dataset folder (the build job
stores the result); :func:`suppress` is what any page or API answer goes through: a group with
data from fewer than ``k`` devices is not shown (only how many groups were hidden), and a chart
shows no total, so a hidden group's value cannot be recovered by subtraction. A dataset from
fewer than ``k`` devices shows nothing at all. There is no per-device breakdown, by design.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

DEFAULT_K = 5

#: (lowest n_steps, label) of the episode-length buckets, in order.
LENGTHS = ((1, "1"), (2, "2-5"), (6, "6-10"), (11, "11-25"), (26, "26-50"), (51, "51-100"))
LENGTH_TOP = (101, "over 100")

CHARTS = (
    ("hours_by_app", "Hours in scope by app", "hours"),
    ("hours_by_site", "Hours in scope by website", "hours"),
    ("steps_by_action", "Steps by action type", "steps"),
    ("steps_by_skill", "Steps by skill", "steps"),
    ("episodes_by_length", "Episodes by length (steps)", "episodes"),
)


def _groups(keys: pa.Array, values: np.ndarray, devices: pa.Array) -> list[dict[str, Any]]:
    """Sum of ``values`` and distinct ``devices`` per key (null keys left out)."""
    table = pa.table({"key": keys, "value": pa.array(values), "device": devices})
    table = table.filter(pc.is_valid(table["key"]))
    if table.num_rows == 0:
        return []
    out = table.group_by("key").aggregate([("value", "sum"), ("device", "count_distinct")])
    rows = [
        {"label": str(k), "value": float(v), "devices": int(d)}
        for k, v, d in zip(
            out["key"].to_pylist(),
            out["value_sum"].to_pylist(),
            out["device_count_distinct"].to_pylist(),
            strict=True,
        )
    ]
    rows.sort(key=lambda r: (-r["value"], r["label"]))
    return rows


def _step_seconds(steps: pa.Table) -> np.ndarray:
    """Seconds each step accounts for: until the next step of its episode starts, or its own
    span for an episode's last step (episodes are already cut at long idle gaps)."""
    n = steps.num_rows
    if n == 0:
        return np.zeros(0)
    start = steps["t_start"].cast(pa.int64()).fill_null(0).to_numpy()
    end = steps["t_end"].cast(pa.int64()).fill_null(0).to_numpy()
    episode = steps["episode_id"].to_numpy(zero_copy_only=False)
    same = np.zeros(n, dtype=bool)
    same[:-1] = episode[1:] == episode[:-1]
    following = np.empty(n, dtype=np.int64)
    following[:-1] = start[1:]
    following[-1] = 0
    ns = np.where(same, following - start, end - start)
    return np.clip(ns, 0, None) / 1e9


def aggregate(dataset: Path) -> dict[str, Any]:
    """The raw coverage of the dataset at ``dataset`` (groups with their device counts). Kept
    on the collector only; what leaves it goes through :func:`suppress`."""
    dataset = Path(dataset)
    files = sorted((dataset / "data").glob("steps-*.parquet"))
    columns = ["episode_id", "step_index", "action_type", "skills", "app", "url"]
    columns += ["t_start", "t_end", "device"]
    steps = (
        pa.concat_tables([pq.read_table(f, columns=columns) for f in files])
        if files
        else pa.table({c: pa.array([], pa.string()) for c in columns})
    )
    if steps.num_rows:
        steps = steps.take(
            pc.sort_indices(steps, [("episode_id", "ascending"), ("step_index", "ascending")])
        )
    episodes = pq.read_table(dataset / "meta" / "episodes.parquet", columns=["device", "n_steps"])
    seconds = _step_seconds(steps) if steps.num_rows else np.zeros(0)
    hours = seconds / 3600
    devices = steps["device"]
    host = pc.extract_regex(
        steps["url"].cast(pa.string()), r"^[a-zA-Z][a-zA-Z0-9+.-]*://(?:[^@/]*@)?(?P<host>[^:/?#]+)"
    )
    sites = (
        pc.utf8_lower(pc.struct_field(host, "host"))
        if steps.num_rows
        else pa.array([], pa.string())
    )
    ones = np.ones(steps.num_rows)
    flat = pc.list_flatten(steps["skills"]) if steps.num_rows else pa.array([], pa.string())
    parents = (
        pc.list_parent_indices(steps["skills"]).to_numpy()
        if steps.num_rows
        else np.zeros(0, dtype=np.int64)
    )
    lengths = episodes["n_steps"].to_numpy(zero_copy_only=False).astype(np.int64)
    bounds = [low for low, _ in LENGTHS] + [LENGTH_TOP[0]]
    labels = [label for _, label in LENGTHS] + [LENGTH_TOP[1]]
    bucket = np.searchsorted(np.array(bounds), lengths, side="right") - 1
    length_keys = pa.array([labels[b] if b >= 0 else None for b in bucket.tolist()], pa.string())
    charts = {
        "hours_by_app": _groups(steps["app"], hours, devices),
        "hours_by_site": _groups(sites, hours, devices),
        "steps_by_action": _groups(steps["action_type"], ones, devices),
        "steps_by_skill": _groups(
            flat, np.ones(len(flat)), pc.take(devices, pa.array(parents, pa.int64()))
        ),
        "episodes_by_length": _groups(length_keys, np.ones(len(lengths)), episodes["device"]),
    }
    order = {label: i for i, label in enumerate(labels)}
    charts["episodes_by_length"].sort(key=lambda r: order[r["label"]])
    all_devices = pa.chunked_array([*devices.chunks, *episodes["device"].chunks], pa.string())
    return {
        "devices": len(pc.unique(pc.drop_null(all_devices))),
        "charts": charts,
    }


def suppress(raw: dict[str, Any], k: int = DEFAULT_K) -> dict[str, Any]:
    """What may be shown of ``raw``: groups from ``k`` or more devices, no device counts below
    ``k``, and nothing at all for a dataset from fewer than ``k`` devices."""
    total = int(raw.get("devices", 0))
    out: dict[str, Any] = {"k": k, "shown": total >= k, "charts": []}
    if total < k:
        out["reason"] = (
            f"This dataset holds data from fewer than {k} devices, so no coverage is shown: "
            "any figure would describe a handful of people."
        )
        return out
    out["devices"] = total
    for chart_id, title, unit in CHARTS:
        rows = raw["charts"].get(chart_id, [])
        kept = [r for r in rows if r["devices"] >= k]
        hidden = [r for r in rows if r["devices"] < k]
        chart: dict[str, Any] = {
            "id": chart_id,
            "title": title,
            "unit": unit,
            "rows": [
                {"label": r["label"], "value": r["value"] if unit == "hours" else round(r["value"])}
                for r in kept
            ],
            "hidden_groups": len(hidden),
        }
        chart["note"] = (
            f"{len(hidden)} group{'s' if len(hidden) != 1 else ''} with data from fewer than "
            f"{k} devices {'are' if len(hidden) != 1 else 'is'} not shown."
            if hidden
            else ""
        )
        out["charts"].append(chart)
    return out
